package pgprovision

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestDropMany drops roles in batches (of 2, so that the roles cross
// batch boundaries): a role with a live backend and a table it made (kept,
// reassigned to the owner), names with quotes and unicode, a name that is
// no role, and a role the batch cannot drop (it owns a table in a
// database outside dbs): its batch is done again role by role, so only it
// is left, with the step that failed.
func TestDropMany(t *testing.T) {
	pg, db, p := setup(t)
	p.BatchSize = 2
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	owner, write := "app_owner_"+sfx, "app_write_"+sfx
	alice := RoleName("alice", "gr_a"+sfx)
	pw, err := p.Create(ctx, Role{Name: alice, Template: write, ValidTo: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := login(ctx, pg, db, alice, pw.Reveal(), "airlock:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE TABLE public.made_by_alice (x int)"); err != nil {
		t.Fatal(err)
	}
	quoted := Prefix + `o"brien'; DROP ROLE postgres; -- ` + sfx
	uni := Prefix + "zoë_日本_" + sfx
	stuck := Prefix + "stuck_" + sfx
	other := pg.NewDatabase(t)
	prov := "prov_" + sfx
	for _, r := range []string{quoted, uni, stuck} {
		pg.Exec(t, db, fmt.Sprintf("CREATE ROLE %s LOGIN; GRANT %[1]s TO %s", pgx.Identifier{r}.Sanitize(), prov))
	}
	pg.Exec(t, other, fmt.Sprintf("CREATE TABLE elsewhere (x int); ALTER TABLE elsewhere OWNER TO %s", pgx.Identifier{stuck}.Sanitize()))
	ghost := Prefix + "ghost_" + sfx
	roles := []string{alice, quoted, stuck, uni, ghost} // batches: [alice quoted] [stuck uni] [ghost]
	got, err := p.DropMany(ctx, roles, owner, []string{db})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(roles) {
		t.Fatalf("%d results for %d roles", len(got), len(roles))
	}
	for i, d := range got {
		if d.Role != roles[i] {
			t.Fatalf("result %d is for %q; want %q", i, d.Role, roles[i])
		}
		if d.Role == stuck {
			if d.Err == nil || d.Step != "drop" || !d.Terminated {
				t.Fatalf("stuck role: %+v; want terminated and a drop error", d)
			}
			continue
		}
		if d.Err != nil || !d.Terminated {
			t.Fatalf("%q: %+v; want dropped", d.Role, d)
		}
		if d.Absent != (d.Role == ghost) {
			t.Fatalf("%q: Absent %v; want it only for the name that is no role", d.Role, d.Absent)
		}
		if roleExists(t, pg, d.Role) {
			t.Fatalf("%q still exists", d.Role)
		}
		want := 0
		if d.Role == alice {
			want = 1
		}
		if d.Backends != want {
			t.Fatalf("%q: %d backends terminated; want %d", d.Role, d.Backends, want)
		}
	}
	if !roleExists(t, pg, stuck) || !roleExists(t, pg, "postgres") {
		t.Fatal("the stuck role or postgres is gone")
	}
	if !testenv.Poll(10*time.Second, func() bool { return c.Ping(ctx) != nil }) {
		t.Fatal("alice's connection still answers after DropMany")
	}
	su, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	var tableOwner string
	if err := su.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_alice'").Scan(&tableOwner); err != nil {
		t.Fatalf("the table alice made is gone: %v", err)
	}
	if tableOwner != owner {
		t.Fatalf("owner %q; want %s", tableOwner, owner)
	}
	var canLogin bool
	if err := su.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", stuck).Scan(&canLogin); err != nil || canLogin {
		t.Fatalf("stuck role can log in: %v, %v; want NOLOGIN", canLogin, err)
	}
	// Once what blocked it is gone, a retry drops it.
	pg.Exec(t, other, "DROP TABLE elsewhere")
	got, err = p.DropMany(ctx, []string{stuck}, owner, []string{db})
	if err != nil || got[0].Err != nil || got[0].Absent || roleExists(t, pg, stuck) {
		t.Fatalf("retry: %+v, %v; want dropped", got, err)
	}
	// Dropped again (another replica got there first): nothing done, and
	// said so.
	got, err = p.DropMany(ctx, []string{stuck}, owner, []string{db})
	if err != nil || got[0].Err != nil || !got[0].Absent {
		t.Fatalf("drop of a role already gone: %+v, %v; want Absent", got, err)
	}
}

// TestDropManyUnreachable: no connection, nothing done, an error.
func TestDropManyUnreachable(t *testing.T) {
	p := &Provisioner{Connect: func(context.Context, string) (*pgx.Conn, error) {
		return nil, fmt.Errorf("connection refused")
	}}
	if _, err := p.DropMany(t.Context(), []string{Prefix + "x"}, "", nil); err == nil {
		t.Fatal("DropMany without a connection: no error")
	}
	got, err := p.DropMany(t.Context(), []string{""}, "", nil)
	if err != nil || got[0].Err != ErrBadName {
		t.Fatalf("empty name: %+v, %v; want ErrBadName and no connection", got, err)
	}
}

// TestDropManyDatabaseGone: a database of dbs that cannot be reached
// keeps the roles from being dropped, not from being locked and their
// backends ended.
func TestDropManyDatabaseGone(t *testing.T) {
	pg, db, p := setup(t)
	ctx := t.Context()
	sfx := strings.TrimPrefix(db, "t_")
	role := RoleName("bob", "gr_b"+sfx)
	pw, err := p.Create(ctx, Role{Name: role, Template: "app_read_" + sfx, ValidTo: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := login(ctx, pg, db, role, pw.Reveal(), "airlock:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	got, err := p.DropMany(ctx, []string{role}, "app_owner_"+sfx, []string{db, "no_such_db_" + sfx})
	if err != nil {
		t.Fatal(err)
	}
	if d := got[0]; !d.Terminated || d.Backends != 1 || d.Err == nil || d.Step != "drop" {
		t.Fatalf("%+v; want terminated (1 backend) and a drop error", d)
	}
	if !roleExists(t, pg, role) {
		t.Fatal("role dropped although a database could not be reached")
	}
	if !testenv.Poll(10*time.Second, func() bool { return c.Ping(ctx) != nil }) {
		t.Fatal("bob's connection still answers")
	}
	if _, err := login(ctx, pg, db, role, pw.Reveal(), "x"); err == nil {
		t.Fatal("login after DropMany succeeded; want refused (NOLOGIN)")
	}
}
