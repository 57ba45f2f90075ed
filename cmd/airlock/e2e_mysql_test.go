package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/mysqlwire"
	"github.com/airlockhq/airlock/internal/testenv"
)

const mysqlPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true}
rules:
  - name: devs-mysql
    who: {groups: [devs]}
    resources: {names: [prod-mysql]}
    access: [read, write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// TestE2EMySQL runs the real mariadb client (through `airlock mysql`) and
// go-sql-driver/mysql through the MySQL gateway to a real MariaDB: no
// grant, no token; a read grant reads but cannot write; USE of a database
// the resource does not open and such a database at connect are refused;
// every statement is audited with session and grant; prepared statements
// are linked to their prepare; a token opens one connection only; a
// 1,000,000-row result streams; a revoke cuts a running statement with
// the reason; the brokered password is in no log or event.
func TestE2EMySQL(t *testing.T) {
	needOathtool(t)
	m := testenv.MariaDB(t)
	db := m.NewDatabase(t)
	other := m.NewDatabase(t)
	m.Exec(t, "CREATE TABLE `"+db+"`.items (id INT PRIMARY KEY, name VARCHAR(40))")
	m.Exec(t, "INSERT INTO `"+db+"`.items VALUES (1,'one'),(2,'two'),(3,'three')")
	sfx := fmt.Sprint(time.Now().UnixNano() % 1e9)
	roUser, rwUser := "ro"+sfx, "rw"+sfx
	const roPass, rwPass = "ro-s3cret-brokered", "rw-s3cret-brokered"
	m.CreateUser(t, roUser, roPass, "SELECT ON `"+db+"`.*")
	m.CreateUser(t, rwUser, rwPass, "ALL ON `"+db+"`.*")

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.MySQLAddr = freeAddr(t) })
	tm := setupTeam(t, h, mysqlPolicy)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, m.CAPEM, 0o600)
	h.fresh(tm.admin, tm.adminSecret)
	out, err := h.runProc(tm.admin, []string{"RO=" + roPass, "RW=" + rwPass}, "admin", "resources", "add", "prod-mysql", "--kind", "mysql",
		"--addr", m.Addr, "--database", db, "--sslmode", "verify-full", "--sslrootcert", caFile,
		"--credential", "read="+roUser+":env:RO", "--credential", "write="+rwUser+":env:RW")
	if err != nil {
		t.Fatalf("add mysql resource: %v\n%s", err, out)
	}
	clientEnv := []string{"AIRLOCK_MYSQL=" + m.Client}
	mariadb := func(args ...string) (string, error) {
		return h.runProc(tm.alice, clientEnv, append([]string{"mysql", "prod-mysql", "--"}, args...)...)
	}

	if out, err := mariadb("-e", "SELECT 1"); err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("without a grant: err=%v\n%s", err, out)
	}
	g := h.grant(tm, "prod-mysql", "read")
	out, err = mariadb("-N", "-e", "SELECT name FROM items ORDER BY id")
	if err != nil || strings.Fields(out)[len(strings.Fields(out))-3] != "one" || !strings.Contains(out, "three") {
		t.Fatalf("read: %v\n%s", err, out)
	}
	// airlock connect: a local listener for GUI clients; each connection
	// gets its own token, the hop to the gateway is verified TLS.
	port := freeAddr(t)
	port = port[strings.LastIndex(port, ":")+1:]
	lst := h.startProc(tm.alice, nil, nil, "connect", "prod-mysql", "--port", port)
	waitFor(t, func() bool { return strings.Contains(lst.out.String(), "Listening on") })
	lout, lerr := exec.Command(m.Client, "--no-defaults", "--host=127.0.0.1", "--port="+port, "--user=anyone", "--skip-ssl",
		"-N", "-e", "SELECT name FROM items WHERE id = 1").CombinedOutput()
	if lerr != nil || strings.TrimSpace(string(lout)) != "one" {
		t.Fatalf("mariadb through airlock connect: %v\n%s\n%s", lerr, lout, lst.out.String())
	}
	lst.kill()

	// A read grant cannot write: the account's privileges refuse it (and
	// the session is READ ONLY besides).
	out, err = mariadb("-e", "INSERT INTO items VALUES (9,'nine')")
	if err == nil || !(strings.Contains(out, "ERROR 1142") || strings.Contains(out, "ERROR 1792")) {
		t.Fatalf("read grant INSERT: err=%v\n%s", err, out)
	}
	// Databases the resource does not open: at USE, and at connect.
	out, err = mariadb("-e", "USE `"+other+"`")
	if err == nil || !strings.Contains(out, "is not one prod-mysql opens") {
		t.Fatalf("USE other: err=%v\n%s", err, out)
	}
	out, err = h.runProc(tm.alice, clientEnv, "mysql", "--dbname", other, "prod-mysql", "--", "-e", "SELECT 1")
	if err == nil || !strings.Contains(out, other) {
		t.Fatalf("connect to another database: err=%v\n%s", err, out)
	}

	// go-sql-driver: prepared statements; a token opens one connection.
	h.fresh(tm.alice, tm.aliceSecret)
	cl := h.apiAs(tm.alice)
	var info api.GatewayInfo
	if err := cl.Do(context.Background(), "GET", "/api/v1/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	mysql.RegisterTLSConfig("airlock-e2e", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	var tok access.ConnectToken
	if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-mysql"}, &tok); err != nil {
		t.Fatalf("mint: %v", err)
	}
	dsn := (&mysql.Config{User: tok.User, Passwd: tok.Token, Net: "tcp", Addr: info.MySQLAddr, DBName: "prod-mysql", TLSConfig: "airlock-e2e",
		AllowCleartextPasswords: true, AllowNativePasswords: true, Timeout: 10 * time.Second}).FormatDSN()
	sqldb, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	sqldb.SetMaxOpenConns(1)
	var name string
	if err := sqldb.QueryRow("SELECT name FROM items WHERE id = ?", 2).Scan(&name); err != nil || name != "two" {
		t.Fatalf("prepared select: %q %v", name, err)
	}
	// A million rows stream through (the gateway holds none of them).
	var n int64
	rows, err := sqldb.Query("SELECT seq FROM seq_1_to_1000000")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 1000000 {
		t.Fatalf("streamed %d rows: %v", n, rows.Err())
	}
	rows.Close()
	// The token is used up: a second connection with it is refused.
	c2, _ := sql.Open("mysql", dsn)
	defer c2.Close()
	if err := c2.Ping(); err == nil || !strings.Contains(err.Error(), "invalid or expired connect token") {
		t.Fatalf("token reuse: %v", err)
	}

	// Every statement is audited before it ran, linked to session and
	// grant; an execute names its prepare and text, without parameters.
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		query, prepare, execute, denied := false, false, false, false
		for _, e := range h.auditEvents(tm.admin, "db.*") {
			var d struct {
				Kind, Text, Denied string
				PrepareStmt        int `json:"prepare_stmt"`
				Params             []any
			}
			json.Unmarshal(e.Details, &d)
			switch {
			case e.Action == "db.query" && d.Kind == "query" && strings.Contains(d.Text, "SELECT name FROM items ORDER BY id") && e.GrantID == g.ID && e.SessionID != "":
				query = true
			case e.Action == "db.query" && d.Kind == "prepare" && strings.Contains(d.Text, "WHERE id = ?"):
				prepare = true
			case e.Action == "db.query" && d.Kind == "execute" && d.PrepareStmt > 0 && strings.Contains(d.Text, "WHERE id = ?") && d.Params == nil:
				execute = true
			case e.Action == "db.query" && e.Outcome == airlock.OutcomeDenied && d.Denied == "database_not_allowed":
				denied = true
			}
		}
		return query && prepare && execute && denied
	})

	// KILL QUERY with the connection id a client was told (the gateway's)
	// reaches that connection's upstream thread; another id is refused.
	mintTok := func() access.ConnectToken {
		var tk access.ConnectToken
		if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-mysql"}, &tk); err != nil {
			t.Fatalf("mint: %v", err)
		}
		return tk
	}
	h.fresh(tm.alice, tm.aliceSecret)
	dialGW := func() *mysqlwire.ClientConn {
		tk := mintTok()
		cc, err := mysqlwire.Dial(context.Background(), "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: tk.User, Password: []byte(tk.Token),
			Database: "prod-mysql", TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
		if err != nil {
			t.Fatalf("dial the gateway: %v", err)
		}
		t.Cleanup(func() { cc.Net.Close() })
		return cc
	}
	a, b := dialGW(), dialGW()
	query := func(c *mysqlwire.ClientConn, sql string) (*mysqlwire.Result, error) {
		c.Conn.ResetSeq()
		p := mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, sql)
		if err := c.Conn.WritePacket(p); err != nil {
			return nil, err
		}
		tr := mysqlwire.NewResponseTracker(c.Capabilities)
		tr.Begin(p, c.Conn.Seq())
		for {
			hd, prefix, err := c.Conn.Next()
			if err != nil {
				return nil, err
			}
			step, err := tr.Feed(hd, prefix)
			if err != nil {
				return nil, err
			}
			c.Conn.Discard()
			if step == mysqlwire.StepDone {
				r := tr.Result()
				return &r, nil
			}
		}
	}
	slept := make(chan *mysqlwire.Result, 1)
	go func() {
		r, err := query(a, "SELECT SLEEP(30)")
		if err != nil {
			t.Errorf("SELECT SLEEP(30): %v", err)
		}
		slept <- r
	}()
	ok := testenv.Poll(10*time.Second, func() bool {
		for _, e := range h.auditEvents(tm.admin, "db.query") {
			if strings.Contains(string(e.Details), "SLEEP(30)") {
				return true
			}
		}
		return false
	})
	if !ok {
		for _, e := range h.auditEvents(tm.admin, "*") {
			t.Logf("%s %s %s", e.Action, e.Outcome, e.Details)
		}
		t.Fatalf("no db.query for SLEEP(30); server log:\n%s", h.logs.String()[max(0, len(h.logs.String())-3000):])
	}
	if r, err := query(b, fmt.Sprintf("KILL QUERY %d", a.Server.ConnectionID)); err != nil || r.Err != nil {
		t.Fatalf("KILL QUERY of the client's own connection: %v %v", err, r)
	}
	select {
	case r := <-slept:
		if r == nil || (r.Err == nil && r.Rows != 1) {
			t.Fatalf("the killed query: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KILL QUERY did not end the running query")
	}
	if r, err := query(b, "KILL QUERY 1"); err != nil || r.Err == nil || r.Err.Code != 1094 {
		t.Fatalf("KILL of an id the client was not told: %v %+v", err, r)
	}
	// The policy's max_concurrent (3) counts live sessions: close these.
	a.Net.Close()
	b.Net.Close()
	sqldb.Close()
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		return len(h.auditEvents(tm.admin, "session.started")) == len(h.auditEvents(tm.admin, "session.ended"))
	})

	// A revoke cuts a running statement: the client sees the reason.
	h.fresh(tm.alice, tm.aliceSecret)
	sleeper := h.startProc(tm.alice, nil, clientEnv, "mysql", "prod-mysql", "--", "-e", "SELECT SLEEP(60)")
	waitFor(t, func() bool {
		for _, s := range h.auditEvents(tm.admin, "db.query") {
			if strings.Contains(string(s.Details), "SLEEP(60)") {
				return true
			}
		}
		return false
	})
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
	select {
	case <-sleeper.done:
	case <-time.After(3 * time.Second):
		t.Fatalf("SELECT SLEEP(60) still running 3 s after the revoke:\n%s", sleeper.out.String())
	}
	if !strings.Contains(sleeper.out.String(), "airlock: "+airlock.EndGrantRevoked.Text()) {
		t.Fatalf("the client was not told why:\n%s", sleeper.out.String())
	}

	// The brokered passwords are nowhere.
	if strings.Contains(h.logs.String(), roPass) || strings.Contains(h.logs.String(), rwPass) {
		t.Fatal("the server log carries a brokered password")
	}
	export := h.must(tm.admin, "", "--output", "json", "audit", "tail", "-n", "1000")
	if strings.Contains(export, roPass) || strings.Contains(export, rwPass) || strings.Contains(export, tok.Token) {
		t.Fatal("the audit log carries a password or a token")
	}
}
