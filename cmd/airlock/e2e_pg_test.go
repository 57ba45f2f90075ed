package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

const pgPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true, prompt: "ticket?"}
rules:
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read, write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// Upstream role passwords: they must never leave the server's sealed store.
const (
	pgROPassword = "ro-Upstream-Secret-9f3k2"
	pgRWPassword = "rw-Upstream-Secret-7h2m1"
)

func needPsql(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("psql is not installed (apt-get install postgresql-client)")
		}
		t.Skip("psql not installed (apt-get install postgresql-client); skipping")
	}
}

// superCount counts rows of the test table as the cluster superuser.
func superCount(t *testing.T, pg *testenv.PG, db string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2EPsqlThroughGateway is the "psql through Airlock" story: a real
// PostgreSQL with a read-only and a read-write role, brokered by the
// gateway, used with the real psql through the real CLI binary.
func TestE2EPsqlThroughGateway(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_ro') THEN CREATE ROLE app_ro LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_rw') THEN CREATE ROLE app_rw LOGIN; END IF;
END $$;
ALTER ROLE app_ro PASSWORD '`+pgROPassword+`';
ALTER ROLE app_rw PASSWORD '`+pgRWPassword+`';`)
	pg.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'apple'), (2, 'banana');
GRANT SELECT ON items TO app_ro;
GRANT SELECT, INSERT ON items TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgPolicy)
	t.Setenv("PROD_DB_RO_PW", pgROPassword)
	t.Setenv("PROD_DB_RW_PW", pgRWPassword)
	h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", db,
		"--credential", "read=app_ro:env:PROD_DB_RO_PW", "--credential", "write=app_rw:env:PROD_DB_RW_PW")

	// Without a grant, psql is not even started.
	out, err := h.runProc(tm.alice, nil, "psql", "prod-db", "--", "-c", "select 1")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("psql without a grant: err=%v\n%s", err, out)
	}

	read := h.grant(tm, "prod-db", "read")
	write := h.grant(tm, "prod-db", "write")

	// The read grant can SELECT. Stale PG* variables in the user's shell
	// must not redirect or downgrade the connection.
	stale := []string{"PGUSER=mallory", "PGDATABASE=elsewhere", "PGSSLMODE=disable"}
	out, err = h.runProc(tm.alice, stale, "psql", "prod-db", "--access", "read", "--",
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select name from items order by id")
	if err != nil || !strings.Contains(out, "apple\nbanana") {
		t.Fatalf("select under read grant: err=%v\n%s", err, out)
	}
	// …but cannot INSERT (read-only session and a SELECT-only role).
	out, err = h.runProc(tm.alice, nil, "psql", "prod-db", "--access", "read", "--",
		"-X", "-v", "ON_ERROR_STOP=1", "-c", "insert into items values (3, 'cherry')")
	if err == nil || !(strings.Contains(out, "read-only") || strings.Contains(out, "permission denied")) {
		t.Fatalf("insert under read grant: err=%v\n%s", err, out)
	}
	if n := superCount(t, pg, db); n != 2 {
		t.Fatalf("rows after refused insert: %d", n)
	}
	// The write grant can.
	out, err = h.runProc(tm.alice, nil, "psql", "prod-db", "--access", "write", "--",
		"-X", "-v", "ON_ERROR_STOP=1", "-c", "insert into items values (3, 'cherry')")
	if err != nil || !strings.Contains(out, "INSERT 0 1") {
		t.Fatalf("insert under write grant: err=%v\n%s", err, out)
	}
	if n := superCount(t, pg, db); n != 3 {
		t.Fatalf("rows after insert: %d", n)
	}

	// Statements are audited with their session.
	var readSession string
	for _, s := range h.sessions(tm.alice, false) {
		if s.GrantID == read.ID && s.Statements > 0 && !s.Active() {
			readSession = s.ID
		}
	}
	if readSession == "" {
		t.Fatalf("no ended read session with statements: %+v", h.sessions(tm.alice, false))
	}
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "db.query") {
			if e.SessionID == readSession && strings.Contains(string(e.Details), "select name from items order by id") {
				return true
			}
		}
		return false
	})

	// A connect token opens one connection only.
	h.fresh(tm.alice, tm.aliceSecret)
	st := readClientState(t, tm.alice)
	cl := api.NewClient(h.url, st.Token)
	var tok access.ConnectToken
	if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-db", Access: "read"}, &tok); err != nil {
		t.Fatalf("mint connect token: %v", err)
	}
	var info api.GatewayInfo
	if err := cl.Do(context.Background(), "GET", "/api/v1/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, []byte(info.TLSCA), 0o600)
	gwHost, gwPort, _ := net.SplitHostPort(info.PGAddr)
	psqlWithToken := func() (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "select current_user")
		cmd.Env = append(cleanEnv(), "PGHOST="+gwHost, "PGPORT="+gwPort, "PGUSER="+tok.User, "PGDATABASE=prod-db",
			"PGPASSWORD="+tok.Token, "PGSSLMODE=verify-ca", "PGSSLROOTCERT="+caFile, "PGGSSENCMODE=disable", "PGCONNECT_TIMEOUT=10")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := psqlWithToken(); err != nil || strings.TrimSpace(out) != "app_ro" {
		t.Fatalf("first use of a connect token: err=%v\n%s", err, out)
	}
	if out, err := psqlWithToken(); err == nil || !strings.Contains(out, "invalid or expired connect token") {
		t.Fatalf("reused connect token: err=%v\n%s", err, out)
	}

	// Without TLS on loopback, clients prove they hold a token with
	// SCRAM-SHA-256; the token itself never crosses the connection.
	mint := func() access.ConnectToken {
		var tok access.ConnectToken
		if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-db", Access: "read"}, &tok); err != nil {
			t.Fatalf("mint connect token: %v", err)
		}
		return tok
	}
	if auth := firstAuthRequest(t, info.PGAddr, tok.User); auth != "SCRAM-SHA-256" {
		t.Fatalf("plaintext loopback client was asked for %s, want SASL SCRAM-SHA-256 only", auth)
	}
	scramTok := mint()
	psqlPlain := func(password string) (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "select current_user")
		cmd.Env = append(cleanEnv(), "PGHOST="+gwHost, "PGPORT="+gwPort, "PGUSER="+scramTok.User, "PGDATABASE=prod-db",
			"PGPASSWORD="+password, "PGSSLMODE=disable", "PGGSSENCMODE=disable", "PGCONNECT_TIMEOUT=10")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := psqlPlain("ct_not-a-live-token"); err == nil || !strings.Contains(out, "invalid or expired connect token") {
		t.Fatalf("SCRAM with a wrong token: err=%v\n%s", err, out)
	}
	if out, err := psqlPlain(scramTok.Token); err != nil || strings.TrimSpace(out) != "app_ro" {
		t.Fatalf("SCRAM with a live token: err=%v\n%s", err, out)
	}
	if out, err := psqlPlain(scramTok.Token); err == nil || !strings.Contains(out, "invalid or expired connect token") {
		t.Fatalf("SCRAM reusing a token: err=%v\n%s", err, out)
	}
	// pgx (the other client family) does SCRAM too.
	pgxTok := mint()
	pc, err := pgx.Connect(context.Background(), "postgres://"+url.PathEscape(pgxTok.User)+":"+url.PathEscape(pgxTok.Token)+"@"+info.PGAddr+"/prod-db?sslmode=disable")
	if err != nil {
		t.Fatalf("pgx over SCRAM: %v", err)
	}
	var who string
	if err := pc.QueryRow(context.Background(), "select current_user").Scan(&who); err != nil || who != "app_ro" {
		t.Fatalf("pgx over SCRAM: current_user = %q, %v", who, err)
	}
	pc.Close(context.Background())
	h.fresh(tm.admin, tm.adminSecret)
	refused := false
	for _, e := range h.auditEvents(tm.admin, "connect.refused") {
		refused = refused || strings.Contains(string(e.Details), "SCRAM proof matched no live token")
	}
	if !refused {
		t.Fatal("the wrong SCRAM proof was not audited as connect.refused")
	}
	h.fresh(tm.alice, tm.aliceSecret)

	// `airlock connect` serves local clients, each with a fresh token.
	port := freeAddr(t)
	_, localPort, _ := net.SplitHostPort(port)
	proxy := h.startProc(tm.alice, nil, nil, "connect", "prod-db", "--access", "read", "--port", localPort)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("airlock connect output:\n%s", proxy.out.String())
		}
	})
	waitFor(t, func() bool { return strings.Contains(proxy.out.String(), "Listening on") })
	for i := 0; i < 2; i++ {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "select current_user, count(*) from items")
		cmd.Env = append(cleanEnv(), "PGHOST=127.0.0.1", "PGPORT="+localPort, "PGUSER=anyone", "PGDATABASE=anything", "PGPASSWORD=ignored", "PGCONNECT_TIMEOUT=10")
		b, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(b)) != "app_ro|3" {
			t.Fatalf("psql via airlock connect (#%d): err=%v\n%s\nconnect output:\n%s", i+1, err, b, proxy.out.String())
		}
	}
	proxy.kill()

	// Revoking the grant cuts a live session with a FATAL message.
	pr, pw := io.Pipe()
	defer pw.Close()
	live := h.startProc(tm.alice, pr, nil, "psql", "prod-db", "--access", "write", "--", "-X", "-A", "-t")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("live psql output:\n%s", live.out.String())
		}
	})
	pw.Write([]byte("select 'alive';\n"))
	var liveID string
	waitFor(t, func() bool {
		for _, s := range h.sessions(tm.alice, true) {
			if s.GrantID == write.ID {
				liveID = s.ID
				return true
			}
		}
		return false
	})
	h.step()
	out = h.must(tm.alice, "", "revoke", write.ID, "--reason", "done with INC-7")
	if !strings.Contains(out, "Revoked") {
		t.Fatalf("revoke: %s", out)
	}
	// (exec.Cmd copies stdin until EOF, so close it after the last line.)
	go func() { pw.Write([]byte("select 'after';\n")); pw.Close() }()
	if !live.exited() {
		t.Fatalf("psql still running after revoke:\n%s", live.out.String())
	}
	if live.err == nil || !strings.Contains(live.out.String(), "FATAL") || !strings.Contains(live.out.String(), airlock.EndGrantRevoked.Text()) {
		t.Fatalf("psql after revoke: err=%v\n%s", live.err, live.out.String())
	}
	if strings.Contains(live.out.String(), "after") {
		t.Fatalf("a statement ran after revoke:\n%s", live.out.String())
	}
	// The session is recorded as ended by the revocation.
	waitFor(t, func() bool {
		for _, s := range h.sessions(tm.alice, false) {
			if s.ID == liveID {
				return !s.Active() && s.EndReason == string(airlock.EndGrantRevoked)
			}
		}
		return false
	})
	// And the revoked grant opens nothing new.
	out, err = h.runProc(tm.alice, nil, "psql", "prod-db", "--access", "write", "--", "-c", "select 1")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("psql after revoke: err=%v\n%s", err, out)
	}

	// The upstream passwords are nowhere in the audit log or server logs.
	h.fresh(tm.admin, tm.adminSecret)
	export := h.must(tm.admin, "", "audit", "export")
	if !strings.Contains(export, "db.query") || !strings.Contains(export, "connect.refused") {
		t.Fatalf("audit export lacks db.query / connect.refused")
	}
	for _, secret := range []string{pgROPassword, pgRWPassword} {
		if strings.Contains(export, secret) || strings.Contains(h.logs.String(), secret) {
			t.Fatal("an upstream password leaked into the audit export or server logs")
		}
	}
	if strings.Contains(h.logs.String(), tok.Token) || strings.Contains(export, tok.Token) {
		t.Fatal("a connect token leaked into the audit export or server logs")
	}
	if !strings.Contains(h.must(tm.admin, "", "audit", "verify"), "OK") {
		t.Fatal("audit log does not verify")
	}
}

// cleanEnv is the test's environment without PG* variables.
// firstAuthRequest opens a plaintext connection to the gateway as user and
// returns what it is first asked for: a SASL mechanism list, or
// "cleartext" / "md5" / the message type.
func firstAuthRequest(t *testing.T, addr, user string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": "prod-db"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationSASL:
		return strings.Join(m.AuthMechanisms, ",")
	case *pgproto3.AuthenticationCleartextPassword:
		return "cleartext"
	case *pgproto3.AuthenticationMD5Password:
		return "md5"
	default:
		return fmt.Sprintf("%T", msg)
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func readClientState(t *testing.T, home string) *clientState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st clientState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}
