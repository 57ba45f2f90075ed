package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/policy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const pgGuardPolicy = `version: 1
rules:
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
    statements:
      rules:
        - name: destructive
          forms: [no_where, truncate, drop, alter_drop]
          action: deny
          message: ask a second person
        - name: server-files
          functions: [pg_read_file, pg_ls_dir, lo_export]
          action: deny
        - name: server-programs
          forms: [copy_program, copy_file]
          action: deny
        - name: secrets
          objects: [public.api_keys]
          action: deny
        - name: grants
          class: [dcl]
          action: audit_only
`

// TestE2EPGGuardrails pins issue 19's statement rules on the real wire:
// psql (simple protocol) and pgx (extended protocol, pipelined batches)
// through the gateway to a real PostgreSQL. A denied statement never
// reaches the server — the rows are still there when asked directly — the
// client sees the rule's message as an ERROR with SQLSTATE 42501, the
// session stays usable, and each decision is a db.guard event.
func TestE2EPGGuardrails(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	warmGuard(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'apple'), (2, 'banana'), (3, 'cherry');
CREATE TABLE api_keys (k text);
INSERT INTO api_keys VALUES ('k-secret');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON items, api_keys TO app_rw;`)
	rows := func() int { return countRows(t, pg, db, "items") }

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgGuardPolicy)
	h.addPGWrite(tm, pg, db)
	h.grant(tm, "prod-db", "write")

	// Simple protocol: one psql session, one Query per -c, going on after errors.
	denied := "ERROR:  airlock: statement denied"
	cases := []struct{ sql, want string }{
		{"DELETE FROM items", denied + " by rule destructive: ask a second person"},
		{"select 'usable', count(*) from items", "usable|3"},
		{"UPDATE items SET name = 'x' WHERE 1 = 1", denied + " by rule destructive"},
		{"WITH d AS (DELETE FROM items RETURNING *) SELECT count(*) FROM d", denied + " by rule destructive"},
		{"/* harmless */ TrUnCaTe items", denied + " by rule destructive"},
		{"select 1; truncate items", denied + " by rule destructive"},
		{"EXPLAIN ANALYZE DELETE FROM items", denied + " by rule destructive"},
		{"SELECT pg_catalog.pg_read_file('/etc/passwd')", denied + " by rule server-files"},
		{"SELECT * FROM (SELECT pg_ls_dir('.')) s", denied + " by rule server-files"},
		{"COPY items TO PROGRAM 'id'", denied + " by rule server-programs"},
		{"select * from API_KEYS", denied + " by rule secrets"},
		{"select * from public.api_keys", denied + " by rule secrets"},
		{"DO $$BEGIN DELETE FROM items; END$$", denied + ": a DO block's body is not analysed"},
		{"PREPARE p AS DELETE FROM items", denied + " by rule destructive"},
		{"EXECUTE p", denied + ": EXECUTE of p, which this session did not prepare"},
		{"selec 1", denied + ": the statement does not parse"},
		{"PREPARE q (int) AS DELETE FROM items WHERE id = $1", "PREPARE"},
		{"EXECUTE q(3)", "DELETE 1"},
		{"DELETE FROM items WHERE id = 2", "DELETE 1"},
		{"GRANT SELECT ON items TO public", "GRANT"},
	}
	args := []string{"psql", "prod-db", "--", "-X", "-A", "-t", "-e"}
	for _, c := range cases {
		args = append(args, "-c", c.sql)
	}
	out, _ := h.runProc(tm.alice, nil, args...)
	// -e echoes each command before its result: cut the output at the echoes.
	rest := out
	for i, c := range cases {
		at := strings.Index(rest, c.sql)
		if at < 0 {
			t.Fatalf("case %d %q: not echoed in\n%s", i, c.sql, out)
		}
		rest = rest[at+len(c.sql):]
		next := len(rest)
		if i+1 < len(cases) {
			if n := strings.Index(rest, cases[i+1].sql); n >= 0 {
				next = n
			}
		}
		if got := rest[:next]; !strings.Contains(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.sql, strings.TrimSpace(got), c.want)
		}
	}
	if n := rows(); n != 1 {
		t.Fatalf("items has %d rows, want 1: a denied statement reached the server\n%s", n, out)
	}

	// Extended protocol with pgx: denied at Parse, the session usable after.
	h.fresh(tm.alice, tm.aliceSecret)
	cl := api.NewClient(h.url, readClientState(t, tm.alice).Token)
	var tok access.ConnectToken
	if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-db", Access: "write"}, &tok); err != nil {
		t.Fatalf("mint connect token: %v", err)
	}
	var info api.GatewayInfo
	if err := cl.Do(context.Background(), "GET", "/api/v1/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, "postgres://"+url.PathEscape(tok.User)+":"+url.PathEscape(tok.Token)+"@"+info.PGAddr+"/prod-db?sslmode=disable")
	if err != nil {
		t.Fatalf("pgx through the gateway: %v", err)
	}
	defer pc.Close(ctx)
	isDenied := func(err error, rule string) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "42501" && strings.Contains(pe.Message, "denied by rule "+rule)
	}
	if _, err := pc.Exec(ctx, "DELETE FROM items WHERE $1::int > 0 OR true", 1); !isDenied(err, "destructive") {
		t.Fatalf("extended DELETE … OR true: %v", err)
	}
	var n int
	if err := pc.QueryRow(ctx, "select count(*) from items where id > $1", 0).Scan(&n); err != nil || n != 1 {
		t.Fatalf("session after a denial: n=%d err=%v", n, err)
	}
	// A pipelined batch: the denied statement stops the batch at its Parse.
	b := &pgx.Batch{}
	b.Queue("select 1")
	b.Queue("TRUNCATE items")
	b.Queue("select 2")
	if err := pc.SendBatch(ctx, b).Close(); !isDenied(err, "destructive") {
		t.Fatalf("batch with TRUNCATE: %v", err)
	}
	if err := pc.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the batch: n=%d err=%v", n, err)
	}
	if rows() != 1 {
		t.Fatal("a denied extended-protocol statement reached the server")
	}
	pc.Close(ctx)

	// Every decision a rule made is audited, denials as denied, beside the
	// statement's own db.query (outcome denied too).
	h.fresh(tm.admin, tm.adminSecret)
	var guards, audited int
	for _, e := range h.auditEvents(tm.admin, "db.guard") {
		var d struct{ Rule, Action, Class string }
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Rule == "destructive" && d.Action == "deny" && e.Outcome == "denied":
			guards++
		case d.Rule == "grants" && d.Action == "audit_only" && d.Class == "dcl" && e.Outcome == "success":
			audited++
		}
	}
	if guards < 8 || audited != 1 {
		t.Fatalf("db.guard events: %d destructive denials (want ≥ 8), %d audit_only (want 1)", guards, audited)
	}
	deniedQueries := 0
	for _, e := range h.auditEvents(tm.admin, "db.query") {
		if e.Outcome == "denied" {
			deniedQueries++
		}
	}
	if deniedQueries < 16 {
		t.Fatalf("%d db.query events denied, want ≥ 16", deniedQueries)
	}
}

// Statement rules on a kind no gateway enforces them for are refused at
// connect, not silently ignored.
func TestE2EGuardrailsOtherKindsRefused(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.HTTPAppsAddr = freeAddr(t) })
	tm := setupTeam(t, h, strings.ReplaceAll(strings.ReplaceAll(pgGuardPolicy, "prod-db", "web"), "[write]", "[read]"))
	h.must(tm.admin, "", "admin", "resources", "add", "web", "--kind", "http", "--addr", "http://127.0.0.1:1", "--level", "read")
	h.grant(tm, "web", "read")
	h.fresh(tm.alice, tm.aliceSecret)
	cl := api.NewClient(h.url, readClientState(t, tm.alice).Token)
	_, err := cl.MintHTTPToken(context.Background(), api.ConnectRequest{Resource: "web", Access: "read"})
	if err == nil || !strings.Contains(err.Error(), "only the PostgreSQL gateway enforces") {
		t.Fatalf("http token under a rule with statement rules: %v", err)
	}
}

// policy test cases can be about statements: the CLI decides them with the
// gateway's own parser and rules.
func TestPolicyTestStatementCases(t *testing.T) {
	p, diags, err := policy.Parse(map[string][]byte{"p.yaml": []byte(pgGuardPolicy)})
	if err != nil {
		t.Fatal(err, diags)
	}
	cases, err := policy.ParseCases("cases.yaml", []byte(`cases:
  - {name: wipe, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "DELETE FROM orders", expect: deny, rule: destructive}
  - {name: one-row, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "DELETE FROM orders WHERE id = 7", expect: allow}
  - {name: do-block, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "DO $$BEGIN END$$", expect: deny, rule: on_unknown}
  - {name: wrong, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "GRANT ALL ON t TO eve", expect: allow}
  - {name: no-access, who: {user: eve}, resource: {name: prod-db, kind: postgres}, access: write, statement: "SELECT 1", expect: allow}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := policy.RunCases(p, cases, nil, decideStatement)
	want := []bool{true, true, true, false, false}
	for i, r := range res {
		if r.Pass != want[i] {
			t.Errorf("%s: pass=%v (%s)", r.Case.Name, r.Pass, r.Message)
		}
	}
	if !strings.Contains(res[3].Message, "expected allow, got audit_only") {
		t.Errorf("wrong case message: %s", res[3].Message)
	}
}

// warmGuard compiles the statement parser's WebAssembly in this process —
// where the harness's server runs — before a test's first guarded
// statement, so that its compile (seconds under -race on a busy machine)
// is not counted against a psql's time to finish.
func warmGuard(t *testing.T) {
	t.Helper()
	pgproxy.WarmGuard()
}
