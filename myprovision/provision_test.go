package myprovision

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/secrets"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// setup makes a database, a provisioning account with exactly the rights
// the package documents, and two template roles (one with a name that
// needs quoting), and returns a Provisioner logged in as that account.
func setup(t testing.TB) (*testenv.MariaDBServer, *Provisioner, string) {
	t.Helper()
	m := testenv.MariaDB(t)
	db := m.NewDatabase(t)
	m.Exec(t, "CREATE TABLE `"+db+"`.items (id INT PRIMARY KEY)")
	m.Exec(t, "INSERT INTO `"+db+"`.items VALUES (1), (2)")
	sfx := strings.TrimPrefix(db, "t_")
	prov, read, odd := "prov"+sfx, "app_read_"+sfx, "app `write' ü "+sfx
	m.CreateUser(t, prov, "prov-password-"+sfx, "CREATE USER, PROCESS, CONNECTION ADMIN ON *.*", "SELECT (User, Host) ON mysql.user", "SELECT (User, Host, Role, Admin_option) ON mysql.roles_mapping")
	for _, r := range []string{read, odd} {
		m.Exec(t, "CREATE ROLE "+ident(r))
		t.Cleanup(func() { m.Exec(t, "DROP ROLE IF EXISTS "+ident(r)) })
		m.Exec(t, "GRANT "+ident(r)+" TO "+ident(prov)+"@'%' WITH ADMIN OPTION")
	}
	m.Exec(t, "GRANT SELECT ON "+ident(db)+".* TO "+ident(read))
	m.Exec(t, "GRANT ALL ON "+ident(db)+".* TO "+ident(odd))
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", m.Addr, prov, "prov-password-"+sfx
	return m, &Provisioner{Config: cfg}, db
}

// login opens a connection as user with pw to db.
func login(t *testing.T, m *testenv.MariaDBServer, user string, pw secrets.Secret, db string) (*sql.DB, error) {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", m.Addr, user, pw.Reveal(), db
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(conn)
	t.Cleanup(func() { d.Close() })
	d.SetMaxIdleConns(0)
	return d, d.Ping()
}

// A user made for a grant logs in with its password only, holds exactly
// its template's rights (as its default role), and at most its connection
// limit; Terminate kills its connections, made through anything, and
// locks it; Drop removes it, and again is not an error.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	name := UserName("Alice O'Brien", "gra_"+db)
	read := "app_read_" + strings.TrimPrefix(db, "t_")
	t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS "+account(name)) })
	pw, err := p.Create(ctx, pgprovision.Role{Name: name, Template: read, ValidTo: time.Now().Add(time.Hour), ConnLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(ctx, pgprovision.Role{Name: name, Template: read}); err == nil {
		t.Fatal("a second Create of the same user succeeded")
	} else if d, ok := err.(interface{ DuplicateRole() bool }); !ok || !d.DuplicateRole() {
		t.Fatalf("a second Create: %v, not a duplicate", err)
	}
	if _, err := login(t, m, name, "wrong", db); err == nil {
		t.Fatal("a wrong password logged in")
	} else if e := (&Error{Err: err}); e.SQLState() != "28000" {
		t.Fatalf("a wrong password: %v (SQLSTATE %q)", err, e.SQLState())
	}
	d, err := login(t, m, name, pw, db)
	if err != nil {
		t.Fatal(err)
	}
	var cu, role string
	var n int
	if err := d.QueryRow("SELECT CURRENT_USER(), CURRENT_ROLE(), (SELECT COUNT(*) FROM items)").Scan(&cu, &role, &n); err != nil {
		t.Fatal(err)
	}
	if cu != name+"@%" || role != read || n != 2 {
		t.Fatalf("logged in as %s with role %s, read %d rows", cu, role, n)
	}
	if _, err := d.Exec("INSERT INTO items VALUES (3)"); err == nil {
		t.Fatal("the read template's user wrote")
	}
	// The limit: two connections held, a third refused. (The connections
	// closed above may still count for a moment: the server ends a
	// connection's thread after its client has gone.)
	testenv.Eventually(t, 10*time.Second, func() bool {
		out, err := m.Run(t, "--batch", "--skip-column-names", "-e",
			"SELECT COUNT(*) FROM information_schema.processlist WHERE user = '"+name+"'")
		return err == nil && strings.TrimSpace(out) == "0"
	}, "connections of %s still counted", name)
	held := []*sql.Conn{}
	for i := 0; i < 2; i++ {
		c, err := d.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if c, err := d.Conn(ctx); err == nil {
		if err := c.PingContext(ctx); err == nil {
			t.Fatal("a third connection over MAX_USER_CONNECTIONS 2")
		}
		c.Close()
	}
	names, err := p.List(ctx)
	if err != nil || !contains(names, name) {
		t.Fatalf("List: %v %v", names, err)
	}
	killed, err := p.Terminate(ctx, name)
	if err != nil || killed != 2 {
		t.Fatalf("Terminate: %d killed, %v", killed, err)
	}
	for _, c := range held {
		if err := c.PingContext(ctx); err == nil {
			t.Fatal("a connection survived Terminate")
		}
		c.Close()
	}
	if _, err := login(t, m, name, pw, db); err == nil {
		t.Fatal("a locked user logged in")
	}
	if err := p.Drop(ctx, name, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Drop(ctx, name, "", nil); err != nil {
		t.Fatalf("a second Drop: %v", err)
	}
	if n, err := p.Terminate(ctx, name); err != nil || n != 0 {
		t.Fatalf("Terminate of a dropped user: %d %v", n, err)
	}
	if names, _ := p.List(ctx); contains(names, name) {
		t.Fatalf("List after Drop: %v", names)
	}
}

// A template name that needs quoting is one identifier, never SQL; names
// that are not Airlock's are refused before reaching the server.
func TestNamesAreQuoted(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	odd := "app `write' ü " + strings.TrimPrefix(db, "t_")
	name := UserName("bob", "gra_odd_"+db)
	t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS "+account(name)) })
	pw, err := p.Create(ctx, pgprovision.Role{Name: name, Template: odd})
	if err != nil {
		t.Fatal(err)
	}
	d, err := login(t, m, name, pw, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec("INSERT INTO items VALUES (7)"); err != nil {
		t.Fatalf("the write template's user cannot write: %v", err)
	}
	for _, bad := range []string{"root", "airlock_x`@`%` IDENTIFIED BY 'x", "airlock_" + strings.Repeat("a", 30), ""} {
		if _, err := p.Create(ctx, pgprovision.Role{Name: bad, Template: odd}); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q): %v", bad, err)
		}
		if _, err := p.Terminate(ctx, bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Terminate(%q): %v", bad, err)
		}
		if err := p.Drop(ctx, bad, "", nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Drop(%q): %v", bad, err)
		}
	}
	if _, err := p.Create(ctx, pgprovision.Role{Name: UserName("bob", "x"), Template: "no\x00pe"}); !errors.Is(err, ErrBadName) {
		t.Errorf("a template with NUL: %v", err)
	}
}

// Inspect names the provisioning account, its CREATE USER right, missing
// templates and users Airlock did not make that hold a template.
func TestInspect(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	sfx := strings.TrimPrefix(db, "t_")
	read := "app_read_" + sfx
	m.CreateUser(t, "drift"+sfx, "drift-password")
	m.Exec(t, "GRANT "+ident(read)+" TO "+ident("drift"+sfx)+"@'%'")
	name := UserName("carol", "gra_"+db)
	t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS "+account(name)) })
	if _, err := p.Create(ctx, pgprovision.Role{Name: name, Template: read}); err != nil {
		t.Fatal(err)
	}
	rep, err := p.Inspect(ctx, []string{read, "nope_" + sfx}, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Provisioner != "prov"+sfx || !rep.CreateRole {
		t.Errorf("provisioner %q create %v", rep.Provisioner, rep.CreateRole)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != "nope_"+sfx {
		t.Errorf("missing %v", rep.Missing)
	}
	if len(rep.Drift) != 1 || rep.Drift[0] != (pgprovision.Member{Role: "drift" + sfx, Template: read}) {
		t.Errorf("drift %+v", rep.Drift)
	}
	if !contains(rep.Roles, name) {
		t.Errorf("roles %v", rep.Roles)
	}
}

func TestUserName(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range [][2]string{{"alice", "gra_1"}, {"alice", "gra_2"}, {"Ålice the very long name of someone", "gra_1"}, {"", "gra_1"}, {"a`b'c", "gr\x00a"}} {
		n := UserName(c[0], c[1])
		if len(n) > MaxName || checkUser(n) != nil || seen[n] {
			t.Errorf("UserName(%q, %q) = %q", c[0], c[1], n)
		}
		seen[n] = true
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// SetPassword changes the provisioning account's own password: the old
// one stops working, the new one makes users.
func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	_, p, db := setup(t)
	if err := p.SetPassword(ctx, "short"); err == nil {
		t.Fatal("a short password was taken")
	}
	pw, err := NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetPassword(ctx, pw); err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(ctx); err == nil {
		t.Fatal("the old password still logs in")
	} else if e := (&Error{Err: err}); !strings.Contains(err.Error(), "28000") && e.SQLState() != "28000" {
		t.Fatalf("old password: %v", err)
	}
	cfg := p.Config.Clone()
	cfg.Passwd = pw.Reveal()
	np := &Provisioner{Config: cfg}
	if _, err := np.List(ctx); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	_ = db
}

// Without PROCESS the server shows the provisioning account only its own
// connections: Terminate fails (the user stays locked, its connections
// are not claimed ended), Inspect names what is missing, and the
// password hashes of other accounts stay unreadable with the documented
// column grants.
func TestTerminateNeedsProcess(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	sfx := strings.TrimPrefix(db, "t_")
	read := "app_read_" + sfx
	weak := "weak" + sfx
	m.CreateUser(t, weak, "weak-password-"+sfx, "CREATE USER, CONNECTION ADMIN ON *.*", "SELECT (User, Host) ON mysql.user", "SELECT (User, Host, Role, Admin_option) ON mysql.roles_mapping")
	m.Exec(t, "GRANT "+ident(read)+" TO "+ident(weak)+"@'%' WITH ADMIN OPTION")
	cfg := p.Config.Clone()
	cfg.User, cfg.Passwd = weak, "weak-password-"+sfx
	wp := &Provisioner{Config: cfg}
	name := UserName("erin", "gra_"+db)
	t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS "+account(name)) })
	pw, err := wp.Create(ctx, pgprovision.Role{Name: name, Template: read})
	if err != nil {
		t.Fatal(err)
	}
	d, err := login(t, m, name, pw, db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := wp.Terminate(ctx, name); !errors.Is(err, ErrCannotSee) {
		t.Fatalf("Terminate without PROCESS: %v", err)
	}
	if out, err := wp.DropMany(ctx, []string{name}, "", nil); err != nil || !errors.Is(out[0].Err, ErrCannotSee) || out[0].Terminated {
		t.Fatalf("DropMany without PROCESS: %+v %v", out, err)
	}
	if err := c.PingContext(ctx); err != nil {
		t.Fatalf("the connection was not to be touched: %v", err)
	}
	if _, err := login(t, m, name, pw, db); err == nil {
		t.Fatal("the user was not locked")
	}
	rep, err := wp.Inspect(ctx, []string{read}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.MissingRights) != 1 || !strings.Contains(rep.MissingRights[0], "PROCESS") {
		t.Fatalf("missing rights %v", rep.MissingRights)
	}
	if rep, err := p.Inspect(ctx, []string{read}, ""); err != nil || len(rep.MissingRights) != 0 {
		t.Fatalf("the documented account: %+v %v", rep, err)
	}
	pc, release, err := p.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var hash string
	if err := pc.QueryRowContext(ctx, "SELECT authentication_string FROM mysql.user WHERE User = ?", weak).Scan(&hash); err == nil {
		t.Fatal("the provisioning account reads password hashes")
	}
}

// A stray airlock_ account on another host than '%' is listed, and
// dropped with every other account of its name.
func TestOtherHosts(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	name := UserName("frank", "gra_"+db)
	m.Exec(t, "CREATE USER "+ident(name)+"@'localhost' IDENTIFIED BY 'x'")
	m.Exec(t, "CREATE USER "+ident(name)+"@'10.%' IDENTIFIED BY 'x'")
	t.Cleanup(func() {
		m.Exec(t, "DROP USER IF EXISTS "+ident(name)+"@'localhost'")
		m.Exec(t, "DROP USER IF EXISTS "+ident(name)+"@'10.%'")
	})
	if names, err := p.List(ctx); err != nil || !contains(names, name) {
		t.Fatalf("List: %v %v", names, err)
	}
	out, err := p.DropMany(ctx, []string{name}, "", nil)
	if err != nil || out[0].Err != nil || out[0].Absent || !out[0].Terminated {
		t.Fatalf("DropMany: %+v %v", out, err)
	}
	if names, _ := p.List(ctx); contains(names, name) {
		t.Fatalf("still listed: %v", names)
	}
	if out, _ := p.DropMany(ctx, []string{name}, "", nil); !out[0].Absent {
		t.Fatalf("a second DropMany: %+v", out)
	}
}
