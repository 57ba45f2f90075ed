package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/pgprovision"
)

const pgEphemeralPolicy = `version: 1
rules:
  - name: devs-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read, write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// pgEphemeralDirectPolicy is pgEphemeralPolicy with direct delivery of
// the grant's login allowed.
const pgEphemeralDirectPolicy = pgEphemeralPolicy + `    session: {direct_credentials: true}
`

// provisionPassword is the provisioning role's password: it must never
// appear in logs, audit or CLI output.
const provisionPassword = "prov-Secret-Never-Shown-4k9q"

// ephemeralDBA runs, as the superuser, what docs/postgres.md has a DBA run
// on a fresh database for ephemeral users: a provisioning role, an owner,
// and template roles holding the privileges (one with a quote and a
// non-ASCII letter in its name, to show names are quoted, never spliced).
func ephemeralDBA(t *testing.T, pg *testenv.PG, db string) {
	t.Helper()
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'provisioner') THEN
    CREATE ROLE provisioner LOGIN CREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_read') THEN CREATE ROLE app_read NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app "write" ü') THEN CREATE ROLE "app ""write"" ü" NOLOGIN; END IF;
END $$;
ALTER ROLE provisioner PASSWORD '`+provisionPassword+`';
GRANT app_read, "app ""write"" ü", app_owner TO provisioner WITH ADMIN OPTION;`)
	pg.Exec(t, db, `GRANT CONNECT ON DATABASE `+pgx.Identifier{db}.Sanitize()+` TO app_read, "app ""write"" ü";
GRANT USAGE ON SCHEMA public TO app_read;
GRANT USAGE, CREATE ON SCHEMA public TO "app ""write"" ü";
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.items VALUES (1, 'one');
GRANT SELECT ON public.items TO app_read;
GRANT SELECT, INSERT ON public.items TO "app ""write"" ü";`)
}

// TestE2EPGEphemeralRoles pins issue 18: on a resource with ephemeral
// credentials a grant gets its own login role — named for the person and
// the grant, with the template's privileges, application_name
// airlock:<user>:<grant> — that exists only while the grant is active.
// Revoking terminates even a direct connection's backend and drops the
// role, keeping what it created (owned by the owner role); a role whose
// grant expired while Airlock was down is dropped at the next start; a
// stray airlock_ role is reconciled away. The provisioning and role
// passwords never reach logs, audit or CLI output.
func TestE2EPGEphemeralRoles(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ephemeralDBA(t, pg, db)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	dataDir := filepath.Join(t.TempDir(), "data")
	pgAddr := freeAddr(t)
	tweak := func(c *serverConfig) {
		c.PGAddr = pgAddr
		c.DBRoleInterval = 200 * time.Millisecond
	}
	h := startHarness(t, dataDir, clk, tweak)
	tm := setupTeam(t, h, pgEphemeralPolicy)
	t.Setenv("PROV_PW", provisionPassword)
	addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	// Incomplete configuration is refused, and so is a provisioning
	// role the reconciler would take for one of its own.
	if out, err := h.run(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", addr, "--database", db,
		"--ephemeral", "--provisioner", "airlock_prov:env:PROV_PW", "--template", "read=app_read", "--owner", "app_owner"); err == nil || !strings.Contains(out+err.Error(), "must not start with airlock_") {
		t.Fatalf("provisioning role named airlock_…: err=%v\n%s", err, out)
	}
	if out, err := h.run(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", addr, "--database", db,
		"--ephemeral", "--provisioner", "provisioner:env:PROV_PW", "--template", "read=app_read"); err == nil || !strings.Contains(out+err.Error(), "--owner") {
		t.Fatalf("ephemeral resource without an owner: err=%v\n%s", err, out)
	}
	out := h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", addr, "--database", db,
		"--ephemeral", "--provisioner", "provisioner:env:PROV_PW", "--template", "read=app_read",
		"--template", `write=app "write" ü`, "--owner", "app_owner", "--connection-limit", "5")
	if !strings.Contains(out, "read, write") {
		t.Fatalf("resources add: %s", out)
	}

	roleExists := func(name string) bool {
		conn, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	psql := func(sql string) (string, error) {
		return h.runProc(tm.alice, nil, "psql", "prod-db", "--", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	}

	// A write grant: its role exists as soon as the grant is active.
	g := h.grant(tm, "prod-db", "write")
	role := pgprovision.RoleName("alice", g.ID)
	if !roleExists(role) {
		t.Fatalf("no role %s after the grant became active; log:\n%s", role, h.logs.String())
	}
	out, err := psql(`SELECT current_user || '|' || current_setting('application_name') || '|' || pg_has_role(current_user, 'app "write" ü', 'USAGE')::text || '|' || pg_has_role(current_user, 'app_read', 'USAGE')::text`)
	if want := role + "|airlock:alice:" + g.ID + "|true|false"; err != nil || !strings.Contains(out, want) {
		t.Fatalf("psql through airlock: want %q; err=%v\n%s", want, err, out)
	}
	// The template's privileges, no more: insert yes, delete no.
	if out, err := psql(`INSERT INTO items VALUES (2, 'two'); CREATE TABLE made_by_grant (id int); SELECT 'ok'`); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("write through the grant's role: err=%v\n%s", err, out)
	}
	if out, err := psql(`DELETE FROM items`); err == nil || !strings.Contains(out, "permission denied") {
		t.Fatalf("DELETE beyond the template's privileges: err=%v\n%s", err, out)
	}

	// check: the grant's role is live; a role Airlock did not make that
	// holds a template's rights is drift.
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'legacy_ro') THEN CREATE ROLE legacy_ro LOGIN; END IF;
END $$;
GRANT app_read TO legacy_ro`)
	out = h.must(tm.admin, "", "admin", "resources", "check", "prod-db")
	if !strings.Contains(out, "role "+role+": live, grant "+g.ID) || !strings.Contains(out, "drift: legacy_ro holds the rights of template app_read") ||
		!strings.Contains(out, "provisioning role provisioner (CREATEROLE: true)") {
		t.Fatalf("admin resources check:\n%s", out)
	}

	// Direct delivery: refused unless the rule allows it; then the role's
	// login, handed to alice with a warning, opens a connection that does
	// not go through the gateway.
	h.fresh(tm.alice, tm.aliceSecret)
	if out, err := h.run(tm.alice, "", "db-credentials", "prod-db"); err == nil || !strings.Contains(out+err.Error(), "direct_credentials") {
		t.Fatalf("db-credentials without the rule allowing it: err=%v\n%s", err, out)
	}
	pol := filepath.Join(t.TempDir(), "direct.yaml")
	if err := os.WriteFile(pol, []byte(pgEphemeralDirectPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "policy", "apply", "-f", pol)
	h.fresh(tm.alice, tm.aliceSecret)
	var cred access.DirectCredential
	if err := json.Unmarshal([]byte(h.must(tm.alice, "", "--output", "json", "db-credentials", "prod-db")), &cred); err != nil || cred.User != role || cred.Password == "" {
		t.Fatalf("db-credentials: %+v, %v", cred, err)
	}
	direct, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", role, cred.Password, addr, db))
	if err != nil {
		t.Fatalf("direct login as the grant's role: %v", err)
	}
	defer direct.Close(context.Background())
	if _, err := direct.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	// The resource cannot be removed while its grants' roles exist: its
	// provisioning credential would go with it.
	h.step()
	if out, err := h.run(tm.admin, "", "admin", "resources", "rm", "prod-db", "--otp", totp(t, tm.adminSecret, clk.Now())); err == nil ||
		!strings.Contains(out+err.Error(), "still has 1 database roles") {
		t.Fatalf("rm with a live role: err=%v\n%s", err, out)
	}

	// Revoke: the direct backend is terminated and the role dropped; the
	// table it made is kept, owned by the owner.
	h.must(tm.admin, "", "revoke", g.ID, "--reason", `done "quoted" ü`)
	if !testenv.Poll(10*time.Second, func() bool { return !roleExists(role) }) {
		t.Fatalf("role %s still there 10 s after revoke; server log:\n%s", role, h.logs.String())
	}
	if _, err := direct.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("the direct connection still works after revoke")
	}
	conn, err := pgx.Connect(context.Background(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var owner string
	if err := conn.QueryRow(context.Background(), `SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_grant'`).Scan(&owner); err != nil || owner != "app_owner" {
		t.Fatalf("made_by_grant after the drop: owner %q, %v", owner, err)
	}
	h.fresh(tm.admin, tm.adminSecret)
	// The drop's events are written after the drop the test saw.
	for _, action := range []string{"db.role.created", "db.credentials.delivered", "db.role.terminated", "db.role.dropped"} {
		h.awaitEvents(tm.admin, action, func(evs []airlock.Event) bool {
			return slices.ContainsFunc(evs, func(e airlock.Event) bool {
				return e.GrantID == g.ID && strings.Contains(string(e.Details), role)
			})
		})
	}

	// A stray airlock_ role (made as Airlock makes them, by the
	// provisioning role, but recorded nowhere: a store restored from an
	// older backup) is reconciled away.
	prov, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://provisioner:%s@%s/%s?sslmode=disable", provisionPassword, addr, db))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Exec(context.Background(), `CREATE ROLE airlock_ghost_x LOGIN; GRANT airlock_ghost_x TO CURRENT_USER`); err != nil {
		t.Fatal(err)
	}
	prov.Close(context.Background())
	if !testenv.Poll(10*time.Second, func() bool { return !roleExists("airlock_ghost_x") }) {
		t.Fatalf("stray role still there after 10 s; server log:\n%s", h.logs.String())
	}

	// A grant that expires while Airlock is down: its role is gone after
	// the next start.
	g2 := h.grant(tm, "prod-db", "read")
	role2 := pgprovision.RoleName("alice", g2.ID)
	if !roleExists(role2) {
		t.Fatalf("no role %s for the read grant", role2)
	}
	h.stop()
	clk.Advance(2 * time.Hour)
	h2 := startHarness(t, dataDir, clk, func(c *serverConfig) {
		tweak(c)
		c.HTTPAddr = strings.TrimPrefix(h.url, "http://")
	})
	waitFor(t, func() bool { return !roleExists(role2) })

	// Rotation: the old provisioning password stops working on the
	// database, and roles are still made and dropped with the new one.
	// The server keeps its provisioning connection (it just dropped
	// role2 through it); the rotation closes it.
	keptBefore := func(at time.Time) int {
		conn, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE usename = 'provisioner'
			AND application_name = 'airlock:provisioner' AND backend_start < $1`, at).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var rotateAt time.Time // the database's clock
	if su, err := pgx.Connect(context.Background(), pg.DSN("postgres")); err != nil {
		t.Fatal(err)
	} else {
		err = su.QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&rotateAt)
		su.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	}
	if keptBefore(rotateAt) == 0 {
		t.Fatalf("no provisioning connection kept before the rotation; log:\n%s", h2.logs.String())
	}
	h2.step()
	if out := h2.must(tm.admin, "", "admin", "resources", "rotate", "prod-db", "--otp", totp(t, tm.adminSecret, clk.Now())); !strings.Contains(out, "Rotated") {
		t.Fatalf("rotate: %s", out)
	}
	if c, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://provisioner:%s@%s/%s?sslmode=disable", provisionPassword, addr, db)); err == nil {
		c.Close(context.Background())
		t.Fatal("the old provisioning password still works after rotate")
	}
	if !testenv.Poll(10*time.Second, func() bool { return keptBefore(rotateAt) == 0 }) {
		t.Fatalf("%d provisioning connections made before the rotation still open after it", keptBefore(rotateAt))
	}
	g3 := h2.grant(tm, "prod-db", "read")
	role3 := pgprovision.RoleName("alice", g3.ID)
	if !roleExists(role3) {
		t.Fatalf("no role %s after rotate; log:\n%s", role3, h2.logs.String())
	}
	h2.must(tm.admin, "", "revoke", g3.ID)
	waitFor(t, func() bool { return !roleExists(role3) })

	// No password anywhere it could be read.
	h2.fresh(tm.admin, tm.adminSecret)
	all := h2.must(tm.admin, "", "--output", "json", "audit", "tail", "-n", "500")
	res := h2.must(tm.admin, "", "--output", "json", "admin", "resources", "list")
	for _, secret := range []string{provisionPassword, cred.Password} {
		for where, text := range map[string]string{"server log": h.logs.String() + h2.logs.String(), "audit": all, "resources list": res} {
			if strings.Contains(text, secret) {
				t.Errorf("a password appears in the %s", where)
			}
		}
	}
	if !strings.Contains(res, `"credentials": "ephemeral"`) {
		t.Errorf("resources list does not show ephemeral credentials:\n%s", res)
	}
}

// TestE2EReplicasEphemeralRoles: two replicas on one store settle the
// roles of ended grants without racing: each role is dropped once, with
// one db.role.dropped, and neither replica fails a drop.
func TestE2EReplicasEphemeralRoles(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	storeDSN := pg.DSN(pg.NewDatabase(t))
	ephemeralDBA(t, pg, db)
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	tweak := func(c *serverConfig) {
		c.Store = storeDSN
		c.PGAddr = freeAddr(t)
		c.DBRoleInterval = 100 * time.Millisecond
	}
	dirA := filepath.Join(t.TempDir(), "a")
	a := startHarness(t, dirA, clk, tweak)
	tm := setupTeam(t, a, pgEphemeralPolicy)
	t.Setenv("PROV_PW", provisionPassword)
	a.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", db,
		"--ephemeral", "--provisioner", "provisioner:env:PROV_PW", "--template", "read=app_read",
		"--template", `write=app "write" ü`, "--owner", "app_owner")
	dirB := filepath.Join(t.TempDir(), "b")
	copyDir(t, dirA, dirB)
	b := startHarness(t, dirB, clk, tweak)

	var roles []string
	var grants []string
	for range 4 {
		g := a.grant(tm, "prod-db", "read")
		grants = append(grants, g.ID)
		roles = append(roles, pgprovision.RoleName("alice", g.ID))
	}
	conn, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	count := func() int {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)`, roles).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != len(roles) {
		t.Fatalf("%d of %d roles exist after the grants", n, len(roles))
	}
	// All expire at once: both replicas' sweepers and settlers see it.
	clk.Advance(2 * time.Hour)
	waitFor(t, func() bool { return count() == 0 })
	a.fresh(tm.admin, tm.adminSecret)
	// The events are written after the drops the test saw: wait for one
	// per grant, then no grant may have two.
	dropped := map[string]int{}
	a.awaitEvents(tm.admin, "db.role.dropped", func(evs []airlock.Event) bool {
		clear(dropped)
		for _, e := range evs {
			dropped[e.GrantID]++
		}
		return !slices.ContainsFunc(grants, func(id string) bool { return dropped[id] == 0 })
	})
	for _, id := range grants {
		if dropped[id] != 1 {
			t.Errorf("grant %s: %d db.role.dropped events, want 1", id, dropped[id])
		}
	}
	if evs := a.auditEvents(tm.admin, "db.role.drop_failed"); len(evs) != 0 {
		t.Errorf("drop failures: %v", evs)
	}
	for name, h := range map[string]*harness{"A": a, "B": b} {
		if strings.Contains(h.logs.String(), "drop database role") {
			t.Errorf("replica %s logged a failed drop:\n%s", name, h.logs.String())
		}
	}
}
