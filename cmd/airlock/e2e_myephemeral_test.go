package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/myprovision"
)

const myEphemeralPolicy = `version: 1
rules:
  - name: devs-mysql
    who: {groups: [devs]}
    resources: {names: [prod-mysql]}
    access: [read, write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
    session: {direct_credentials: true}
`

// myEphemeralDBA runs, as root, what docs/mysql.md has a DBA run for
// ephemeral users: the provisioning account with exactly the rights
// myprovision documents, and template roles holding the privileges (one
// with a backtick, a quote and a non-ASCII letter in its name). Role
// names carry sfx: the server is shared by the package's tests.
func myEphemeralDBA(t *testing.T, m *testenv.MariaDBServer, db, sfx, provPW string) (prov, read, write string) {
	t.Helper()
	prov, read, write = "prov"+sfx, "app_read_"+sfx, "app `write' ü "+sfx
	m.CreateUser(t, prov, provPW, "CREATE USER, PROCESS, CONNECTION ADMIN ON *.*", "SELECT (User, Host) ON mysql.user", "SELECT (User, Host, Role, Admin_option) ON mysql.roles_mapping")
	q := func(n string) string { return "`" + strings.ReplaceAll(n, "`", "``") + "`" }
	for _, r := range []string{read, write} {
		m.Exec(t, "CREATE ROLE "+q(r))
		t.Cleanup(func() { m.Exec(t, "DROP ROLE IF EXISTS "+q(r)) })
		m.Exec(t, "GRANT "+q(r)+" TO "+q(prov)+"@'%' WITH ADMIN OPTION")
	}
	m.Exec(t, "CREATE TABLE "+q(db)+".items (id INT PRIMARY KEY, name VARCHAR(40))")
	m.Exec(t, "INSERT INTO "+q(db)+".items VALUES (1, 'one')")
	m.Exec(t, "GRANT SELECT ON "+q(db)+".* TO "+q(read))
	m.Exec(t, "GRANT SELECT, INSERT, CREATE ON "+q(db)+".* TO "+q(write))
	return prov, read, write
}

// TestE2EMySQLEphemeralUsers pins issue 18 on MariaDB: a grant on a mysql
// resource with ephemeral credentials gets its own user — named for the
// person and the grant, its template role as its default role, no more —
// that exists only while the grant is active. The real mariadb client
// goes through the gateway as that user; a direct connection with the
// delivered password works during the grant; revoke kills that direct
// connection too and drops the user, keeping the table it made; a stray
// airlock_ user is reconciled away; the provisioning password is in no
// log or CLI output.
func TestE2EMySQLEphemeralUsers(t *testing.T) {
	needOathtool(t)
	m := testenv.MariaDB(t)
	db := m.NewDatabase(t)
	sfx := strings.TrimPrefix(db, "t_")
	const provPW = "my-prov-Secret-Never-Shown-7z2x"
	prov, read, write := myEphemeralDBA(t, m, db, sfx, provPW)
	root, err := sql.Open("mysql", m.RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	userExists := func(name string) bool {
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) {
		c.MySQLAddr = freeAddr(t)
		c.DBRoleInterval = 200 * time.Millisecond
	})
	tm := setupTeam(t, h, myEphemeralPolicy)
	t.Setenv("PROV_PW", provPW)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, m.CAPEM, 0o600)
	h.fresh(tm.admin, tm.adminSecret)
	add := []string{"admin", "resources", "add", "prod-mysql", "--kind", "mysql", "--addr", m.Addr, "--database", db,
		"--sslmode", "verify-full", "--sslrootcert", caFile, "--ephemeral", "--provisioner", prov + ":env:PROV_PW",
		"--template", "read=" + read, "--template", "write=" + write}
	if out, err := h.run(tm.admin, "", append(add, "--owner", "someone")...); err == nil || !strings.Contains(out+err.Error(), "owner is for postgres") {
		t.Fatalf("--owner on mysql: err=%v\n%s", err, out)
	}
	if out := h.must(tm.admin, "", add...); !strings.Contains(out, "read, write") {
		t.Fatalf("resources add: %s", out)
	}
	mariadb := func(sql string) (string, error) {
		return h.runProc(tm.alice, []string{"AIRLOCK_MYSQL=" + m.Client}, "mysql", "prod-mysql", "--", "-N", "-B", "-e", sql)
	}

	// A write grant: its user exists as soon as the grant is active, and
	// the client goes through the gateway as it, with the template's
	// rights only.
	g := h.grant(tm, "prod-mysql", "write")
	user := myprovision.UserName("alice", g.ID)
	if !userExists(user) {
		t.Fatalf("no user %s after the grant became active; log:\n%s", user, h.logs.String())
	}
	out, err := mariadb("SELECT CONCAT(CURRENT_USER(), '|', CURRENT_ROLE())")
	if want := user + "@%|" + write; err != nil || !strings.Contains(out, want) {
		t.Fatalf("mariadb through airlock: want %q; err=%v\n%s", want, err, out)
	}
	if out, err := mariadb("INSERT INTO items VALUES (2, 'two'); CREATE TABLE made_by_grant (id INT); SELECT 'ok'"); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("write through the grant's user: err=%v\n%s", err, out)
	}
	if out, err := mariadb("DELETE FROM items"); err == nil || !strings.Contains(out, "command denied") {
		t.Fatalf("DELETE beyond the template's privileges: err=%v\n%s", err, out)
	}

	// check: the grant's user is live; an account Airlock did not make
	// that holds a template is drift.
	m.CreateUser(t, "legacy"+sfx, "legacy-password")
	m.Exec(t, "GRANT `"+read+"` TO `legacy"+sfx+"`@'%'")
	out = h.must(tm.admin, "", "admin", "resources", "check", "prod-mysql")
	if !strings.Contains(out, "role "+user+": live, grant "+g.ID) || !strings.Contains(out, "drift: legacy"+sfx+" holds the rights of template "+read) ||
		!strings.Contains(out, "provisioning role "+prov+" (CREATE USER: true)") {
		t.Fatalf("admin resources check:\n%s", out)
	}

	// Direct delivery: the user's login opens a connection that does not
	// go through the gateway.
	h.fresh(tm.alice, tm.aliceSecret)
	var cred access.DirectCredential
	if err := json.Unmarshal([]byte(h.must(tm.alice, "", "--output", "json", "db-credentials", "prod-mysql")), &cred); err != nil || cred.User != user || cred.Password == "" {
		t.Fatalf("db-credentials: %+v, %v", cred, err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", m.Addr, cred.User, cred.Password, db
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	directDB := sql.OpenDB(connector)
	defer directDB.Close()
	direct, err := directDB.Conn(context.Background())
	if err != nil {
		t.Fatalf("direct login as the grant's user: %v", err)
	}
	defer direct.Close()
	if _, err := direct.ExecContext(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	// Revoke: the direct connection is killed and the user dropped; the
	// table it made stays.
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
	if !testenv.Poll(10*time.Second, func() bool { return !userExists(user) }) {
		t.Fatalf("user %s still there 10 s after revoke; server log:\n%s", user, h.logs.String())
	}
	if _, err := direct.ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("the direct connection still works after revoke")
	}
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'made_by_grant'", db).Scan(&n); err != nil || n != 1 {
		t.Fatalf("made_by_grant after the drop: %d, %v", n, err)
	}
	// The drop's events are written after the drop the test saw.
	for _, action := range []string{"db.role.created", "db.credentials.delivered", "db.role.terminated", "db.role.dropped"} {
		h.awaitEvents(tm.admin, action, func(evs []airlock.Event) bool {
			return slices.ContainsFunc(evs, func(e airlock.Event) bool {
				return e.GrantID == g.ID && strings.Contains(string(e.Details), user)
			})
		})
	}

	// A stray airlock_ user (recorded nowhere) is reconciled away.
	ghost := "airlock_ghost_" + sfx
	m.Exec(t, "CREATE USER `"+ghost+"`@'%' IDENTIFIED BY 'ghost-password'")
	t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS `"+ghost+"`@'%'") })
	if !testenv.Poll(10*time.Second, func() bool { return !userExists(ghost) }) {
		t.Fatalf("stray user still there after 10 s; server log:\n%s", h.logs.String())
	}
	h.awaitEvents(tm.admin, "db.role.dropped", func(evs []airlock.Event) bool {
		return slices.ContainsFunc(evs, func(e airlock.Event) bool { return strings.Contains(string(e.Details), ghost) })
	})
	if strings.Contains(h.logs.String(), provPW) {
		t.Fatal("the provisioning password is in the server log")
	}
}
