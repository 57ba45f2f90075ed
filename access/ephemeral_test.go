package access

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/secrets"
)

// fakeDB is a DBProvisioner for the unit tests of the service's logic (the
// real one is tested against PostgreSQL in pgprovision and end to end in
// cmd/airlock): it keeps a set of roles, and fails while down is set.
type fakeDB struct {
	mu      sync.Mutex
	roles   map[string]string // role -> template
	down    bool
	created int
	dropped []string
}

var errDown = errors.New("connect: connection refused")

func (f *fakeDB) Create(_ context.Context, r pgprovision.Role) (secrets.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return "", errDown
	}
	f.roles[r.Name] = r.Template
	f.created++
	return secrets.Secret("pw-" + r.Name), nil
}

func (f *fakeDB) Terminate(context.Context, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, errDown
	}
	return 1, nil
}

func (f *fakeDB) Drop(_ context.Context, role, _ string, _ []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	delete(f.roles, role)
	f.dropped = append(f.dropped, role)
	return nil
}

func (f *fakeDB) List(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errDown
	}
	var out []string
	for r := range f.roles {
		out = append(out, r)
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeDB) Inspect(ctx context.Context, _ []string, _ string) (*pgprovision.Report, error) {
	names, err := f.List(ctx)
	if err != nil {
		return nil, err
	}
	return &pgprovision.Report{Provisioner: "provisioner", CreateRole: true, Roles: names}, nil
}

func (f *fakeDB) SetPassword(context.Context, secrets.Secret) error { return nil }

func (f *fakeDB) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeDB) has(role string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.roles[role]
	return ok
}

func newEphemeralService(t *testing.T, clk *clock) (*Service, airlock.Store, *audit.Log, *fakeDB) {
	t.Helper()
	svc, store, al := newTestService(t, clk)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	db := &fakeDB{roles: map[string]string{}}
	svc.sealer = kr
	svc.provision = func(*airlock.Resource, *Credential) DBProvisioner { return db }
	return svc, store, al, db
}

func ephemeralInput() ResourceInput {
	return ResourceInput{Name: "prod-db", Kind: airlock.KindPostgres, Addr: "db:5432",
		Options:     ResourceOptions{Credentials: "ephemeral", Owner: "app_owner", Templates: map[string]string{"read": "app_read", "write": `app "write" ü`}},
		Provisioner: &CredentialInput{User: "provisioner", Password: "prov-secret-xyz"}}
}

// TestBuildEphemeral: an ephemeral resource's access levels are its
// templates' and its provisioning credential is sealed under the reserved
// key; incomplete or unsafe configuration is refused.
func TestBuildEphemeral(t *testing.T) {
	svc, _, _, _ := newEphemeralService(t, &clock{t: time.Now()})
	r, err := svc.build(ephemeralInput(), "api")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedLevels(r); !slices.Equal(got, []string{"read", "write"}) {
		t.Fatalf("access levels %v, want [read write]", got)
	}
	if !IsEphemeral(r) || len(r.Credentials[airlock.ProvisionerCredential]) == 0 || bytes.Contains(r.Credentials[airlock.ProvisionerCredential], []byte("prov-secret-xyz")) {
		t.Fatal("provisioning credential not sealed under @provisioner")
	}
	c, err := svc.OpenCredential(r, airlock.ProvisionerCredential)
	if err != nil || c.User != "provisioner" || c.Password.Reveal() != "prov-secret-xyz" {
		t.Fatalf("OpenCredential(@provisioner) = %v, %v", c, err)
	}
	if v := View(r); v.Credentials != "ephemeral" || v.Owner != "app_owner" || v.Templates["write"] != `app "write" ü` {
		t.Fatalf("view %+v", v)
	}
	my := ephemeralInput()
	my.Kind, my.Addr, my.Options.Owner = airlock.KindMySQL, "db:3306", ""
	if r, err := svc.build(my, "api"); err != nil || !IsEphemeral(r) {
		t.Fatalf("a mysql resource with ephemeral credentials: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*ResourceInput)
		want string
	}{
		{"no-provisioner", func(in *ResourceInput) { in.Provisioner = nil }, "provisioning credential"},
		{"no-password", func(in *ResourceInput) { in.Provisioner.Password = "" }, "provisioning credential"},
		{"no-owner", func(in *ResourceInput) { in.Options.Owner = "" }, "owner"},
		{"no-templates", func(in *ResourceInput) { in.Options.Templates = nil }, "template role per access level"},
		{"standing-too", func(in *ResourceInput) {
			in.Credentials = map[string]CredentialInput{"read": {User: "ro", Password: "x"}}
		}, "no standing credentials"},
		{"mysql-owner", func(in *ResourceInput) { in.Kind = airlock.KindMySQL }, "owner is for postgres"},
		{"ssh", func(in *ResourceInput) { in.Kind = airlock.KindSSH }, "postgres and mysql resources"},
		{"bad-mode", func(in *ResourceInput) { in.Options.Credentials = "temporary" }, "static or ephemeral"},
		{"static-with-templates", func(in *ResourceInput) { in.Options.Credentials = "" }, "need credentials ephemeral"},
		{"provisioner-prefix", func(in *ResourceInput) { in.Provisioner.User = "airlock_provisioner" }, "must not start with airlock_"},
		{"owner-prefix", func(in *ResourceInput) { in.Options.Owner = "airlock_owner" }, "must not start with airlock_"},
		{"template-prefix", func(in *ResourceInput) { in.Options.Templates["read"] = "airlock_read" }, "must not start with airlock_"},
		{"level-name", func(in *ResourceInput) { in.Options.Templates["@provisioner"] = "x" }, "invalid access level"},
		{"long-template", func(in *ResourceInput) { in.Options.Templates["read"] = strings.Repeat("r", 64) }, "at most 63 bytes"},
		{"limit", func(in *ResourceInput) { in.Options.ConnectionLimit = 10001 }, "connection_limit"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			in := ephemeralInput()
			tc.edit(&in)
			_, err := svc.build(in, "api")
			if !airlock.IsCode(err, airlock.EINVALID) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build: %v, want EINVALID with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "prov-secret-xyz") {
				t.Fatal("the error holds the provisioning password")
			}
		})
	}
}

func auditActions(t *testing.T, store airlock.Store, action string) []airlock.Event {
	t.Helper()
	evs, err := store.ListEvents(context.Background(), airlock.EventFilter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestDBRoleLifecycle: a grant's role is made once (and its login comes
// back from the store), kept while the grant is live, and terminated and
// dropped once it ends; a database that is down is retried, alerted once;
// reconcile drops strays but never the resource's own roles.
// ephemeralGrant stores the ephemeral resource prod-db and an active
// grant id of alice's at access, from t0 for an hour.
func ephemeralGrant(t *testing.T, svc *Service, store airlock.Store, t0 time.Time, id, access string) (*airlock.Resource, *airlock.Grant) {
	t.Helper()
	ctx := context.Background()
	r, err := svc.build(ephemeralInput(), "api")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateResource(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r, aliceGrant(t, store, t0, id, access)
}

// aliceGrant stores an active grant id of alice's on prod-db at access,
// from t0 for an hour.
func aliceGrant(t *testing.T, store airlock.Store, t0 time.Time, id, access string) *airlock.Grant {
	t.Helper()
	g := &airlock.Grant{ID: id, RequestID: "req_" + id, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: access,
		StartsAt: t0, EndsAt: t0.Add(time.Hour), State: airlock.GrantActive, CreatedAt: t0}
	if err := store.CreateGrant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDBRoleLifecycle(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, _, db := newEphemeralService(t, clk)
	r, g := ephemeralGrant(t, svc, store, t0, "gr_1", "write")
	svc.provisionGrant(ctx, g)
	role := pgprovision.RoleName("alice", "gr_1")
	if db.roles[role] != `app "write" ü` {
		t.Fatalf("roles %v, want %s in the write template", db.roles, role)
	}
	c, err := svc.ensureDBRole(ctx, g, r)
	if err != nil || c.User != role || c.Password.Reveal() != "pw-"+role || db.created != 1 {
		t.Fatalf("ensureDBRole again = %v, %v (created %d); want the stored login", c, err, db.created)
	}
	evs := auditActions(t, store, "db.role.created")
	if len(evs) != 1 || strings.Contains(string(evs[0].Details), "pw-") {
		t.Fatalf("db.role.created events %v", evs)
	}

	// Live: nothing dropped, by settle or reconcile; a stray is, and the
	// resource's own roles never are.
	db.roles["airlock_ghost"] = ""
	db.roles["provisioner"], db.roles["app_owner"], db.roles["app_read"] = "", "", ""
	if n, err := svc.ReconcileDBRoles(ctx); err != nil || n != 1 || db.has("airlock_ghost") || !db.has(role) {
		t.Fatalf("reconcile: %d, %v; roles %v", n, err, db.roles)
	}
	for _, own := range []string{"provisioner", "app_owner", "app_read"} {
		if !db.has(own) {
			t.Fatalf("reconcile dropped the resource's own role %s", own)
		}
	}

	// Ended while the database is down: retried, one alert.
	if err := store.EndGrant(ctx, g.ID, airlock.GrantRevoked, t0.Add(time.Minute), "admin", "done"); err != nil {
		t.Fatal(err)
	}
	db.setDown(true)
	for range 2 {
		if n, err := svc.SettleDBRoles(ctx); err != nil || n != 0 {
			t.Fatalf("settle while down: %d, %v", n, err)
		}
	}
	if evs := auditActions(t, store, "db.role.drop_failed"); len(evs) != 1 || evs[0].Outcome != airlock.OutcomeFailure {
		t.Fatalf("drop_failed events %v, want one failure", evs)
	}
	db.setDown(false)
	if n, err := svc.SettleDBRoles(ctx); err != nil || n != 1 || db.has(role) {
		t.Fatalf("settle: %d, %v; roles %v", n, err, db.roles)
	}
	row, err := store.DBRoleByGrant(ctx, g.ID)
	if err != nil || row.DroppedAt.IsZero() {
		t.Fatalf("row after the drop: %+v, %v", row, err)
	}
	if n, err := svc.SettleDBRoles(ctx); err != nil || n != 0 {
		t.Fatalf("settle again: %d, %v", n, err)
	}
	for _, a := range []string{"db.role.terminated", "db.role.dropped"} {
		found := false
		for _, e := range auditActions(t, store, a) {
			found = found || e.GrantID == g.ID
		}
		if !found {
			t.Fatalf("no %s for %s", a, g.ID)
		}
	}
	// A connect after the end finds no login.
	if _, err := svc.DBRoleCredential(ctx, g.ID); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("DBRoleCredential after the drop: %v", err)
	}
}

// TestDBRoleDroppedOnce: two passes that both listed an ended grant's
// role (two replicas, one of which outlived its lease) drop it, and the
// audit says so once: the store's mark of the row decides which pass
// writes db.role.dropped.
func TestDBRoleDroppedOnce(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, _, db := newEphemeralService(t, clk)
	_, g := ephemeralGrant(t, svc, store, t0, "gr_3", "read")
	svc.provisionGrant(ctx, g)
	role := pgprovision.RoleName("alice", g.ID)
	clk.t = t0.Add(2 * time.Hour)
	items := []roleDrop{{Role: role, GrantID: g.ID, Why: "grant expired"}}
	for pass := range 2 {
		if n := svc.dropRoles(ctx, "prod-db", items); n != 1 || db.has(role) {
			t.Fatalf("pass %d: %d dropped; role still there: %v", pass, n, db.has(role))
		}
	}
	if evs := auditActions(t, store, "db.role.dropped"); len(evs) != 1 || evs[0].GrantID != g.ID {
		t.Fatalf("db.role.dropped events %v; want one for %s", evs, g.ID)
	}

	// A drop whose row the store could not mark is not audited by that
	// pass: the next one marks it and writes the one event.
	g2 := aliceGrant(t, store, t0, "gr_4", "read")
	clk.t = t0
	svc.provisionGrant(ctx, g2)
	clk.t = t0.Add(2 * time.Hour)
	role2 := pgprovision.RoleName("alice", g2.ID)
	items = []roleDrop{{Role: role2, GrantID: g2.ID, Why: "grant expired"}}
	svc.store = unmarkable{store}
	if n := svc.dropRoles(ctx, "prod-db", items); n != 1 || db.has(role2) {
		t.Fatalf("drop with the mark failing: %d dropped, role there: %v", n, db.has(role2))
	}
	if evs := auditActions(t, store, "db.role.dropped"); len(evs) != 1 {
		t.Fatalf("db.role.dropped written for a row that was not marked: %v", evs)
	}
	svc.store = store
	svc.dropRoles(ctx, "prod-db", items)
	if evs := auditActions(t, store, "db.role.dropped"); len(evs) != 2 || evs[1].GrantID != g2.ID {
		t.Fatalf("db.role.dropped events after the next pass %v; want the second for %s", evs, g2.ID)
	}
}

// unmarkable is a store whose SetDBRoleDropped fails.
type unmarkable struct{ airlock.Store }

func (unmarkable) SetDBRoleDropped(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("disk full")
}

// TestProvisionGrantDown: a grant activated while the database is down
// keeps the grant, audits db.role.create_failed, and its first connect
// tries again.
func TestProvisionGrantDown(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, _, db := newEphemeralService(t, clk)
	r, _ := svc.build(ephemeralInput(), "api")
	if err := store.CreateResource(ctx, r); err != nil {
		t.Fatal(err)
	}
	g := &airlock.Grant{ID: "gr_2", RequestID: "req_2", UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: "read",
		StartsAt: t0, EndsAt: t0.Add(time.Hour), State: airlock.GrantActive, CreatedAt: t0}
	store.CreateGrant(ctx, g)
	db.setDown(true)
	svc.provisionGrant(ctx, g)
	if evs := auditActions(t, store, "db.role.create_failed"); len(evs) != 1 {
		t.Fatalf("create_failed events %v", evs)
	}
	// The announcement of a role not made is retracted (audit.Change).
	if evs := auditActions(t, store, "db.role.created"); len(evs) != 2 || evs[1].Outcome != airlock.OutcomeFailure ||
		!strings.Contains(string(evs[1].Details), "retracts_seq") {
		t.Fatalf("db.role.created for a role not made, not retracted: %v", evs)
	}
	if _, err := svc.ensureDBRole(ctx, g, r); err == nil {
		t.Fatal("ensureDBRole succeeded with the database down")
	}
	db.setDown(false)
	if c, err := svc.ensureDBRole(ctx, g, r); err != nil || c.User != pgprovision.RoleName("alice", "gr_2") {
		t.Fatalf("ensureDBRole once the database is back: %v, %v", c, err)
	}
}

// sqlStateErr is an error with a PostgreSQL SQLSTATE, as pgconn's are.
type sqlStateErr string

func (e sqlStateErr) Error() string    { return "server error: SQLSTATE " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

// refusingDB refuses every login, as the database does for a password it
// no longer has.
type refusingDB struct{ fakeDB }

func (*refusingDB) List(context.Context) ([]string, error) { return nil, sqlStateErr("28P01") }

// TestProvisionerDuringRotation: while a rotation is unfinished the
// provisioner logs in with whichever credential the database accepts, and
// other errors are not retried with the other.
func TestProvisionerDuringRotation(t *testing.T) {
	good := &fakeDB{roles: map[string]string{"airlock_a_gr_1": "r"}}
	e := eitherProvisioner{&refusingDB{}, good}
	if l, err := e.List(context.Background()); err != nil || len(l) != 1 {
		t.Fatalf("List with the first login refused = %v, %v; want the second's", l, err)
	}
	good.setDown(true)
	e = eitherProvisioner{good, &refusingDB{}}
	if _, err := e.List(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("List with the first database down = %v; want its error, not a retry", err)
	}
	// The service picks it when the resource holds a pending credential.
	svc, store, _, _ := newEphemeralService(t, &clock{t: time.Now()})
	r, err := svc.build(ephemeralInput(), "api")
	if err != nil {
		t.Fatal(err)
	}
	r.Credentials[airlock.NextProvisionerCredential], _ = svc.sealer.Seal([]byte(`{"user":"provisioner","password":"next-pw"}`),
		credAAD(r.Name, airlock.NextProvisionerCredential))
	if err := store.CreateResource(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	p, err := svc.provisioner(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(eitherProvisioner); !ok {
		t.Fatalf("provisioner with a pending credential is %T, want eitherProvisioner", p)
	}
	if got := sortedLevels(r); !slices.Equal(got, []string{"read", "write"}) {
		t.Fatalf("a pending credential shows as an access level: %v", got)
	}
}

// A standing database login named like Airlock's own would be dropped by
// the reconciler on a server shared with an ephemeral resource: refused.
func TestStaticLoginPrefixRefused(t *testing.T) {
	svc, _, _, _ := newEphemeralService(t, &clock{t: time.Now()})
	for _, kind := range []string{airlock.KindPostgres, airlock.KindMySQL} {
		in := ResourceInput{Name: "legacy", Kind: kind, Addr: "db:5432",
			Credentials: map[string]CredentialInput{"read": {User: "airlock_reader", Password: "x"}}}
		if _, err := svc.build(in, "api"); !airlock.IsCode(err, airlock.EINVALID) || !strings.Contains(airlock.ErrorMessage(err), "must not start with airlock_") {
			t.Errorf("%s: %v", kind, err)
		}
		in.Credentials["read"] = CredentialInput{User: "reader", Password: "x"}
		if _, err := svc.build(in, "api"); err != nil {
			t.Errorf("%s with another name: %v", kind, err)
		}
	}
}
