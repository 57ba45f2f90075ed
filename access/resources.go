package access

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/secrets"
)

// Credential is a brokered credential in the clear. It exists only inside
// the server, between Open and the upstream handshake.
type Credential struct {
	User     string         `json:"user"`
	Password secrets.Secret `json:"password"`
}

type sealedCredential struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func credAAD(resource, level string) []byte { return []byte("resource:" + resource + ":" + level) }

// ResourceOptions are a resource's non-secret settings.
type ResourceOptions struct {
	Database string `json:"database,omitempty"` // postgres: upstream database (default: resource name)
	// Databases are the other upstream databases a client may name
	// ("RESOURCE/DBNAME"); Database is always allowed, nothing else is.
	Databases []string `json:"databases,omitempty"`
	// AllowCleartextPassword lets the postgres upstream ask for the
	// brokered password in cleartext without a verified TLS certificate.
	AllowCleartextPassword bool     `json:"allow_cleartext_password,omitempty"`
	TLS                    string   `json:"tls,omitempty"`      // postgres upstream: disable | require | verify-ca | verify-full (libpq sslmode)
	TLSCA                  string   `json:"tls_ca,omitempty"`   // postgres and https upstreams: PEM CA certificates (sslrootcert); none: system roots
	Logins                 []string `json:"logins,omitempty"`   // ssh: allowed logins
	HostKey                string   `json:"host_key,omitempty"` // ssh: pinned host key (authorized_keys format)
	// PublicHost is the host an http app is served at (default
	// RESOURCE.<apps domain>).
	PublicHost string `json:"public_host,omitempty"`
	// Levels are http access levels that broker no credential.
	Levels []string `json:"levels,omitempty"`
	// Allow lists, per http access level, the only requests it may send
	// (airlock.HTTPRule text, "GET,HEAD /"); a level without rules may
	// send anything.
	Allow map[string][]string `json:"allow,omitempty"`
	// AuthHeader is the header an http credential without a user goes in
	// (default Authorization, as a bearer token).
	AuthHeader string `json:"auth_header,omitempty"`
	// KubeGroups maps a kubernetes access level to the Kubernetes groups
	// the gateway impersonates for it (the cluster's RBAC binds them).
	KubeGroups map[string][]string `json:"kube_groups,omitempty"`
	// Namespaces maps a kubernetes access level to the only namespaces it
	// may touch; a level without an entry may touch every namespace and
	// cluster-scoped resources.
	Namespaces map[string][]string `json:"namespaces,omitempty"`
	// ReadOnly lists access levels that start sessions read-only.
	ReadOnly []string `json:"read_only,omitempty"`
	// Credentials is how a postgres resource's logins are had: "" (or
	// "static") brokers the standing credential of each access level;
	// "ephemeral" makes a login role per grant with the provisioning
	// credential (airlock.ProvisionerCredential), in the level's template
	// role (Templates), dropped at the grant's end (see ephemeral.go).
	Credentials string `json:"credentials,omitempty"`
	// Templates maps each access level of an ephemeral resource to its
	// template role: the privileges its grants' roles are IN.
	Templates map[string]string `json:"templates,omitempty"`
	// Owner is the role an ephemeral role's objects are reassigned to
	// before it is dropped (REASSIGN OWNED), so a write grant's tables stay.
	Owner string `json:"owner,omitempty"`
	// ConnectionLimit is each ephemeral role's CONNECTION LIMIT (0: the
	// default, DefaultConnectionLimit).
	ConnectionLimit int               `json:"connection_limit,omitempty"`
	Extra           map[string]string `json:"extra,omitempty"`
}

// Options decodes r's options.
func Options(r *airlock.Resource) ResourceOptions {
	var o ResourceOptions
	if len(r.Options) > 0 {
		json.Unmarshal(r.Options, &o)
	}
	return o
}

// maxDatabaseName is PostgreSQL's limit on a database name (NAMEDATALEN-1).
const maxDatabaseName = 63

// Databases returns the upstream databases a client may open on postgres
// resource r: its own (the database option, or the resource name) first,
// then those its databases option lists.
func Databases(r *airlock.Resource) []string {
	o := Options(r)
	own := o.Database
	if own == "" {
		own = r.Name
	}
	out := []string{own}
	for _, d := range o.Databases {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// OpenDatabase returns the upstream database a client that named
// requested ("" for none) opens on r, and false when r does not allow it.
func OpenDatabase(r *airlock.Resource, requested string) (string, bool) {
	allowed := Databases(r)
	if requested == "" {
		return allowed[0], true
	}
	return requested, slices.Contains(allowed, requested)
}

// IsReadOnly reports whether sessions at access level start read-only:
// the level is listed in the resource's read_only option, or is named
// read, readonly, read-only or ro. The real protection is the upstream
// role's privileges; this is a second layer.
func IsReadOnly(r *airlock.Resource, level string) bool {
	for _, l := range Options(r).ReadOnly {
		if l == level {
			return true
		}
	}
	switch strings.ToLower(level) {
	case "read", "readonly", "read-only", "ro":
		return true
	}
	return false
}

// ResourceInput adds a resource through the API.
type ResourceInput struct {
	Name        string                     `json:"name"`
	Kind        string                     `json:"kind"`
	Addr        string                     `json:"addr"`
	Labels      map[string]string          `json:"labels,omitempty"`
	Options     ResourceOptions            `json:"options,omitzero"`
	Credentials map[string]CredentialInput `json:"credentials,omitempty"`
	// Provisioner is the provisioning credential of a resource with
	// ephemeral credentials (Options.Credentials): a role with CREATEROLE.
	Provisioner *CredentialInput `json:"provisioner,omitempty"`
	identity.StepUp
}

// CredentialInput is a brokered credential as a client sends it (once, to
// be sealed); it is never sent back.
type CredentialInput struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func validKind(k string) bool {
	return k == airlock.KindPostgres || k == airlock.KindSSH || k == airlock.KindHTTP || k == airlock.KindKubernetes || k == airlock.KindMySQL
}

func (s *Service) build(in ResourceInput, source string) (*airlock.Resource, error) {
	if !identity.ValidName(in.Name) {
		return nil, airlock.Errorf(airlock.EINVALID, "invalid resource name %q: use lower-case letters, digits, '-', '_' or '.'", in.Name)
	}
	if !validKind(in.Kind) {
		return nil, airlock.Errorf(airlock.EINVALID, "unknown kind %q: use postgres, mysql, ssh, http or kubernetes", in.Kind)
	}
	if in.Addr == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "resource %s needs --addr HOST:PORT", in.Name)
	}
	r := &airlock.Resource{ID: airlock.NewID("res"), Name: in.Name, Kind: in.Kind, Addr: in.Addr, Labels: in.Labels,
		Credentials: map[string][]byte{}, Source: source, CreatedAt: s.now().UTC()}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	for level, c := range in.Credentials {
		if level == "" || (c.User == "" && in.Kind != airlock.KindHTTP && in.Kind != airlock.KindKubernetes) {
			return nil, airlock.Errorf(airlock.EINVALID, "credential %q of %s needs a user", level, in.Name)
		}
		if airlock.IsDatabaseKind(in.Kind) && strings.HasPrefix(c.User, pgprovision.Prefix) {
			// On a server shared with an ephemeral resource, the
			// reconciler drops every such login no grant accounts for.
			return nil, airlock.Errorf(airlock.EINVALID, "resource %s: the login %q of access level %s must not start with %s: Airlock drops every such database login no grant accounts for", in.Name, c.User, level, pgprovision.Prefix)
		}
		plain, _ := json.Marshal(sealedCredential(c))
		sealed, err := s.sealer.Seal(plain, credAAD(in.Name, level))
		if err != nil {
			return nil, fmt.Errorf("seal credential: %w", err)
		}
		r.Credentials[level] = sealed
	}
	if airlock.IsDatabaseKind(in.Kind) {
		// Refuse what would not be used as written: a typo in the mode
		// must never mean a plaintext upstream.
		if _, _, err := airlock.CheckUpstreamTLS(in.Options.TLS, []byte(in.Options.TLSCA)); err != nil {
			return nil, airlock.Errorf(airlock.EINVALID, "resource %s: %s", in.Name, airlock.ErrorMessage(err))
		}
		for _, d := range append([]string{in.Options.Database}, in.Options.Databases...) {
			if len(d) > maxDatabaseName || strings.ContainsAny(d, "\x00,") {
				return nil, airlock.Errorf(airlock.EINVALID, "resource %s: invalid database name %q (at most %d bytes, no commas)", in.Name, d, maxDatabaseName)
			}
		}
		if slices.Contains(in.Options.Databases, "") {
			return nil, airlock.Errorf(airlock.EINVALID, "resource %s: an empty name in databases", in.Name)
		}
	} else if in.Options.TLS != "" || (in.Options.TLSCA != "" && in.Kind != airlock.KindHTTP && in.Kind != airlock.KindKubernetes) || len(in.Options.Databases) > 0 || in.Options.AllowCleartextPassword {
		return nil, airlock.Errorf(airlock.EINVALID, "resource %s: sslmode, sslrootcert, databases and allow_cleartext_password apply to postgres and mysql resources only", in.Name)
	}
	if err := s.buildEphemeral(in, r); err != nil {
		return nil, err
	}
	if in.Kind == airlock.KindHTTP {
		for _, l := range in.Options.Levels {
			if _, ok := r.Credentials[l]; !ok {
				r.Credentials[l] = nil // an access level that brokers nothing
			}
		}
		if len(r.Credentials) == 0 {
			return nil, airlock.Errorf(airlock.EINVALID, "resource %s needs an access level: --level NAME or --credential NAME=…", in.Name)
		}
		if err := checkHTTPResource(in.Name, in.Addr, in.Options, sortedLevels(r)); err != nil {
			return nil, err
		}
	} else if in.Options.PublicHost != "" || len(in.Options.Levels) > 0 || len(in.Options.Allow) > 0 || in.Options.AuthHeader != "" {
		return nil, airlock.Errorf(airlock.EINVALID, "resource %s: public_host, levels, allow and auth_header apply to http resources only", in.Name)
	}
	if in.Kind == airlock.KindKubernetes {
		if err := checkKubeResource(in.Name, in.Addr, in.Options, r.Credentials, in.Credentials); err != nil {
			return nil, err
		}
	} else if len(in.Options.KubeGroups) > 0 || len(in.Options.Namespaces) > 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "resource %s: kube_groups and namespaces apply to kubernetes resources only", in.Name)
	}
	if in.Kind == airlock.KindSSH {
		for _, l := range in.Options.Logins {
			r.Credentials[l] = nil // ssh access levels are logins; no secret
		}
	}
	o, _ := json.Marshal(in.Options)
	r.Options = o
	return r, nil
}

func (s *Service) resourceFromSpec(spec policy.ResourceSpec) (*airlock.Resource, error) {
	in := ResourceInput{Name: spec.Name, Kind: spec.Kind, Addr: spec.Addr, Labels: spec.Labels, Credentials: map[string]CredentialInput{}}
	in.Options = ResourceOptions{Database: spec.Options["database"], TLS: spec.Options["sslmode"], Logins: spec.Logins, HostKey: spec.HostKey}
	if ro := spec.Options["read_only"]; ro != "" {
		in.Options.ReadOnly = strings.Split(ro, ",")
	}
	if dbs := spec.Options["databases"]; dbs != "" {
		in.Options.Databases = strings.Split(dbs, ",")
	}
	in.Options.AllowCleartextPassword = spec.Options["allow_cleartext_password"] == "true"
	if err := s.ephemeralSpec(spec, &in); err != nil {
		return nil, err
	}
	switch spec.Kind {
	case airlock.KindHTTP:
		httpSpecOptions(spec.Options, &in.Options)
	case airlock.KindKubernetes:
		kubeSpecOptions(spec.Options, &in.Options)
	}
	// Every file and variable named here resolves through s.creds only:
	// never the data dir, never the server's own settings.
	if path := spec.Options["sslrootcert"]; path != "" {
		b, err := s.creds.File(path)
		if err != nil {
			return nil, airlock.Errorf(airlock.EINVALID, "resource %s: sslrootcert: %s", spec.Name, airlock.ErrorMessage(err))
		}
		in.Options.TLSCA = string(b)
	}
	for level, ref := range spec.Credentials {
		pw, err := s.resolvePassword(spec.Name, level, ref)
		if err != nil {
			return nil, err
		}
		in.Credentials[level] = CredentialInput{User: ref.User, Password: pw}
	}
	return s.build(in, "policy")
}

// AddResource adds a resource with its credentials sealed. Admin only.
func (s *Service) AddResource(ctx context.Context, p *identity.Principal, in ResourceInput) (*airlock.Resource, error) {
	if err := s.ident.RequireAdmin(p); err != nil {
		return nil, err
	}
	r, err := s.build(in, "api")
	if err != nil {
		return nil, err
	}
	if _, err := s.store.ResourceByName(ctx, r.Name); err == nil {
		return nil, airlock.Errorf(airlock.ECONFLICT, "resource %q already exists; remove it first with `airlock admin resources rm %s`", r.Name, r.Name)
	}
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "resource.added", Resource: r.Name, SourceAddr: p.Source,
		Details: resourceDetails(r)}, func(ctx context.Context) error { return s.store.CreateResource(ctx, r) }); err != nil {
		return nil, err
	}
	return r, nil
}

// resourceDetails are the resource.added details: where it is, how it is
// labelled and reached, never a secret.
func resourceDetails(r *airlock.Resource) json.RawMessage {
	kv := []any{"kind", r.Kind, "addr", r.Addr, "labels", r.Labels, "access_levels", sortedLevels(r)}
	if airlock.IsDatabaseKind(r.Kind) {
		o := Options(r)
		kv = append(kv, "sslmode", View(r).SSLMode, "ca_pinned", o.TLSCA != "", "databases", Databases(r),
			"allow_cleartext_password", o.AllowCleartextPassword)
		if IsEphemeral(r) {
			kv = append(kv, "credentials", o.Credentials, "templates", o.Templates, "owner", o.Owner)
		}
	}
	return airlock.EventDetails(kv...)
}

// RemoveResource deletes a resource. Admin only.
func (s *Service) RemoveResource(ctx context.Context, p *identity.Principal, name string) error {
	if err := s.ident.RequireAdmin(p); err != nil {
		return err
	}
	if _, err := s.resourceFor(ctx, p.User, name); err != nil {
		return err
	}
	// The provisioning credential goes with the resource: roles still on
	// its database could then never be dropped by Airlock.
	rows, err := s.store.ListDBRoles(ctx, false)
	if err != nil {
		return err
	}
	n := 0
	for _, row := range rows {
		if row.Resource == name {
			n++
		}
	}
	if n > 0 {
		return airlock.Errorf(airlock.ECONFLICT, "resource %s still has %d database roles of grants; revoke its grants and wait until they are dropped (airlock admin resources check %s)", name, n, name)
	}
	defer s.provisionerChanged(name) // its kept provisioning connections close
	return s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "resource.removed", Resource: name, SourceAddr: p.Source},
		func(ctx context.Context) error { return s.store.DeleteResource(ctx, name) })
}

// ResourceView is a resource as clients see it: never credentials.
type ResourceView struct {
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Addr         string            `json:"addr"`
	Labels       map[string]string `json:"labels"`
	AccessLevels []string          `json:"access_levels"`
	Source       string            `json:"source"`
	// SSLMode is how a postgres resource's database is reached: disable,
	// require, verify-ca or verify-full (require with CA certificates is
	// shown as verify-ca, which is what it does).
	SSLMode string `json:"sslmode,omitempty"`
	// Databases are the upstream databases a postgres resource opens, its
	// own first (see Databases).
	Databases []string `json:"databases,omitempty"`
	// Credentials is "ephemeral" for a resource that makes a database
	// role per grant, with Templates (access level -> template role) and
	// Owner; empty for standing credentials.
	Credentials string            `json:"credentials,omitempty"`
	Templates   map[string]string `json:"templates,omitempty"`
	Owner       string            `json:"owner,omitempty"`
}

func sortedLevels(r *airlock.Resource) []string {
	l := r.AccessLevels()
	sort.Strings(l)
	return l
}

// View returns r without secrets.
func View(r *airlock.Resource) ResourceView {
	v := ResourceView{Name: r.Name, Kind: r.Kind, Addr: r.Addr, Labels: r.Labels, AccessLevels: sortedLevels(r), Source: r.Source}
	if airlock.IsDatabaseKind(r.Kind) {
		o := Options(r)
		v.Databases = Databases(r)
		if IsEphemeral(r) {
			v.Credentials, v.Templates, v.Owner = o.Credentials, o.Templates, o.Owner
		}
		switch {
		case o.TLS == "":
			v.SSLMode = string(airlock.SSLDisable)
		case o.TLS == string(airlock.SSLRequire) && o.TLSCA != "":
			v.SSLMode = string(airlock.SSLVerifyCA) // what require does with CA certificates
		default:
			v.SSLMode = o.TLS
		}
	}
	return v
}

// ListResources lists all resources (admin view, without secrets).
func (s *Service) ListResources(ctx context.Context, p *identity.Principal) ([]ResourceView, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	if !p.User.IsAdmin() {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "listing all resources needs the %s group; run `airlock resources` for yours", airlock.GroupAdmins)
	}
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ResourceView, 0, len(rs))
	for _, r := range rs {
		out = append(out, View(r))
	}
	return out, nil
}

// resourceFor loads a resource by name for u. An unknown name gets a
// "did you mean" that names only resources u may request (admins, who may
// list every resource, get any close name), so a guess never reveals a
// resource its caller could not see otherwise.
func (s *Service) resourceFor(ctx context.Context, u *airlock.User, name string) (*airlock.Resource, error) {
	r, err := s.store.ResourceByName(ctx, name)
	if err == nil {
		return r, nil
	}
	if !airlock.IsCode(err, airlock.ENOTFOUND) {
		return nil, err
	}
	rs, lerr := s.store.ListResources(ctx)
	if lerr != nil {
		return nil, lerr
	}
	var names []string
	for _, r := range rs {
		if u.IsAdmin() || s.mayRequest(u, r) {
			names = append(names, r.Name)
		}
	}
	if c := closeNames(name, names); len(c) > 0 {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "unknown resource %q; did you mean %s?", name, strings.Join(c, ", "))
	}
	return nil, airlock.Errorf(airlock.ENOTFOUND, "unknown resource %q; run `airlock resources` to see what you may request", name)
}

// mayRequest reports whether the policy in force lets u request some
// access level of r (break-glass included), whatever the duration.
func (s *Service) mayRequest(u *airlock.User, r *airlock.Resource) bool {
	pol, _ := s.Policy()
	return len(pol.Requestable(policy.Subject{Name: u.Name, Groups: u.Groups}, []policy.Resource{policyResource(r)},
		func(policy.Resource) []string { return sortedLevels(r) })) > 0
}

// OpenCredential decrypts the brokered credential of r at level.
func (s *Service) OpenCredential(r *airlock.Resource, level string) (*Credential, error) {
	sealed, ok := r.Credentials[level]
	if !ok || len(sealed) == 0 {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "resource %s has no credential for access level %q", r.Name, level)
	}
	plain, err := s.sealer.Open(sealed, credAAD(r.Name, level))
	if err != nil {
		return nil, airlock.WrapError(airlock.EINTERNAL, "cannot open brokered credential", err)
	}
	var c sealedCredential
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, airlock.WrapError(airlock.EINTERNAL, "cannot decode brokered credential", err)
	}
	return &Credential{User: c.User, Password: secrets.Secret(c.Password)}, nil
}
