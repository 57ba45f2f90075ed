package policy

import (
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
