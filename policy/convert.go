package policy

import (
	"encoding/json"
	"slices"

	"github.com/airlockhq/airlock"
)

// SubjectOf returns the policy subject for a user.
func SubjectOf(u *airlock.User) Subject {
	return Subject{Name: u.Name, Groups: u.Groups}
}

// ResourceOf returns the policy view of a stored resource.
func ResourceOf(r *airlock.Resource) Resource {
	return Resource{Name: r.Name, Kind: r.Kind, Labels: r.Labels}
}

// ToDomain returns the stored form of a resource declared in policy,
// without credentials: the caller resolves each CredentialRef.SecretRef,
// seals the secret and fills Credentials. Options holds the spec's options
// as a JSON object of strings, plus "logins" (a JSON array) and "host_key"
// for ssh resources. Source is "policy".
func (r ResourceSpec) ToDomain() *airlock.Resource {
	opts := map[string]any{}
	for k, v := range r.Options {
		opts[k] = v
	}
	if len(r.Logins) > 0 {
		opts["logins"] = slices.Clone(r.Logins)
	}
	if r.HostKey != "" {
		opts["host_key"] = r.HostKey
	}
	var raw []byte
	if len(opts) > 0 {
		raw, _ = json.Marshal(opts) // strings and string slices always encode
	}
	labels := make(map[string]string, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	return &airlock.Resource{Name: r.Name, Kind: r.Kind, Addr: r.Addr, Labels: labels, Options: raw, Source: "policy"}
}
