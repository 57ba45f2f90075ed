package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/myprovision"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/secrets"
)

// Ephemeral database roles (issue 18). A postgres resource with
// Options.Credentials "ephemeral" holds one provisioning credential
// (Resource.Credentials[airlock.ProvisionerCredential], sealed like every
// other credential with its own AAD) and no standing login per access
// level: each level names a template role. When a grant becomes active a
// login role is made for it (pgprovision.RoleName of the person and the
// grant, VALID UNTIL ends_at, IN ROLE the template), its random password
// sealed in the store (airlock.DBRole); the gateway logs in as it. When
// the grant ends, for whatever reason, SettleDBRoles terminates every
// backend of the role and drops it; ReconcileDBRoles drops every airlock_
// role on the database that no live grant accounts for. RunDBRoles runs
// both under a store lease, so one replica at a time does.
//
// If the role cannot be made when the grant is activated (the database
// is down), the grant stays and the failure is audited
// (db.role.create_failed); the next connect tries again and, failing,
// is refused with a message that says so: a grant never falls back to
// another login.

// DefaultConnectionLimit is an ephemeral role's CONNECTION LIMIT when the
// resource sets none.
const DefaultConnectionLimit = 10

// maxConnectionLimit bounds the connection_limit option.
const maxConnectionLimit = 10000

// DBProvisioner makes and drops the per-grant login roles on one
// database server (pgprovision.Provisioner for postgres).
type DBProvisioner interface {
	Create(ctx context.Context, r pgprovision.Role) (secrets.Secret, error)
	Terminate(ctx context.Context, role string) (int, error)
	Drop(ctx context.Context, role, owner string, dbs []string) error
	List(ctx context.Context) ([]string, error)
	Inspect(ctx context.Context, templates []string, owner string) (*pgprovision.Report, error)
	SetPassword(ctx context.Context, pw secrets.Secret) error
}

// ProvisionerFunc returns the provisioner of resource r logged in with its
// provisioning credential c (cmd/airlock dials the database as r's
// options say: address, TLS).
type ProvisionerFunc func(r *airlock.Resource, c *Credential) DBProvisioner

// IsEphemeral reports whether r makes a database role per grant.
func IsEphemeral(r *airlock.Resource) bool {
	return airlock.IsDatabaseKind(r.Kind) && Options(r).Credentials == policy.CredentialsEphemeral
}

// DBRoleName is the login role (PostgreSQL) or user (MySQL) made for
// user's grant grantID on a resource of kind: each engine's own naming
// within its limits (63 bytes; 32 characters).
func DBRoleName(kind, user, grantID string) string {
	if kind == airlock.KindMySQL {
		return myprovision.UserName(user, grantID)
	}
	return pgprovision.RoleName(user, grantID)
}

// validRoleName reports whether n may name a template or owner role.
func validRoleName(n string) bool { return n != "" && len(n) <= 63 && !strings.ContainsRune(n, 0) }

// buildEphemeral checks the ephemeral-credentials part of in and, when it
// is on, seals the provisioning credential into r and makes r's access
// levels the template roles' levels. Incomplete configuration is refused.
func (s *Service) buildEphemeral(in ResourceInput, r *airlock.Resource) error {
	o := in.Options
	switch o.Credentials {
	case "", "static":
		if in.Provisioner != nil || len(o.Templates) > 0 || o.Owner != "" || o.ConnectionLimit != 0 {
			return airlock.Errorf(airlock.EINVALID, "resource %s: a provisioner, templates, owner and connection_limit need credentials ephemeral (--ephemeral)", in.Name)
		}
		return nil
	case policy.CredentialsEphemeral:
	default:
		return airlock.Errorf(airlock.EINVALID, "resource %s: credentials must be static or ephemeral, not %q", in.Name, o.Credentials)
	}
	if !airlock.IsDatabaseKind(in.Kind) {
		return airlock.Errorf(airlock.EINVALID, "resource %s: ephemeral credentials are for postgres and mysql resources", in.Name)
	}
	mysql := in.Kind == airlock.KindMySQL
	if len(in.Credentials) > 0 {
		return airlock.Errorf(airlock.EINVALID, "resource %s: ephemeral credentials make a login per grant; give no standing credentials (--credential), only templates (--template LEVEL=ROLE)", in.Name)
	}
	if in.Provisioner == nil || in.Provisioner.User == "" || in.Provisioner.Password == "" {
		what := "a role with CREATEROLE"
		if mysql {
			what = "an account with CREATE USER"
		}
		return airlock.Errorf(airlock.EINVALID, "resource %s: ephemeral credentials need the provisioning credential (--provisioner USER:env:VAR|file:PATH): %s", in.Name, what)
	}
	// Every role whose name starts with airlock_ on the server is taken
	// for one Airlock made, and dropped when no grant accounts for it:
	// the provisioning role, the owner or a template named so would be.
	for what, n := range map[string]string{"provisioning role": in.Provisioner.User, "owner": o.Owner} {
		if strings.HasPrefix(n, pgprovision.Prefix) {
			return airlock.Errorf(airlock.EINVALID, "resource %s: the %s %q must not start with %s: Airlock drops every such role no grant accounts for", in.Name, what, n, pgprovision.Prefix)
		}
	}
	switch {
	case mysql && o.Owner != "":
		// MySQL objects have no owner to hand on (myprovision).
		return airlock.Errorf(airlock.EINVALID, "resource %s: owner is for postgres: what a MySQL user creates belongs to its schema and stays", in.Name)
	case !mysql && !validRoleName(o.Owner):
		return airlock.Errorf(airlock.EINVALID, "resource %s: ephemeral credentials need an owner role (--owner ROLE) that keeps what a grant's role created, at most 63 bytes", in.Name)
	}
	if len(o.Templates) == 0 {
		return airlock.Errorf(airlock.EINVALID, "resource %s: ephemeral credentials need a template role per access level (--template read=app_read)", in.Name)
	}
	for level, role := range o.Templates {
		if !identity.ValidName(level) {
			return airlock.Errorf(airlock.EINVALID, "resource %s: invalid access level %q: use lower-case letters, digits, '-', '_' or '.'", in.Name, level)
		}
		if !validRoleName(role) {
			return airlock.Errorf(airlock.EINVALID, "resource %s: the template of access level %s must name a role of at most 63 bytes", in.Name, level)
		}
		if strings.HasPrefix(role, pgprovision.Prefix) {
			return airlock.Errorf(airlock.EINVALID, "resource %s: the template %q must not start with %s: Airlock drops every such role no grant accounts for", in.Name, role, pgprovision.Prefix)
		}
		r.Credentials[level] = nil // a level that brokers nothing standing
	}
	if o.ConnectionLimit < 0 || o.ConnectionLimit > maxConnectionLimit {
		return airlock.Errorf(airlock.EINVALID, "resource %s: connection_limit must be from 1 to %d", in.Name, maxConnectionLimit)
	}
	plain, _ := json.Marshal(sealedCredential(*in.Provisioner))
	sealed, err := s.sealer.Seal(plain, credAAD(in.Name, airlock.ProvisionerCredential))
	if err != nil {
		return fmt.Errorf("seal provisioning credential: %w", err)
	}
	r.Credentials[airlock.ProvisionerCredential] = sealed
	return nil
}

// ephemeralSpec moves a policy resource's ephemeral options into in,
// resolving the provisioner's secret through s.creds.
func (s *Service) ephemeralSpec(spec policy.ResourceSpec, in *ResourceInput) error {
	o := &in.Options
	o.Credentials, o.Owner = spec.Options["credentials"], spec.Options["owner"]
	if v := spec.Options["connection_limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return airlock.Errorf(airlock.EINVALID, "resource %s: connection_limit must be an integer", spec.Name)
		}
		o.ConnectionLimit = n
	}
	for k, v := range spec.Options {
		if l, ok := strings.CutPrefix(k, policy.TemplatePrefix); ok && l != "" {
			if o.Templates == nil {
				o.Templates = map[string]string{}
			}
			o.Templates[l] = v
		}
	}
	if spec.Provisioner != nil {
		pw, err := s.resolvePassword(spec.Name, "provisioner", *spec.Provisioner)
		if err != nil {
			return err
		}
		in.Provisioner = &CredentialInput{User: spec.Provisioner.User, Password: pw}
	}
	return nil
}

// resolvePassword reads the secret ref names, through s.creds only.
func (s *Service) resolvePassword(resource, what string, ref policy.CredentialRef) (string, error) {
	switch {
	case ref.PasswordEnv != "":
		v, err := s.creds.Env(ref.PasswordEnv)
		if err != nil {
			return "", airlock.Errorf(airlock.EINVALID, "resource %s credential %s: %s", resource, what, airlock.ErrorMessage(err))
		}
		return v, nil
	case ref.PasswordFile != "":
		b, err := s.creds.File(ref.PasswordFile)
		if err != nil {
			return "", airlock.Errorf(airlock.EINVALID, "resource %s credential %s: %s", resource, what, airlock.ErrorMessage(err))
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

// provisioner returns r's provisioner, or an error safe to show. While a
// rotation is unfinished (NextProvisionerCredential is set: the server
// stopped between asking the database to take the new password and
// recording that it did), it logs in with whichever of the two the
// database accepts.
func (s *Service) provisioner(r *airlock.Resource) (DBProvisioner, error) {
	if s.provision == nil {
		return nil, airlock.Errorf(airlock.EUNAVAILABLE, "this server cannot provision database roles")
	}
	c, err := s.OpenCredential(r, airlock.ProvisionerCredential)
	if err != nil {
		return nil, err
	}
	cur := s.provision(r, c)
	if _, ok := r.Credentials[airlock.NextProvisionerCredential]; !ok {
		return cur, nil
	}
	n, err := s.OpenCredential(r, airlock.NextProvisionerCredential)
	if err != nil {
		return nil, err
	}
	return eitherProvisioner{cur, s.provision(r, n)}, nil
}

// provisionerChanged tells Deps.ProvisionerChanged about resource.
func (s *Service) provisionerChanged(resource string) {
	if s.provChange != nil {
		s.provChange(resource)
	}
}

// eitherProvisioner uses a, and b when a's login is refused (SQLSTATE
// 28P01 or 28000).
type eitherProvisioner struct{ a, b DBProvisioner }

func loginRefused(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && (pe.SQLState() == "28P01" || pe.SQLState() == "28000")
}

func (e eitherProvisioner) Create(ctx context.Context, r pgprovision.Role) (secrets.Secret, error) {
	pw, err := e.a.Create(ctx, r)
	if loginRefused(err) {
		return e.b.Create(ctx, r)
	}
	return pw, err
}

func (e eitherProvisioner) Terminate(ctx context.Context, role string) (int, error) {
	n, err := e.a.Terminate(ctx, role)
	if loginRefused(err) {
		return e.b.Terminate(ctx, role)
	}
	return n, err
}

func (e eitherProvisioner) Drop(ctx context.Context, role, owner string, dbs []string) error {
	err := e.a.Drop(ctx, role, owner, dbs)
	if loginRefused(err) {
		return e.b.Drop(ctx, role, owner, dbs)
	}
	return err
}

func (e eitherProvisioner) List(ctx context.Context) ([]string, error) {
	l, err := e.a.List(ctx)
	if loginRefused(err) {
		return e.b.List(ctx)
	}
	return l, err
}

func (e eitherProvisioner) Inspect(ctx context.Context, templates []string, owner string) (*pgprovision.Report, error) {
	r, err := e.a.Inspect(ctx, templates, owner)
	if loginRefused(err) {
		return e.b.Inspect(ctx, templates, owner)
	}
	return r, err
}

func (e eitherProvisioner) SetPassword(ctx context.Context, pw secrets.Secret) error {
	err := e.a.SetPassword(ctx, pw)
	if loginRefused(err) {
		return e.b.SetPassword(ctx, pw)
	}
	return err
}

// RotateProvisioner gives the provisioning role of ephemeral resource
// name a new random password on the database (ALTER ROLE … PASSWORD) and
// reseals it; the old one stops working. Admin only, with su verified.
// Audited resource.provisioner_rotated (never a password). Refused for a
// resource from the policy, whose secret lives in its env/file reference
// (rotate it there and apply again). The new password is recorded as
// pending before the database takes it, so a stop at any point leaves a
// credential that works (see provisioner).
func (s *Service) RotateProvisioner(ctx context.Context, p *identity.Principal, name string, su identity.StepUp) error {
	if err := s.ident.RequireAdmin(p); err != nil {
		return err
	}
	if err := s.ident.VerifyStepUp(ctx, p, su); err != nil {
		return err
	}
	r, err := s.resourceFor(ctx, p.User, name)
	if err != nil {
		return err
	}
	if !IsEphemeral(r) {
		return airlock.Errorf(airlock.EINVALID, "%s has no provisioning credential (its credentials are standing ones)", r.Name)
	}
	if r.Source == "policy" {
		return airlock.Errorf(airlock.EINVALID, "%s comes from the policy: its provisioning password is read from the reference there; change it on the database and in that secret, then apply the policy again", r.Name)
	}
	cur, err := s.OpenCredential(r, airlock.ProvisionerCredential)
	if err != nil {
		return err
	}
	prov, err := s.provisioner(r)
	if err != nil {
		return err
	}
	// Whatever the outcome, connections kept with the old password close:
	// the next use logs in with what the store then holds.
	defer s.provisionerChanged(r.Name)
	return s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "resource.provisioner_rotated", Resource: r.Name, SourceAddr: p.Source,
		Details: airlock.EventDetails("user", cur.User)},
		func(ctx context.Context) error {
			pw, err := pgprovision.NewPassword()
			if err != nil {
				return err
			}
			plain, _ := json.Marshal(sealedCredential{User: cur.User, Password: pw.Reveal()})
			next, err := s.sealer.Seal(plain, credAAD(r.Name, airlock.NextProvisionerCredential))
			if err != nil {
				return err
			}
			sealed, err := s.sealer.Seal(plain, credAAD(r.Name, airlock.ProvisionerCredential))
			if err != nil {
				return err
			}
			// Pending first: whatever happens next, one of the two works.
			// A pending one left by an earlier rotation that stopped
			// half-way may be the one that works: it is put back if the
			// database refuses this one.
			prev, hadPrev := r.Credentials[airlock.NextProvisionerCredential]
			r.Credentials[airlock.NextProvisionerCredential] = next
			if err := s.store.UpdateResource(ctx, r); err != nil {
				return err
			}
			if err := prov.SetPassword(ctx, pw); err != nil {
				delete(r.Credentials, airlock.NextProvisionerCredential)
				if hadPrev {
					r.Credentials[airlock.NextProvisionerCredential] = prev
				}
				s.store.UpdateResource(context.WithoutCancel(ctx), r) // should this write fail too, the stored pending one is one the database never took
				return err
			}
			r.Credentials[airlock.ProvisionerCredential] = sealed
			delete(r.Credentials, airlock.NextProvisionerCredential)
			return s.store.UpdateResource(ctx, r)
		})
}

func roleAAD(grantID string) []byte { return []byte("dbrole:" + grantID) }

// roleLock serialises the making of one grant's role in this process.
func (s *Service) roleLock(grantID string) func() {
	v, _ := s.roleLocks.LoadOrStore(grantID, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return func() { mu.Unlock(); s.roleLocks.Delete(grantID) }
}

// liveRole returns the credential of g's role if the store has it live.
func (s *Service) liveRole(ctx context.Context, grantID string) (*Credential, error) {
	row, err := s.store.DBRoleByGrant(ctx, grantID)
	if err != nil {
		return nil, err
	}
	if !row.DroppedAt.IsZero() {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "the database role of grant %s was dropped", grantID)
	}
	plain, err := s.sealer.Open(row.Password, roleAAD(grantID))
	if err != nil {
		return nil, airlock.WrapError(airlock.EINTERNAL, "cannot open a database role's password", err)
	}
	return &Credential{User: row.Role, Password: secrets.Secret(plain)}, nil
}

// errDBRole is why a connect to an ephemeral resource is refused when the
// grant's role cannot be had.
func errDBRole(r *airlock.Resource, g *airlock.Grant) error {
	return &airlock.Error{Code: airlock.EUNAVAILABLE,
		Message: fmt.Sprintf("airlock could not create the database login of grant %s on %s (the database may be unreachable); try again, or ask an administrator to run `airlock admin resources check %s`",
			g.ID, r.Name, r.Name),
		Details: map[string]any{"reason": "db_role_unavailable", "resource": r.Name}}
}

// IsDBRoleUnavailable reports whether err is the refusal of a connect
// whose grant's database role could not be made.
func IsDBRoleUnavailable(err error) bool {
	var e *airlock.Error
	return errors.As(err, &e) && e.Details["reason"] == "db_role_unavailable"
}

// ensureDBRole returns the login of g's role on ephemeral resource r,
// making it when the store has none live: audited db.role.created (the
// role's name, template, VALID UNTIL and limit; never the password).
func (s *Service) ensureDBRole(ctx context.Context, g *airlock.Grant, r *airlock.Resource) (*Credential, error) {
	unlock := s.roleLock(g.ID)
	defer unlock()
	if c, err := s.liveRole(ctx, g.ID); err == nil || !airlock.IsCode(err, airlock.ENOTFOUND) {
		return c, err
	}
	o := Options(r)
	template, ok := o.Templates[g.Access]
	if !ok {
		return nil, airlock.Errorf(airlock.EINVALID, "resource %s has no template role for access level %q", r.Name, g.Access)
	}
	p, err := s.provisioner(r)
	if err != nil {
		return nil, err
	}
	limit := o.ConnectionLimit
	if limit == 0 {
		limit = DefaultConnectionLimit
	}
	role := pgprovision.Role{Name: DBRoleName(r.Kind, g.UserName, g.ID), Template: template, ValidTo: g.EndsAt, ConnLimit: limit}
	var cred *Credential
	err = s.change(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "db.role.created", Resource: r.Name, RequestID: g.RequestID, GrantID: g.ID,
		Details: airlock.EventDetails("user", g.UserName, "role", role.Name, "template", template, "valid_until", g.EndsAt, "connection_limit", limit)},
		func(ctx context.Context) error {
			pw, err := p.Create(ctx, role)
			if err != nil && isDuplicateRole(err) {
				// Made before but never recorded (the store failed after
				// the database did): drop it and make it again.
				if _, terr := p.Terminate(ctx, role.Name); terr == nil {
					if derr := p.Drop(ctx, role.Name, o.Owner, Databases(r)); derr == nil {
						pw, err = p.Create(ctx, role)
					}
				}
			}
			if err != nil {
				return err
			}
			sealed, err := s.sealer.Seal([]byte(pw.Reveal()), roleAAD(g.ID))
			if err == nil {
				err = s.store.PutDBRole(ctx, &airlock.DBRole{GrantID: g.ID, Resource: r.Name, Role: role.Name, Password: sealed, CreatedAt: s.now().UTC()})
			}
			if err != nil {
				// Not recorded: the role must not outlive this failure.
				ctx := context.WithoutCancel(ctx)
				if _, terr := p.Terminate(ctx, role.Name); terr == nil {
					p.Drop(ctx, role.Name, o.Owner, Databases(r))
				}
				return err
			}
			cred = &Credential{User: role.Name, Password: pw}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return cred, nil
}

// isDuplicateRole reports whether err is the database refusing to make a
// role that exists: SQLSTATE 42710 from PostgreSQL, a DuplicateRole
// error from myprovision (MySQL says only HY000).
func isDuplicateRole(err error) bool {
	var pe interface{ SQLState() string }
	var de interface{ DuplicateRole() bool }
	return errors.As(err, &pe) && pe.SQLState() == "42710" || errors.As(err, &de) && de.DuplicateRole()
}

// provisionGrant makes g's role right after activation, when g is active
// now on an ephemeral resource. A failure leaves the grant as it is (the
// next connect tries again) and is audited as db.role.create_failed.
func (s *Service) provisionGrant(ctx context.Context, g *airlock.Grant) {
	r, err := s.store.ResourceByName(ctx, g.Resource)
	if err != nil || !IsEphemeral(r) || !g.ActiveAt(s.now()) {
		return
	}
	if _, err := s.ensureDBRole(ctx, g, r); err != nil {
		s.log.Error("create database role; the grant's first connect will try again", "grant", g.ID, "resource", g.Resource, "err", err)
		s.record(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "db.role.create_failed", Resource: g.Resource, RequestID: g.RequestID, GrantID: g.ID,
			Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("user", g.UserName, "role", DBRoleName(r.Kind, g.UserName, g.ID), "error", airlock.ErrorMessage(err))})
	}
}

// DBRoleCredential returns the login of grantID's live database role, for
// direct delivery and tests. It never makes one.
func (s *Service) DBRoleCredential(ctx context.Context, grantID string) (*Credential, error) {
	return s.liveRole(ctx, grantID)
}

// grantLive reports whether g may still be used (now or later): stored
// state active and ends_at not reached.
func grantLive(g *airlock.Grant, now time.Time) bool {
	return g.State == airlock.GrantActive && now.Before(g.EndsAt)
}

// SettleDBRoles terminates and drops the role of every grant that has
// ended (expired, revoked, user disabled, policy change) and returns how
// many it dropped. A role whose database cannot be reached stays recorded
// live and is tried again at the next call; its first failure is audited
// as db.role.drop_failed (an alert). Its VALID UNTIL has already made it
// unusable once ends_at passed. The roles are dropped in batches per
// resource (dropRoles).
func (s *Service) SettleDBRoles(ctx context.Context) (int, error) {
	rows, err := s.store.ListDBRoles(ctx, false)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var order []string // resources, in the order their first row came
	due := map[string][]roleDrop{}
	var lookupErr error
	for _, row := range rows {
		g, err := s.store.GrantByID(ctx, row.GrantID)
		if err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
			// The rows before this one are still settled below.
			lookupErr = err
			break
		}
		if err == nil && grantLive(g, now) {
			continue
		}
		why := "grant ended"
		if g != nil {
			why = "grant " + g.State
			if g.State == airlock.GrantActive {
				why = "grant expired"
			}
		}
		if _, ok := due[row.Resource]; !ok {
			order = append(order, row.Resource)
		}
		due[row.Resource] = append(due[row.Resource], roleDrop{Role: row.Role, GrantID: row.GrantID, Why: why})
	}
	dropped := 0
	for _, res := range order {
		dropped += s.dropRoles(ctx, res, due[res])
	}
	return dropped, lookupErr
}

// roleDrop is one role for dropRoles: GrantID is the grant whose row
// records it ("" for a role no row records), Why goes into its events.
type roleDrop struct{ Role, GrantID, Why string }

// batchDropper is a DBProvisioner that terminates and drops many roles in
// batches (pgprovision.Provisioner.DropMany).
type batchDropper interface {
	DropMany(ctx context.Context, roles []string, owner string, dbs []string) ([]pgprovision.Dropped, error)
}

// dropMany is p.DropMany, or Terminate then Drop role by role for a
// provisioner without it.
func dropMany(ctx context.Context, p DBProvisioner, roles []string, owner string, dbs []string) ([]pgprovision.Dropped, error) {
	if b, ok := p.(batchDropper); ok {
		return b.DropMany(ctx, roles, owner, dbs)
	}
	out := make([]pgprovision.Dropped, len(roles))
	for i, role := range roles {
		d := &out[i]
		d.Role = role
		if d.Backends, d.Err = p.Terminate(ctx, role); d.Err != nil {
			d.Step = "terminate"
			continue
		}
		d.Terminated = true
		if d.Err = p.Drop(ctx, role, owner, dbs); d.Err != nil {
			d.Step = "drop"
		}
	}
	return out, nil
}

func (e eitherProvisioner) DropMany(ctx context.Context, roles []string, owner string, dbs []string) ([]pgprovision.Dropped, error) {
	out, err := dropMany(ctx, e.a, roles, owner, dbs)
	if loginRefused(err) {
		return dropMany(ctx, e.b, roles, owner, dbs)
	}
	return out, err
}

// dropRoles terminates the backends of every role of items on resource
// and drops it (dropMany: batched over one connection per database),
// marks the grant's row of each role dropped, and audits what happened to
// each role: db.role.terminated once its backends were ended,
// db.role.dropped once it is gone, and for a role that is not, its first
// failure as db.role.drop_failed (an alert; it is tried again at the next
// pass). The events are written together (recordBatch). It returns how
// many roles are gone.
func (s *Service) dropRoles(ctx context.Context, resource string, items []roleDrop) int {
	if len(items) == 0 {
		return 0
	}
	var events []airlock.Event
	fail := func(it roleDrop, step string, err error) {
		s.log.Error("drop database role; will retry", "role", it.Role, "resource", resource, "step", step, "err", err)
		key := resource + "\x00" + it.Role
		if _, seen := s.dropAlerts.LoadOrStore(key, true); !seen {
			events = append(events, airlock.Event{Actor: airlock.SystemActor, Action: "db.role.drop_failed", Resource: resource, GrantID: it.GrantID,
				Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("role", it.Role, "step", step, "why", it.Why, "error", airlock.ErrorMessage(err))})
		}
	}
	write := func() {
		if _, err := s.recordBatch(ctx, events); err != nil {
			s.log.Error("audit database role drops", "resource", resource, "events", len(events), "err", err)
		}
	}
	failAll := func(step string, err error) int {
		for _, it := range items {
			fail(it, step, err)
		}
		write()
		return 0
	}
	r, err := s.store.ResourceByName(ctx, resource)
	if err != nil {
		return failAll("resource", err)
	}
	p, err := s.provisioner(r)
	if err != nil {
		return failAll("provisioner", err)
	}
	owner := Options(r).Owner
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Role
	}
	res, err := dropMany(ctx, p, names, owner, Databases(r))
	if err != nil {
		// No connection: nothing was done (Terminate's first step).
		return failAll("terminate", err)
	}
	dropped := 0
	for i, d := range res {
		it := items[i]
		if d.Terminated {
			events = append(events, airlock.Event{Actor: airlock.SystemActor, Action: "db.role.terminated", Resource: resource, GrantID: it.GrantID, Outcome: airlock.OutcomeSuccess,
				Details: airlock.EventDetails("role", it.Role, "backends", d.Backends, "why", it.Why)})
		}
		if d.Err != nil {
			fail(it, d.Step, d.Err)
			continue
		}
		dropped++
		s.dropAlerts.Delete(resource + "\x00" + it.Role)
		// Two replicas may settle the same role (a pass that outlived its
		// lease): db.role.dropped is written once. For a grant's role the
		// store decides — the pass whose update marks the row writes it
		// (found_absent when the role was already gone as it came: another
		// pass dropped it, or this one did and could not mark the row); a
		// row that could not be marked is marked and audited by the next
		// pass. For a stray role, the pass that found it still there.
		if it.GrantID != "" {
			if marked, err := s.store.SetDBRoleDropped(ctx, it.GrantID, s.now().UTC()); err != nil {
				s.log.Error("record database role dropped; the next pass records it", "role", it.Role, "err", err)
				continue
			} else if !marked {
				continue
			}
		} else if d.Absent {
			continue
		}
		details := airlock.EventDetails("role", it.Role, "owner", owner, "why", it.Why)
		if d.Absent {
			details = airlock.EventDetails("role", it.Role, "owner", owner, "why", it.Why, "found_absent", true)
		}
		events = append(events, airlock.Event{Actor: airlock.SystemActor, Action: "db.role.dropped", Resource: resource, GrantID: it.GrantID, Outcome: airlock.OutcomeSuccess,
			Details: details})
	}
	write()
	return dropped
}

// ReconcileDBRoles drops, on every ephemeral resource, each airlock_ role
// that no live grant of the resource accounts for (left by a crash, a
// store restored from backup, a role made while the store failed), and
// the role of every recorded grant that has ended (SettleDBRoles). It
// returns how many roles it dropped.
func (s *Service) ReconcileDBRoles(ctx context.Context) (int, error) {
	dropped, err := s.SettleDBRoles(ctx)
	if err != nil {
		return dropped, err
	}
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return dropped, err
	}
	rows, err := s.store.ListDBRoles(ctx, false)
	if err != nil {
		return dropped, err
	}
	byRole := map[string]string{}
	for _, row := range rows {
		byRole[row.Role] = row.GrantID
	}
	done := map[string]bool{} // servers already reconciled in this pass
	for _, r := range rs {
		if !IsEphemeral(r) || done[r.Addr] {
			continue
		}
		p, err := s.provisioner(r)
		if err != nil {
			s.log.Error("reconcile database roles", "resource", r.Name, "err", err)
			continue
		}
		names, err := p.List(ctx)
		if err != nil {
			s.log.Error("reconcile database roles; will retry", "resource", r.Name, "err", err)
			continue
		}
		done[r.Addr] = true
		// Several resources may share one database server, and every
		// airlock_ role on it is Airlock's: a role is kept when any live
		// grant, on any resource, accounts for it. The grants are read
		// after the roles: a grant is stored before its role is made, so
		// a role just made is never taken for a stray.
		gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{ActiveAt: s.now()})
		if err != nil {
			return dropped, err
		}
		live := map[string]bool{}
		for _, g := range gs {
			live[DBRoleName(r.Kind, g.UserName, g.ID)] = true
		}
		// Never the roles the resource is configured with (refused at
		// configuration; this holds for a resource stored before that).
		live[Options(r).Owner] = true
		for _, t := range Options(r).Templates {
			live[t] = true
		}
		if c, err := s.OpenCredential(r, airlock.ProvisionerCredential); err == nil {
			live[c.User] = true
		}
		var stray []roleDrop
		for _, name := range names {
			if !live[name] {
				stray = append(stray, roleDrop{Role: name, GrantID: byRole[name], Why: "reconcile: no live grant"})
			}
		}
		dropped += s.dropRoles(ctx, r.Name, stray)
	}
	return dropped, nil
}

// dbRolesLease is the store lease of the one replica that settles and
// reconciles database roles.
const dbRolesLease = "db-roles"

// RunDBRoles settles and reconciles database roles every interval, and at
// once whenever a revocation is published (a revoke, a disable, an
// expiry), while this replica (holder) has the store lease; it returns
// when ctx ends, releasing the lease. A replica without the lease does
// nothing until the holder's lease expires (three intervals).
func (s *Service) RunDBRoles(ctx context.Context, holder string, interval time.Duration) {
	kick := make(chan struct{}, 1)
	s.bus.Subscribe(func(airlock.Revocation) {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	t := time.NewTicker(interval)
	defer t.Stop()
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), dbRolesLease, holder)
	for {
		now := s.now()
		if ok, err := s.store.AcquireLease(ctx, dbRolesLease, holder, now, now.Add(3*interval)); err != nil {
			if ctx.Err() == nil {
				s.log.Error("database roles lease", "err", err)
			}
		} else if ok {
			if _, err := s.ReconcileDBRoles(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("reconcile database roles", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// DirectCredential is a grant's database login handed to its holder
// (`airlock db-credentials`): for a tool that cannot go through the
// gateway. It is shown once; statements on it are not recorded.
type DirectCredential struct {
	Resource string `json:"resource"`
	GrantID  string `json:"grant_id"`
	Addr     string `json:"addr"` // the database's host:port
	Database string `json:"database"`
	User     string `json:"user"`
	// Password is in the clear: this is the one answer that hands a
	// database password to a person, by the rule's choice.
	Password string `json:"password"`
	// ValidUntil is the grant's ends_at: the role's VALID UNTIL, and when
	// its sessions are terminated.
	ValidUntil time.Time `json:"valid_until"`
	Warning    string    `json:"warning"`
}

// directWarning is what the holder is told, and what the audit records.
const directWarning = "statements on a direct connection are not recorded by Airlock; the role and its sessions end with the grant"

// DeliverDBCredential hands p the login of p's grant on resource (at
// access, when given), when the resource has ephemeral credentials and the
// rule that allows the grant sets session.direct_credentials. The grant,
// policy and MFA are checked as for a connect token (AuthorizeConnect).
// Audited db.credentials.delivered with the warning (never the password).
// Errors: those of AuthorizeConnect; EFORBIDDEN (not ephemeral, not
// allowed by the rule); EUNAVAILABLE (the role could not be made).
func (s *Service) DeliverDBCredential(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp) (*DirectCredential, error) {
	g, r, d, err := s.AuthorizeConnect(ctx, p, resource, access, su)
	if err != nil {
		return nil, err
	}
	refuse := func(why, msg string) (*DirectCredential, error) {
		if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "db.credentials.refused", Resource: r.Name, GrantID: g.ID, RequestID: g.RequestID,
			SourceAddr: p.Source, Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", why)}); err != nil {
			return nil, err
		}
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "%s", msg)
	}
	if !IsEphemeral(r) {
		return refuse("resource has no ephemeral credentials", fmt.Sprintf("%s has standing credentials, which are never handed out; connect through the gateway: airlock psql %s", r.Name, r.Name))
	}
	if !d.Session.DirectCredentials {
		client := "psql"
		if r.Kind == airlock.KindMySQL {
			client = "mysql"
		}
		return refuse("rule does not allow direct credentials", fmt.Sprintf("rule %s does not allow direct database credentials (session.direct_credentials); connect through the gateway: airlock %s %s", d.Rule, client, r.Name))
	}
	cred, err := s.ensureDBRole(ctx, g, r)
	if err != nil {
		s.log.Error("database role for direct delivery", "grant", g.ID, "err", err)
		return nil, errDBRole(r, g)
	}
	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "db.credentials.delivered", Resource: r.Name, GrantID: g.ID, RequestID: g.RequestID,
		SourceAddr: p.Source, Details: airlock.EventDetails("role", cred.User, "valid_until", g.EndsAt, "warning", directWarning)}); err != nil {
		return nil, err
	}
	return &DirectCredential{Resource: r.Name, GrantID: g.ID, Addr: r.Addr, Database: Databases(r)[0], User: cred.User, Password: cred.Password.Reveal(),
		ValidUntil: g.EndsAt, Warning: directWarning}, nil
}

// ResourceCheck is `airlock admin resources check`: the provisioning state
// of a resource with ephemeral credentials and any drift.
type ResourceCheck struct {
	Resource string `json:"resource"`
	Kind     string `json:"kind"` // postgres or mysql
	// Error is why the database could not be inspected ("" when it was).
	Error       string   `json:"error,omitempty"`
	Provisioner string   `json:"provisioner,omitempty"`
	CreateRole  bool     `json:"create_role"`
	Missing     []string `json:"missing,omitempty"` // templates or owner that do not exist
	// MissingRights are what the provisioning login lacks besides
	// CreateRole (MySQL: PROCESS, CONNECTION ADMIN, the server version).
	MissingRights []string `json:"missing_rights,omitempty"`
	// Drift are roles Airlock did not make that hold a template's rights.
	Drift []pgprovision.Member `json:"drift,omitempty"`
	// Roles are the airlock_ roles on the server, each with its grant
	// ("" when no grant accounts for it: the reconciler drops it).
	Roles []CheckedRole `json:"roles,omitempty"`
	// Pending are the grants whose role is recorded but not yet dropped
	// although they ended (the database was unreachable).
	Pending []string `json:"pending,omitempty"`
}

// CheckedRole is one airlock_ role found on the server.
type CheckedRole struct {
	Role    string `json:"role"`
	GrantID string `json:"grant_id,omitempty"`
	Live    bool   `json:"live"`
}

// CheckResource inspects resource name's database. Admin only. Errors:
// EFORBIDDEN, ENOTFOUND, EINVALID (not ephemeral); an unreachable
// database is reported in the result, not as an error.
func (s *Service) CheckResource(ctx context.Context, p *identity.Principal, name string) (*ResourceCheck, error) {
	if err := s.ident.RequireAdmin(p); err != nil {
		return nil, err
	}
	r, err := s.resourceFor(ctx, p.User, name)
	if err != nil {
		return nil, err
	}
	if !IsEphemeral(r) {
		return nil, airlock.Errorf(airlock.EINVALID, "%s has standing credentials; check applies to resources with ephemeral credentials", r.Name)
	}
	o := Options(r)
	out := &ResourceCheck{Resource: r.Name, Kind: r.Kind}
	now := s.now()
	rows, err := s.store.ListDBRoles(ctx, false)
	if err != nil {
		return nil, err
	}
	byRole := map[string]string{}
	for _, row := range rows {
		byRole[row.Role] = row.GrantID
		if row.Resource != r.Name {
			continue
		}
		if g, err := s.store.GrantByID(ctx, row.GrantID); err != nil || !grantLive(g, now) {
			out.Pending = append(out.Pending, row.GrantID)
		}
	}
	prov, err := s.provisioner(r)
	if err != nil {
		return nil, err
	}
	templates := make([]string, 0, len(o.Templates))
	for _, l := range sortedLevels(r) {
		templates = append(templates, o.Templates[l])
	}
	rep, err := prov.Inspect(ctx, templates, o.Owner)
	if err != nil {
		out.Error = airlock.ErrorMessage(err)
		return out, nil
	}
	out.Provisioner, out.CreateRole, out.Missing, out.MissingRights, out.Drift = rep.Provisioner, rep.CreateRole, rep.Missing, rep.MissingRights, rep.Drift
	gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{ActiveAt: now})
	if err != nil {
		return nil, err
	}
	live := map[string]string{}
	for _, g := range gs {
		live[DBRoleName(r.Kind, g.UserName, g.ID)] = g.ID
	}
	for _, name := range rep.Roles {
		c := CheckedRole{Role: name, GrantID: byRole[name]}
		if id, ok := live[name]; ok {
			c.GrantID, c.Live = id, true
		}
		out.Roles = append(out.Roles, c)
	}
	return out, nil
}
