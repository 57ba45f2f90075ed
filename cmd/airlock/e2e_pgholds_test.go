package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/policy"
	"github.com/descope/virtualwebauthn"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const pgHoldsPolicy = `version: 1
rules:
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
    statements:
      rules:
        - name: wipe
          forms: [no_where, truncate]
          action: require_approval
          timeout: 2m
        - name: schema
          class: [ddl]
          action: require_mfa
          timeout: 1m
`

// TestE2EPGHolds pins require_approval in-band on the real wire: psql
// (simple protocol) and pgx (extended protocol) through the gateway to a
// real PostgreSQL. A held statement waits at the gateway — the rows are all
// there while it waits — psql shows the notice; bob decides with the CLI
// and a fresh TOTP; alice cannot decide her own; a denial and a timeout are
// errors after which the session goes on; an approval runs the statement.
func TestE2EPGHolds(t *testing.T) {
	warmGuard(t)
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'apple'), (2, 'banana'), (3, 'cherry');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON items TO app_rw;`)
	rows := func() int { return countRows(t, pg, db, "items") }

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgHoldsPolicy)
	h.addPGWrite(tm, pg, db)
	h.grant(tm, "prod-db", "write")
	h.fresh(tm.alice, tm.aliceSecret)

	// nextHold waits for a pending held statement other than those seen,
	// as bob lists them.
	seen := map[string]bool{}
	nextHold := func() access.StatementHold {
		t.Helper()
		var got access.StatementHold
		testenv.Eventually(t, 60*time.Second, func() bool {
			var hs []access.StatementHold
			if err := json.Unmarshal([]byte(h.must(tm.bob, "", "--output", "json", "statements", "list")), &hs); err != nil {
				t.Fatal(err)
			}
			for _, x := range hs {
				if !seen[x.ID] {
					got = x
					seen[x.ID] = true
					return true
				}
			}
			return false
		}, "no statement was held")
		return got
	}
	bobOTP := func() string { h.step(); return totp(t, tm.bobSecret, h.clock.Now()) }

	cases := []string{
		"DELETE FROM items",                    // denied by bob
		"select 'usable', count(*) from items", // the session goes on
		"UPDATE items SET name = 'x'",          // times out
		"select 'still', count(*) from items",  //
		"DELETE FROM items",                    // approved by bob: runs
		"select 'after', count(*) from items",  //
	}
	args := []string{"psql", "prod-db", "--", "-X", "-A", "-t", "-e"}
	for _, c := range cases {
		args = append(args, "-c", c)
	}
	p := h.startProc(tm.alice, nil, nil, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("psql:\n%s", p.out.String())
		}
	})

	// 1. Held; alice cannot decide it; bob denies it.
	hd := nextHold()
	if hd.UserName != "alice" || hd.Resource != "prod-db" || hd.Rule != "wipe" || hd.Statement != "DELETE FROM items" || hd.Reason != "INC-7 write" {
		t.Fatalf("held statement as bob sees it: %+v", hd)
	}
	if n := rows(); n != 3 {
		t.Fatalf("a held statement reached the server: %d rows", n)
	}
	h.step()
	if out, err := h.run(tm.alice, "", "statements", "approve", hd.ID, "--otp", totp(t, tm.aliceSecret, h.clock.Now())); err == nil ||
		!strings.Contains(out+err.Error(), "you cannot decide your own statement") {
		t.Fatalf("alice approving her own statement: %v\n%s", err, out)
	}
	h.must(tm.bob, "", "statements", "deny", hd.ID, "--comment", "add a WHERE", "--otp", bobOTP())

	// 2. Held again (the UPDATE); nobody answers: it times out.
	hd = nextHold()
	if hd.Statement != "UPDATE items SET name = 'x'" {
		t.Fatalf("second hold: %+v", hd)
	}
	h.clock.Advance(3 * time.Minute)

	// 3. The last DELETE: bob approves with a fresh TOTP, and it runs.
	hd = nextHold()
	out := h.must(tm.bob, "", "statements", "approve", hd.ID, "--otp", bobOTP())
	if !strings.Contains(out, "approved") {
		t.Fatalf("approve: %s", out)
	}
	// A decision counts once.
	if out, err := h.run(tm.bob, "", "statements", "approve", hd.ID, "--otp", bobOTP()); err == nil {
		t.Fatalf("second approval accepted:\n%s", out)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("psql did not finish:\n%s", p.out.String())
	}
	got := p.out.String()
	for _, want := range []string{
		"NOTICE:  airlock: statement held for approval by rule wipe: an approver runs `airlock statements approve hold_",
		"ERROR:  airlock: statement refused by rule wipe: denied by bob (add a WHERE)",
		"usable|3",
		"ERROR:  airlock: statement refused by rule wipe: not approved within 2m",
		"still|3",
		"DELETE 3",
		"after|0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("psql output lacks %q:\n%s", want, got)
		}
	}
	if n := rows(); n != 0 {
		t.Fatalf("after the approved DELETE: %d rows", n)
	}

	// Extended protocol (pgx): decided at Parse, held at Execute; a
	// denial skips to Sync and the connection goes on.
	pg.Exec(t, db, "INSERT INTO items VALUES (4, 'date'), (5, 'elder')")
	h.fresh(tm.alice, tm.aliceSecret)
	cl := api.NewClient(h.url, readClientState(t, tm.alice).Token)
	tok, err := cl.MintConnectToken(context.Background(), api.ConnectRequest{Resource: "prod-db", Access: "write"})
	if err != nil {
		t.Fatalf("mint connect token: %v", err)
	}
	info, err := cl.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, "postgres://"+url.PathEscape(tok.User)+":"+url.PathEscape(tok.Token)+"@"+info.PGAddr+"/prod-db?sslmode=disable")
	if err != nil {
		t.Fatalf("pgx through the gateway: %v", err)
	}
	defer pc.Close(ctx)
	done := make(chan error, 1)
	go func() { _, err := pc.Exec(ctx, "DELETE FROM items WHERE $1::int > 0 OR true", 1); done <- err }()
	hd = nextHold()
	if hd.Statement != "DELETE FROM items WHERE $1::int > 0 OR true" {
		t.Fatalf("extended hold: %+v", hd)
	}
	h.must(tm.bob, "", "statements", "deny", hd.ID, "--otp", bobOTP())
	var pe *pgconn.PgError
	if err := <-done; !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "refused by rule wipe: denied by bob") {
		t.Fatalf("extended denial: %v", err)
	}
	var n int
	if err := pc.QueryRow(ctx, "select count(*) from items where id > $1", 0).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the extended denial: n=%d err=%v", n, err)
	}
	go func() { _, err := pc.Exec(ctx, "DELETE FROM items WHERE $1::int > 0 OR true", 1); done <- err }()
	hd = nextHold()
	// This one bob approves on the console's approvals page.
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(h.url)
	jar.SetCookies(base, []*http.Cookie{{Name: api.SessionCookie, Value: readClientState(t, tm.bob).Token, Path: "/"}})
	console := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := console.Get(h.url + "/approvals")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "DELETE FROM items WHERE $1::int &gt; 0 OR true") || !strings.Contains(string(page), "/statements/"+hd.ID+"/approve") {
		t.Fatalf("the approvals page does not show the held statement:\n%s", page)
	}
	resp, err = console.PostForm(h.url+"/statements/"+hd.ID+"/approve", url.Values{"otp": {bobOTP()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "done=statement-approved") {
		t.Fatalf("console approval: %d %s", resp.StatusCode, loc)
	}
	if err := <-done; err != nil {
		t.Fatalf("extended approval: %v", err)
	}
	if n := rows(); n != 0 {
		t.Fatalf("after the approved extended DELETE: %d rows", n)
	}

	// The audit log: each hold as db.guard held, then its outcome, with
	// who decided; the decisions as statement.approved / statement.denied.
	h.fresh(tm.admin, tm.adminSecret)
	outcomes := map[string]int{}
	for _, e := range h.auditEvents(tm.admin, "db.guard") {
		var d struct{ Rule, Action, Hold, By string }
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		if d.Hold == "held" {
			outcomes["held"]++
			continue
		}
		outcomes[d.Hold+"/"+d.By]++
	}
	if outcomes["held"] != 5 || outcomes["approved/bob"] != 2 || outcomes["denied/bob"] != 2 || outcomes["timeout/"] != 1 {
		t.Fatalf("db.guard outcomes: %v", outcomes)
	}
	if n := len(h.auditEvents(tm.admin, "statement.approved")); n != 2 {
		t.Fatalf("%d statement.approved events", n)
	}
	if n := len(h.auditEvents(tm.admin, "statement.review_refused")); n < 2 {
		t.Fatalf("%d statement.review_refused events (alice's own, bob's second)", n)
	}
}

// policy test cases can expect require_approval and require_mfa.
func TestPolicyTestHoldCases(t *testing.T) {
	p, diags, err := policy.Parse(map[string][]byte{"p.yaml": []byte(pgHoldsPolicy)})
	if err != nil {
		t.Fatal(err, diags)
	}
	cases, err := policy.ParseCases("cases.yaml", []byte(`cases:
  - {name: wipe, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "DELETE FROM orders", expect: require_approval, rule: wipe}
  - {name: ddl, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "ALTER TABLE orders ADD COLUMN x int", expect: require_mfa, rule: schema}
  - {name: both, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "CREATE TABLE t (a int); TRUNCATE orders", expect: require_approval}
  - {name: wrong, who: {user: alice, groups: [devs]}, resource: {name: prod-db, kind: postgres}, access: write, statement: "TRUNCATE orders", expect: require_mfa}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := policy.RunCases(p, cases, nil, decideStatement)
	want := []bool{true, true, true, false}
	for i, r := range res {
		if r.Pass != want[i] {
			t.Errorf("%s: pass=%v (%s)", r.Case.Name, r.Pass, r.Message)
		}
	}
	if !strings.Contains(res[3].Message, "expected require_mfa, got require_approval") {
		t.Errorf("wrong case message: %s", res[3].Message)
	}
}

// TestE2EPGHoldMFA pins require_mfa: the statement waits while alice's
// registered push device gets the push (with the statement and the
// resource); psql shows the number to tap; the device answers through the
// console's device endpoints and the statement runs. A wrong number
// refuses it, and the session goes on.
func TestE2EPGHoldMFA(t *testing.T) {
	warmGuard(t)
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `GRANT CREATE ON SCHEMA public TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgHoldsPolicy)
	h.addPGWrite(tm, pg, db)
	h.grant(tm, "prod-db", "write")

	// alice registers a passkey, and with it this "browser" as her push device.
	h.fresh(tm.alice, tm.aliceSecret)
	tok := readClientState(t, tm.alice).Token
	var who api.WhoAmI
	h.mustCall(http.StatusOK, "GET", "/api/v1/whoami", tok, nil, &who)
	key := newWAKey(who.User.ID, virtualwebauthn.AuthenticatorOptions{})
	if r := h.register(tok, key, h.rp(), "laptop"); r.status != http.StatusCreated {
		t.Fatalf("passkey registration: %d %+v", r.status, r.err)
	}
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(h.url)
	jar.SetCookies(base, []*http.Cookie{{Name: api.SessionCookie, Value: tok, Path: "/"}})
	device := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := device.PostForm(h.url+"/factors/push", url.Values{"name": {"phone"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=device") {
		t.Fatalf("register the push device: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The device's live stream of pushes.
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	req, _ := http.NewRequestWithContext(sctx, "GET", h.url+"/push/events", nil)
	stream, err := device.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("push events: %v %v", err, stream)
	}
	defer stream.Body.Close()
	pushes := make(chan map[string]any, 4)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ch map[string]any
				if json.Unmarshal([]byte(data), &ch) == nil {
					pushes <- ch
				}
			}
		}
	}()
	answer := func(id string, n int) int {
		b, _ := json.Marshal(map[string]int{"number": n})
		r, _ := http.NewRequest("POST", h.url+"/push/"+url.PathEscape(id)+"/answer", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		resp, err := device.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	h.fresh(tm.alice, tm.aliceSecret)
	p := h.startProc(tm.alice, nil, nil, "psql", "prod-db", "--", "-X", "-A", "-t", "-e",
		"-c", "CREATE TABLE t1 (a int)", "-c", "select 'usable'", "-c", "CREATE TABLE t2 (a int)", "-c", "select count(*) from pg_tables where tablename in ('t1', 't2')")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("psql:\n%s", p.out.String())
		}
	})
	number := regexp.MustCompile(`approve on your device, number (\d+)`)
	nextPush := func(k int) (string, int) {
		t.Helper()
		var ch map[string]any
		select {
		case ch = <-pushes:
		case <-time.After(60 * time.Second):
			t.Fatal("no push reached the device")
		}
		if ch["purpose"] != "statement" || !strings.HasPrefix(ch["detail"].(string), "prod-db (write): CREATE TABLE") {
			t.Fatalf("the device was asked %v", ch)
		}
		var n int
		testenv.Eventually(t, 30*time.Second, func() bool {
			m := number.FindAllStringSubmatch(p.out.String(), -1)
			if len(m) < k {
				return false
			}
			n, _ = strconv.Atoi(m[k-1][1])
			return true
		}, "psql shows no number")
		return ch["id"].(string), n
	}
	// 1. A wrong number refuses the statement.
	id, n := nextPush(1)
	wrong := n + 1
	if wrong > 99 {
		wrong = 10
	}
	if st := answer(id, wrong); st != http.StatusUnauthorized {
		t.Fatalf("wrong number: status %d", st)
	}
	// 2. The right number approves the next one, which runs.
	id, n = nextPush(2)
	if st := answer(id, n); st != http.StatusOK {
		t.Fatalf("right number: status %d", st)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatal("psql did not finish")
	}
	got := p.out.String()
	for _, want := range []string{
		"NOTICE:  airlock: statement held for MFA by rule schema: approve on your device, number",
		"ERROR:  airlock: statement refused by rule schema: denied by alice (wrong number on the device)",
		"usable",
		"CREATE TABLE",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("psql output lacks %q:\n%s", want, got)
		}
	}
	var tables int
	c, err := pgx.Connect(context.Background(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), "select count(*) from pg_tables where tablename in ('t1', 't2')").Scan(&tables); err != nil || tables != 1 {
		t.Fatalf("tables created: %d (%v), want 1 (t2)", tables, err)
	}
	h.fresh(tm.admin, tm.adminSecret)
	outcomes := map[string]int{}
	for _, e := range h.auditEvents(tm.admin, "db.guard") {
		var d struct{ Hold, By, Factor string }
		_ = json.Unmarshal(e.Details, &d)
		outcomes[d.Hold+"/"+d.By+"/"+d.Factor]++
	}
	if outcomes["held//"] != 2 || outcomes["approved/alice/push"] != 1 || outcomes["denied/alice/push"] != 1 {
		t.Fatalf("db.guard outcomes: %v", outcomes)
	}
}

// TestE2EReplicasHold: a statement held by replica B's gateway is listed
// and approved through replica A (the hold lives in the shared store), and
// runs on B; a second approval, on either replica, does nothing.
func TestE2EReplicasHold(t *testing.T) {
	warmGuard(t)
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	target := pg.NewDatabase(t)
	storeDSN := pg.DSN(pg.NewDatabase(t))
	ensureAppRW(t, pg)
	pg.Exec(t, target, `CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2); GRANT SELECT, INSERT, DELETE ON items TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	dirA := filepath.Join(t.TempDir(), "a")
	a := startHarness(t, dirA, clk, func(c *serverConfig) { c.Store = storeDSN; c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, a, pgHoldsPolicy)
	t.Setenv("REPL_RW_PW", pgRWPassword)
	a.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", target,
		"--credential", "write=app_rw:env:REPL_RW_PW")
	a.grant(tm, "prod-db", "write")

	dirB := filepath.Join(t.TempDir(), "b")
	copyDir(t, dirA, dirB)
	b := startHarness(t, dirB, clk, func(c *serverConfig) { c.Store = storeDSN; c.PGAddr = freeAddr(t) })
	aliceB := t.TempDir()
	b.step()
	b.must(aliceB, "alice password 1\n", "login", "--user", "alice", "--password-stdin", "--otp", totp(t, tm.aliceSecret, clk.Now()))
	p := b.startProc(aliceB, nil, nil, "psql", "prod-db", "--access", "write", "--", "-X", "-A", "-t", "-e",
		"-c", "DELETE FROM items", "-c", "select 'after', count(*) from items")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("psql through B:\n%s", p.out.String())
		}
	})
	var hd access.StatementHold
	testenv.Eventually(t, 60*time.Second, func() bool {
		var hs []access.StatementHold
		if err := json.Unmarshal([]byte(a.must(tm.bob, "", "--output", "json", "statements", "list")), &hs); err != nil {
			t.Fatal(err)
		}
		if len(hs) == 1 {
			hd = hs[0]
		}
		return len(hs) == 1
	}, "replica A does not list the statement B holds")
	a.step()
	a.must(tm.bob, "", "statements", "approve", hd.ID, "--otp", totp(t, tm.bobSecret, clk.Now()))
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatal("psql through B did not finish")
	}
	if out := p.out.String(); !strings.Contains(out, "DELETE 2") || !strings.Contains(out, "after|0") {
		t.Fatalf("psql through B:\n%s", out)
	}
	a.step()
	if out, err := a.run(tm.bob, "", "statements", "approve", hd.ID, "--otp", totp(t, tm.bobSecret, clk.Now())); err == nil {
		t.Fatalf("a second approval on A was accepted:\n%s", out)
	}
}
