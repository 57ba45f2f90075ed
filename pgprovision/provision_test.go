package pgprovision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlockhq/airlock/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// setup makes a database with a provisioning role (CREATEROLE, ADMIN on
// the templates), templates app_read and app_write and an owner role, as
// docs would have a DBA do, and returns a Provisioner logged in as the
// provisioning role.
func setup(t testing.TB) (*testenv.PG, string, *Provisioner) {
	t.Helper()
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	sfx := strings.TrimPrefix(db, "t_")
	prov, read, write, owner := "prov_"+sfx, "app_read_"+sfx, "app_write_"+sfx, "app_owner_"+sfx
	pg.Exec(t, db, fmt.Sprintf(`
		CREATE ROLE %[1]s LOGIN CREATEROLE PASSWORD 'provpw';
		CREATE ROLE %[2]s NOLOGIN; CREATE ROLE %[3]s NOLOGIN; CREATE ROLE %[4]s NOLOGIN;
		GRANT %[2]s, %[3]s, %[4]s TO %[1]s WITH ADMIN OPTION;
		GRANT CONNECT ON DATABASE %[5]s TO %[2]s, %[3]s;
		GRANT USAGE, CREATE ON SCHEMA public TO %[3]s;
		GRANT USAGE ON SCHEMA public TO %[2]s;
		CREATE TABLE public.items (id int); INSERT INTO public.items VALUES (1);
		GRANT SELECT ON public.items TO %[2]s, %[3]s;`, prov, read, write, owner, db))
	p := &Provisioner{Connect: func(ctx context.Context, d string) (*pgx.Conn, error) {
		if d == "" {
			d = db
		}
		return pgx.Connect(ctx, fmt.Sprintf("postgres://%s:provpw@%s:%d/%s?sslmode=disable", prov, pg.Host, pg.Port, d))
	}}
	return pg, db, p
}

func login(ctx context.Context, pg *testenv.PG, db, role, pw, app string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", role, pg.Host, pg.Port, db))
	if err != nil {
		return nil, err
	}
	cfg.Password = pw
	cfg.RuntimeParams["application_name"] = app
	return pgx.ConnectConfig(ctx, cfg)
}

func roleExists(t *testing.T, pg *testenv.PG, role string) bool {
	t.Helper()
	c, err := pgx.Connect(t.Context(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestLifecycle(t *testing.T) {
	t.Run("connect-each-time", func(t *testing.T) { lifecycle(t, false) })
	t.Run("pooled", func(t *testing.T) { lifecycle(t, true) })
}

// usePool makes p borrow its own-database connections from a Pools
// closed at the end of t, and returns it.
func usePool(t *testing.T, pg *testenv.PG, db string, p *Provisioner) *Pools {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://prov_%s:provpw@%s:%d/%s?sslmode=disable", strings.TrimPrefix(db, "t_"), pg.Host, pg.Port, db))
	if err != nil {
		t.Fatal(err)
	}
	pools := &Pools{}
	t.Cleanup(pools.Close)
	p.Acquire = pools.Acquirer("r", cfg, "", true)
	return pools
}

func lifecycle(t *testing.T, pooled bool) {
	pg, db, p := setup(t)
	if pooled {
		usePool(t, pg, db, p)
	}
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	role := RoleName("alice", "gr_"+sfx)
	pw, err := p.Create(ctx, Role{Name: role, Template: "app_write_" + sfx, ValidTo: time.Now().Add(time.Hour), ConnLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("login/runs-as-the-role", func(t *testing.T) {
		c, err := login(ctx, pg, db, role, pw.Reveal(), "airlock:alice:gr_"+sfx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var cur, app string
		if err := c.QueryRow(ctx, "SELECT current_user, application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&cur, &app); err != nil {
			t.Fatal(err)
		}
		if cur != role || app != "airlock:alice:gr_"+sfx {
			t.Fatalf("current_user %q application_name %q; want %q and airlock:alice:gr_%s", cur, app, role, sfx)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM public.items").Scan(&n); err != nil {
			t.Fatalf("template privilege not inherited: %v", err)
		}
		if _, err := c.Exec(ctx, "CREATE TABLE public.made_under_grant (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("terminate/ends-a-direct-connection", func(t *testing.T) {
		c, err := login(ctx, pg, db, role, pw.Reveal(), "some-other-tool")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		n, err := p.Terminate(ctx, role)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("terminated %d backends; want 1", n)
		}
		// pg_terminate_backend only signals: wait until the backend is gone.
		if !testenv.Poll(10*time.Second, func() bool { return c.Ping(ctx) != nil }) {
			t.Fatal("the direct connection still answers after Terminate")
		}
		if _, err := login(ctx, pg, db, role, pw.Reveal(), "x"); err == nil {
			t.Fatal("login after Terminate succeeded; want refused (NOLOGIN)")
		}
	})
	t.Run("drop/keeps-objects-with-owner", func(t *testing.T) {
		if err := p.Drop(ctx, role, "app_owner_"+sfx, []string{db}); err != nil {
			t.Fatal(err)
		}
		if roleExists(t, pg, role) {
			t.Fatalf("role %s still exists after Drop", role)
		}
		c, err := pgx.Connect(ctx, pg.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var owner string
		if err := c.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_under_grant'").Scan(&owner); err != nil {
			t.Fatalf("object made under the grant is gone: %v", err)
		}
		if owner != "app_owner_"+sfx {
			t.Fatalf("owner %q; want app_owner_%s", owner, sfx)
		}
		if err := p.Drop(ctx, role, "app_owner_"+sfx, []string{db}); err != nil {
			t.Fatalf("second Drop (retry) failed: %v", err)
		}
	})
}

func TestValidUntil(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	role := RoleName("bob", "gr_past"+sfx)
	pw, err := p.Create(ctx, Role{Name: role, Template: "app_read_" + sfx, ValidTo: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Drop(context.Background(), role, "", []string{db}) })
	_, err = login(ctx, pg, db, role, pw.Reveal(), "x")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("login past VALID UNTIL: %v; want password authentication failed (28P01)", err)
	}
}

func TestMaliciousNames(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	users := []string{`x"; DROP ROLE postgres; --`, "o'brien", "zoë_日本", strings.Repeat("a", 200), ""}
	seen := map[string]bool{}
	for i, u := range users {
		role := RoleName(u, fmt.Sprintf("gr_%d%s", i, sfx))
		if len(role) > 63 || seen[role] {
			t.Fatalf("RoleName(%q) = %q: too long or not distinct", u, role)
		}
		seen[role] = true
		pw, err := p.Create(ctx, Role{Name: role, Template: "app_read_" + sfx, ValidTo: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatalf("user %q: %v", u, err)
		}
		if len(pw.Reveal()) != 64 {
			t.Fatalf("password of %d characters; want 64 hex digits", len(pw.Reveal()))
		}
		if !roleExists(t, pg, role) {
			t.Fatalf("role %q not made", role)
		}
		if err := p.Drop(ctx, role, "", []string{db}); err != nil {
			t.Fatal(err)
		}
	}
	if !roleExists(t, pg, "postgres") {
		t.Fatal("the postgres role is gone")
	}
	// A template name with quotes is quoted, not executed.
	_, err := p.Create(ctx, Role{Name: RoleName("eve", "gr_q"+sfx), Template: `app_read"; DROP ROLE postgres; --`, ValidTo: time.Now().Add(time.Hour)})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42704" {
		t.Fatalf("template with quotes: %v; want undefined role (42704)", err)
	}
	if !roleExists(t, pg, "postgres") {
		t.Fatal("the postgres role is gone")
	}
}

// TestPasswordNotInServerLog pins that the password never reaches the
// server in the clear: a failed CREATE ROLE is logged with its statement.
func TestPasswordNotInServerLog(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	role := RoleName("dave", "gr_log"+sfx)
	_, err := p.Create(ctx, Role{Name: role, Template: "no_such_template_" + sfx, ValidTo: time.Now().Add(time.Hour)})
	if err == nil {
		t.Fatal("Create with a missing template succeeded")
	}
	if regexp.MustCompile(`[0-9a-f]{64}`).MatchString(err.Error()) {
		t.Fatalf("error holds a 64-hex-digit string: %v", err)
	}
	var logged []byte
	if !testenv.Poll(10*time.Second, func() bool {
		logged, _ = os.ReadFile(filepath.Join(pg.Dir, "postgres.log"))
		return bytes.Contains(logged, []byte(role))
	}) {
		t.Fatalf("the failed statement for %s is not in the server log; the check would be vacuous", role)
	}
	for _, line := range strings.Split(string(logged), "\n") {
		if strings.Contains(line, role) && regexp.MustCompile(`PASSWORD '[0-9a-f]{64}'`).MatchString(line) {
			t.Fatalf("server log holds the password in the clear: %s", line)
		}
	}
}

func TestList(t *testing.T) {
	_, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	role := RoleName("carol", "gr_l"+sfx)
	if _, err := p.Create(ctx, Role{Name: role, Template: "app_read_" + sfx, ValidTo: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Drop(context.Background(), role, "", []string{db}) })
	names, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		if !strings.HasPrefix(n, Prefix) {
			t.Fatalf("List returned %q without the prefix", n)
		}
		found = found || n == role
	}
	if !found {
		t.Fatalf("List = %v; want it to include %s", names, role)
	}
}

// TestInspect: the provisioning role's CREATEROLE, missing roles, and
// roles Airlock did not make that hold a template's rights (drift) — not
// Airlock's own, not the provisioning role.
func TestInspect(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	read, write, owner := "app_read_"+sfx, "app_write_"+sfx, "app_owner_"+sfx
	role := RoleName("dave", "gr_i"+sfx)
	if _, err := p.Create(ctx, Role{Name: role, Template: read, ValidTo: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Drop(context.Background(), role, "", []string{db}) })
	pg.Exec(t, db, fmt.Sprintf(`CREATE ROLE legacy_%[1]s LOGIN; GRANT %[2]s TO legacy_%[1]s;`, sfx, write))
	rep, err := p.Inspect(ctx, []string{read, write, "nosuch_" + sfx}, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.CreateRole || rep.Provisioner != "prov_"+sfx {
		t.Fatalf("provisioner %q createrole %v", rep.Provisioner, rep.CreateRole)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != "nosuch_"+sfx {
		t.Fatalf("missing %v", rep.Missing)
	}
	if len(rep.Drift) != 1 || rep.Drift[0] != (Member{Role: "legacy_" + sfx, Template: write}) {
		t.Fatalf("drift %v, want legacy_%s in %s only", rep.Drift, sfx, write)
	}
	found := false
	for _, r := range rep.Roles {
		found = found || r == role
	}
	if !found {
		t.Fatalf("roles %v lack %s", rep.Roles, role)
	}
}

// TestSetPassword: the provisioning role's new password works and the old
// one does not.
func TestSetPassword(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	pw, err := NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetPassword(ctx, pw); err != nil {
		t.Fatal(err)
	}
	if c, err := login(ctx, pg, db, "prov_"+sfx, "provpw", "old"); err == nil {
		c.Close(ctx)
		t.Fatal("the old provisioning password still works")
	}
	c, err := login(ctx, pg, db, "prov_"+sfx, pw.Reveal(), "new")
	if err != nil {
		t.Fatalf("the new provisioning password: %v", err)
	}
	c.Close(ctx)
}

// TestPoolsClose: Forget and Close end the kept connections; after Close
// no connection is lent.
func TestPoolsClose(t *testing.T) {
	pg, db, p := setup(t)
	pools := usePool(t, pg, db, p)
	ctx := t.Context()
	su, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	prov := "prov_" + strings.TrimPrefix(db, "t_")
	kept := func() int {
		var n int
		if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", prov).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := p.List(ctx); err != nil {
		t.Fatal(err)
	}
	if n := kept(); n != 1 {
		t.Fatalf("%d connections kept after List; want 1", n)
	}
	pools.Forget("r")
	if !testenv.Poll(10*time.Second, func() bool { return kept() == 0 }) {
		t.Fatalf("%d connections still open after Forget", kept())
	}
	if _, err := p.List(ctx); err != nil {
		t.Fatalf("List after Forget: %v; want a new pool", err)
	}
	pools.Close()
	if !testenv.Poll(10*time.Second, func() bool { return kept() == 0 }) {
		t.Fatalf("%d connections still open after Close", kept())
	}
	if _, err := p.List(ctx); err == nil {
		t.Fatal("List after Close succeeded; want refused")
	}
}
