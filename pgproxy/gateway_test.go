package pgproxy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestReadTargetCannotWrite(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	var n int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read: n=%d err=%v", n, err)
	}
	_, err := c.Exec(t.Context(), "INSERT INTO items VALUES (3, 'three')")
	if pgCode(err) != "25006" {
		t.Fatalf("insert in read-only session: want 25006 read_only_sql_transaction, got %v", err)
	}
	// The second layer removed, the role's privileges still refuse.
	if _, err := c.Exec(t.Context(), "SET default_transaction_read_only = off"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(t.Context(), "INSERT INTO items VALUES (3, 'three')")
	if pgCode(err) != "42501" {
		t.Fatalf("insert by read role: want 42501 insufficient_privilege, got %v", err)
	}
}

func TestWriteAndAudit(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "write-token")
	if _, err := c.Exec(t.Context(), "INSERT INTO items VALUES (3, 'three')", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, err := c.Exec(t.Context(), "SELECT 1/0", pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != "22012" {
		t.Fatalf("want division_by_zero, got %v", err)
	}
	c.Close(t.Context())
	e.waitEvent(t, "session.ended")

	var sessionID string
	for _, ev := range e.sink.Events() {
		if ev.SessionID == "" || ev.GrantID != "gr_write" || ev.Actor.ID != "usr_alice" || ev.Actor.Name != "alice" || ev.Resource != "prod-db" {
			t.Errorf("event %s lacks session/grant/actor: %+v", ev.Action, ev)
		}
		if sessionID == "" {
			sessionID = ev.SessionID
		} else if ev.SessionID != sessionID {
			t.Errorf("event %s in another session %s", ev.Action, ev.SessionID)
		}
	}
	var insertStmt float64
	for _, ev := range e.sink.Find("db.query", "query") {
		if detail(ev, "text") == "INSERT INTO items VALUES (3, 'three')" {
			insertStmt = detail(ev, "stmt").(float64)
		}
	}
	if insertStmt == 0 {
		t.Fatalf("no db.query for the insert in %v", e.sink.Events())
	}
	errs := e.sink.Find("db.error", "")
	if len(errs) != 1 || detail(errs[0], "sqlstate") != "22012" || detail(errs[0], "stmt").(float64) != insertStmt+1 || errs[0].Outcome != airlock.OutcomeFailure {
		t.Fatalf("db.error: %v", errs)
	}
	ended := e.sink.Find("session.ended", "")[0]
	if detail(ended, "statements").(float64) != 2 || detail(ended, "end_reason") != string(airlock.EndClientTerminated) ||
		detail(ended, "bytes_in").(float64) == 0 || detail(ended, "bytes_out").(float64) == 0 {
		t.Fatalf("session.ended details: %s", ended.Details)
	}
	if len(e.sink.Find("session.started", "")) != 1 {
		t.Fatal("no session.started")
	}
	var n int
	e.waitSessions(t, 0)
	if err := pgxQueryRow(t, e, "SELECT count(*) FROM items", &n); err != nil || n != 3 {
		t.Fatalf("row not written: n=%d err=%v", n, err)
	}
}

func pgxQueryRow(t *testing.T, e *env, sql string, dst any) error {
	c, err := pgx.Connect(t.Context(), e.pg.DSN(e.db))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.QueryRow(t.Context(), sql).Scan(dst)
}

func TestPreparedStatements(t *testing.T) {
	for _, logParams := range []bool{false, true} {
		t.Run("log_parameters="+map[bool]string{false: "off", true: "on"}[logParams], func(t *testing.T) {
			e := newEnv(t)
			e.target("read-token", func(tg *Target) { tg.LogParameters = logParams })
			c := e.connect(t, "read-token")
			var name string
			for i := 0; i < 2; i++ { // second run uses pgx's cached statement: Bind+Execute only
				if err := c.QueryRow(t.Context(), "SELECT name FROM items WHERE id = $1", 2).Scan(&name); err != nil || name != "two" {
					t.Fatalf("prepared: %q %v", name, err)
				}
			}
			var parse airlock.Event
			for _, ev := range e.sink.Find("db.query", "parse") {
				if detail(ev, "text") == "SELECT name FROM items WHERE id = $1" {
					parse = ev
				}
			}
			if parse.Action == "" {
				t.Fatalf("no parse event: %v", e.sink.Events())
			}
			var execs []airlock.Event
			for _, ev := range e.sink.Find("db.query", "execute") {
				if detail(ev, "parse_stmt") == detail(parse, "stmt") {
					execs = append(execs, ev)
				}
			}
			if len(execs) != 2 {
				t.Fatalf("want 2 executes linked to parse %v, got %d: %v", detail(parse, "stmt"), len(execs), e.sink.Events())
			}
			for _, ex := range execs {
				if detail(ex, "text") != "SELECT name FROM items WHERE id = $1" || detail(ex, "name") != detail(parse, "name") {
					t.Errorf("execute details: %s", ex.Details)
				}
				params := detail(ex, "params")
				if logParams && params == nil {
					t.Errorf("params not logged: %s", ex.Details)
				}
				if !logParams && params != nil {
					t.Errorf("params logged without LogParameters: %s", ex.Details)
				}
			}
		})
	}
}

func TestCopy(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "write-token")
	rows := [][]any{{10, "a"}, {11, "b"}, {12, "c"}}
	n, err := c.CopyFrom(t.Context(), pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	if err != nil || n != 3 {
		t.Fatalf("copy from: %d %v", n, err)
	}
	var out strings.Builder
	tag, err := c.PgConn().CopyTo(t.Context(), &out, "COPY items TO STDOUT")
	if err != nil || tag.RowsAffected() != 5 || !strings.Contains(out.String(), "12\tc") {
		t.Fatalf("copy to: %v %v %q", tag, err, out.String())
	}
	copies := e.sink.Find("db.copy", "")
	if len(copies) != 2 {
		t.Fatalf("want 2 db.copy events, got %v", copies)
	}
	if detail(copies[0], "direction") != "in" || detail(copies[0], "rows").(float64) != 3 ||
		detail(copies[1], "direction") != "out" || detail(copies[1], "rows").(float64) != 5 {
		t.Fatalf("db.copy details: %s %s", copies[0].Details, copies[1].Details)
	}
	if detail(copies[1], "stmt") == float64(0) {
		t.Fatalf("db.copy not linked to its statement: %s", copies[1].Details)
	}
}

func TestLargeResultStreams(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rows, err := c.Query(t.Context(), "SELECT generate_series(1, 1000000)")
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int64
	var peak uint64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		n++
		sum += v
		if n%100000 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1000000 || sum != 500000500000 {
		t.Fatalf("rows=%d sum=%d", n, sum)
	}
	if peak > before.HeapInuse && peak-before.HeapInuse > 64<<20 {
		t.Fatalf("heap grew by %d MiB while streaming", (peak-before.HeapInuse)>>20)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(30)")
		done <- err
	}()
	e.waitQuery(t, "SELECT pg_sleep(30)")
	if err := c.PgConn().CancelRequest(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if pgCode(err) != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("query not cancelled")
	}
	e.waitEvent(t, "db.cancel")
	// A cancel with a wrong key does nothing.
	var one int
	if err := c.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session unusable after cancel: %v", err)
	}
}

// waitQuery waits until the upstream runs query.
func (e *env) waitQuery(t *testing.T, query string) {
	t.Helper()
	ran := testenv.Poll(10*time.Second, func() bool {
		var n int
		if err := pgxQueryRow(t, e, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '"+query+"'", &n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if !ran {
		t.Fatalf("query %q never ran upstream", query)
	}
}

func TestListenNotify(t *testing.T) {
	e := newEnv(t)
	l := e.connect(t, "read-token")
	n := e.connect(t, "write-token")
	if _, err := l.Exec(t.Context(), "LISTEN airlock_test"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Exec(t.Context(), "NOTIFY airlock_test, 'hello'"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	nf, err := l.WaitForNotification(ctx)
	if err != nil || nf.Channel != "airlock_test" || nf.Payload != "hello" {
		t.Fatalf("notification: %+v %v", nf, err)
	}
}

func TestGrantExpiryClosesSession(t *testing.T) {
	e := newEnv(t)
	ends := time.Now().Add(time.Second)
	e.target("read-token", func(tg *Target) { tg.EndsAt = ends })
	c := e.connect(t, "read-token")
	_, err := c.Exec(t.Context(), "SELECT pg_sleep(20)")
	want := "airlock: grant expired at " + ends.UTC().Format(time.RFC3339) + " — session closed"
	if pgCode(err) != "57P01" || !contains(err, want) {
		t.Fatalf("want FATAL %q, got %v", want, err)
	}
	ev := e.waitEvent(t, "session.ended")
	if detail(ev, "end_reason") != string(airlock.EndGrantExpired) {
		t.Fatalf("end reason: %s", ev.Details)
	}
	// A token whose grant has ended opens nothing.
	_, err = pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
	if !contains(err, "grant expired") {
		t.Fatalf("connect after expiry: %v", err)
	}
}

func TestCloseGrantAndSession(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	w := e.connect(t, "write-token")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(20)")
		done <- err
	}()
	e.waitQuery(t, "SELECT pg_sleep(20)")
	if n := e.gw.CloseGrant("gr_read", ""); n != 1 {
		t.Fatalf("CloseGrant closed %d sessions", n)
	}
	select {
	case err := <-done:
		if !contains(err, "airlock: grant revoked — session closed") {
			t.Fatalf("revoked session: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed")
	}
	// The other grant's session lives on until killed by id.
	var one int
	if err := w.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("unrelated session hurt: %v", err)
	}
	e.waitSessions(t, 1)
	id := e.gw.ActiveSessions()[0].ID
	if !e.gw.CloseSession(id, "") {
		t.Fatal("CloseSession: not found")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := w.WaitForNotification(ctx)
	if !contains(err, "airlock: session killed by an administrator") {
		t.Fatalf("killed session: %v", err)
	}
	e.waitSessions(t, 0)
	if e.gw.CloseUser("usr_alice", "") != 0 {
		t.Fatal("sessions left after kills")
	}
}

func TestIdleTimeoutAndMaxConcurrent(t *testing.T) {
	e := newEnv(t)
	e.target("read-token", func(tg *Target) { tg.IdleTimeout = 300 * time.Millisecond; tg.MaxConcurrent = 1 })
	c := e.connect(t, "read-token")
	_, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
	if pgCode(err) != "53300" || !contains(err, "too many concurrent sessions") {
		t.Fatalf("second session: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = c.WaitForNotification(ctx)
	if pgCode(err) != "57P05" || !contains(err, "idle") {
		t.Fatalf("idle session: %v", err)
	}
	e.waitSessions(t, 0)
	c2 := e.connect(t, "read-token") // the slot is free again
	if _, err := c2.Exec(t.Context(), "SELECT pg_sleep(1)"); err != nil {
		t.Fatalf("a running statement is not idle: %v", err)
	}
}

func TestWrongTokenRefused(t *testing.T) {
	e := newEnv(t)
	for _, dsn := range []string{e.dsn("nope", "disable"), strings.Replace(e.dsn("read-token", "disable"), "alice", "bob", 1)} {
		_, err := pgx.Connect(t.Context(), dsn)
		if pgCode(err) != "28P01" || !contains(err, "airlock: invalid or expired connect token (run `airlock psql RESOURCE` to get a new one)") {
			t.Fatalf("want 28P01 with the standard message, got %v", err)
		}
	}
	if strings.Contains(e.logs.String(), "nope") {
		t.Fatal("token in logs")
	}
}

func TestTLSRequiredUnlessLoopbackAllowed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowLoopbackPlaintext = false })
	_, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
	if !contains(err, "TLS required") {
		t.Fatalf("plaintext accepted: %v", err)
	}
	cfg, err := pgx.ParseConfig(e.dsn("read-token", "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig.RootCAs = e.tlsCA
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("TLS connect: %v", err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(t.Context(), "SELECT true").Scan(&ok); err != nil || !ok {
		t.Fatal(err)
	}
	if ev := e.waitEvent(t, "session.started"); detail(ev, "tls") != true {
		t.Fatalf("session.started tls: %s", ev.Details)
	}
}

func psqlPath(t *testing.T) string {
	p, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("psql not installed")
		}
		t.Skip("psql not installed (apt-get install postgresql-client)")
	}
	return p
}

func runPsql(t *testing.T, e *env, conninfo, sql string) (string, error) {
	cmd := exec.CommandContext(t.Context(), psqlPath(t), "-X", "-At", "-d", conninfo, "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD=read-token", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPsql(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowLoopbackPlaintext = false })
	base := "host=127.0.0.1 port=" + itoa(e.port) + " user=alice dbname=prod-db "
	out, err := runPsql(t, e, base+"sslmode=require", "SELECT 'via-tls', ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	if err != nil || !strings.Contains(out, "via-tls") {
		t.Fatalf("psql sslmode=require: %v\n%s", err, out)
	}
	out, err = runPsql(t, e, base+"sslmode=require gssencmode=prefer", "\\copy (SELECT id FROM items ORDER BY id) TO STDOUT")
	if err != nil || out != "1\n2\n" {
		t.Fatalf("psql gssencmode=prefer + \\copy: %v\n%q", err, out)
	}
	out, err = runPsql(t, e, base+"sslmode=disable", "SELECT 1")
	if err == nil || !strings.Contains(out, "TLS required") {
		t.Fatalf("psql plaintext accepted: %v\n%s", err, out)
	}
}

func TestAuditFailureClosesSession(t *testing.T) {
	t.Run("standard", func(t *testing.T) {
		e := newEnv(t)
		e.sink.fail = func(ev airlock.Event) bool { return ev.Action == "db.query" }
		c := e.connect(t, "read-token")
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			_, err = c.Exec(t.Context(), "SELECT 1")
		}
		if err == nil {
			t.Fatal("session survived a failed audit receipt")
		}
		ev := e.waitEvent(t, "session.ended")
		if detail(ev, "end_reason") != string(airlock.EndAuditUnavailable) {
			t.Fatalf("end reason: %s", ev.Details)
		}
	})
	t.Run("strict", func(t *testing.T) {
		e := newEnv(t)
		e.target("read-token", func(tg *Target) { tg.StrictAudit = true })
		e.sink.fail = func(ev airlock.Event) bool { return ev.Action == "db.query" }
		c := e.connect(t, "read-token")
		var v int
		err := c.QueryRow(t.Context(), "SELECT 42", pgx.QueryExecModeSimpleProtocol).Scan(&v)
		if err == nil {
			t.Fatalf("strict session returned a result (%d) whose audit failed", v)
		}
		// The result is dropped, but the client is told why (issue 13:
		// it used to see a bare EOF).
		if !contains(err, msgAuditFailed) || pgCode(err) != codeAdminShutdown {
			t.Fatalf("strict session closed by an audit failure without its FATAL: %v", err)
		}
		ev := e.waitEvent(t, "session.ended")
		if detail(ev, "end_reason") != string(airlock.EndAuditUnavailable) {
			t.Fatalf("end reason: %s", ev.Details)
		}
	})
}

// TestStoreUnavailableFatal: when the Authenticator cannot check a token
// because the store is down or full (EUNAVAILABLE), the client is told so
// — not "invalid or expired connect token" — for SCRAM and cleartext
// alike; a real invalid token still gets the one invalid-token answer.
func TestStoreUnavailableFatal(t *testing.T) {
	down := func(ctx context.Context, req AuthRequest) (*Target, error) {
		return nil, airlock.StoreUnavailable(errors.New("connection refused (test)"))
	}
	e := newEnv(t, func(c *Config) { c.Auth = AuthenticatorFunc(down) })
	for _, sslmode := range []string{"disable", "require"} {
		_, err := pgx.Connect(t.Context(), e.dsn("read-token", sslmode))
		if !contains(err, msgUnavailable) || pgCode(err) != codeCannotConnect || contains(err, "invalid or expired") {
			t.Fatalf("sslmode=%s: %v", sslmode, err)
		}
	}
	e = newEnv(t)
	_, err := pgx.Connect(t.Context(), e.dsn("no-such-token", "disable"))
	if !contains(err, msgInvalidToken) || pgCode(err) != codeInvalidPassword {
		t.Fatalf("invalid token: %v", err)
	}
}

func TestStrictHoldsResponseUntilDurable(t *testing.T) {
	e := newEnv(t)
	e.target("write-token", func(tg *Target) { tg.StrictAudit = true })
	c := e.connect(t, "write-token")
	e.sink.mu.Lock()
	e.sink.hold = func(ev airlock.Event) bool { return ev.Action == "db.query" }
	e.sink.mu.Unlock()
	e.waitSessions(t, 1)
	before := e.gw.ActiveSessions()[0].BytesOut
	got := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "INSERT INTO items VALUES (7, 'seven')", pgx.QueryExecModeSimpleProtocol)
		got <- err
	}()
	// Wait until the server's answer reached the gateway.
	if !testenv.Poll(10*time.Second, func() bool { return e.gw.ActiveSessions()[0].BytesOut != before }) {
		t.Fatal("no answer from upstream")
	}
	select {
	case err := <-got:
		t.Fatalf("client got the answer before its event was durable (err=%v)", err)
	default:
	}
	e.sink.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("answer never released")
	}
}

// TestStrictFlushesHeldEvents: a pipeline that holds events back for group
// commit (audit MaxDelay) does not hold a strict session's results for
// that delay — the session asks it to flush — while a standard session
// never waits for it at all.
func TestStrictFlushesHeldEvents(t *testing.T) {
	e := newEnv(t)
	e.target("write-token", func(tg *Target) { tg.StrictAudit = true })
	e.sink.mu.Lock()
	e.sink.lazy = true
	e.sink.mu.Unlock()
	for _, token := range []string{"read-token", "write-token"} {
		c := e.connect(t, token)
		var v int
		if err := c.QueryRow(t.Context(), "SELECT 42", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != 42 {
			t.Fatalf("%s: %d %v", token, v, err)
		}
		e.sink.mu.Lock()
		flushes := e.sink.flushes
		e.sink.mu.Unlock()
		if strict := token == "write-token"; strict != (flushes > 0) {
			t.Fatalf("%s: %d flushes", token, flushes)
		}
		c.Close(t.Context())
	}
}

// TestStrictKillSendsFatal: a strict session cut while its receipts are
// still held by the pipeline's group-commit delay flushes them and still
// tells the client why.
func TestStrictKillSendsFatal(t *testing.T) {
	e := newEnv(t)
	e.target("write-token", func(tg *Target) { tg.StrictAudit = true })
	e.sink.mu.Lock()
	e.sink.lazy = true
	e.sink.mu.Unlock()
	c := e.connect(t, "write-token")
	done := make(chan error, 1)
	go func() {
		// Its db.query event is held: no output has asked for it yet.
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(20)", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	e.waitQuery(t, "SELECT pg_sleep(20)")
	if n := e.gw.CloseGrant("gr_write", ""); n != 1 {
		t.Fatalf("CloseGrant closed %d sessions", n)
	}
	select {
	case err := <-done:
		if !contains(err, "airlock: grant revoked — session closed") {
			t.Fatalf("strict session cut without its FATAL: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed")
	}
}

func TestUpstreamPasswordNeverLeaks(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "write-token")
	if _, err := c.Exec(t.Context(), "SELECT current_user"); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())
	// A wrong brokered password: the upstream refuses, the client gets a
	// generic message, the log the cause.
	e.target("read-token", func(tg *Target) { tg.UpstreamPassword = "wrong-" + tg.UpstreamPassword })
	_, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
	if pgCode(err) != codeConnFailure || contains(err, e.reader) {
		t.Fatalf("upstream failure: %v", err)
	}
	e.waitEvent(t, "session.denied")
	e.waitEvent(t, "session.ended")
	logs := e.logs.String()
	if !strings.Contains(logs, "upstream connect failed") {
		t.Fatalf("upstream failure not logged:\n%s", logs)
	}
	e.noUpstreamPasswords(t, logs)
}

func TestLongStatementTruncated(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	long := "SELECT '" + strings.Repeat("é", 6000) + "'"
	if _, err := c.Exec(t.Context(), long, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	evs := e.sink.Find("db.query", "query")
	ev := evs[len(evs)-1]
	text := detail(ev, "text").(string)
	if len(text) > MaxStatementText || detail(ev, "truncated") != true || detail(ev, "text_bytes").(float64) != float64(len(long)) ||
		len(detail(ev, "statement_sha256").(string)) != 64 || !strings.HasPrefix(long, text) {
		t.Fatalf("truncation: len=%d details=%.200s", len(text), ev.Details)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestShutdownClosesSessions(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "read-token")
	errc := make(chan error, 1)
	go func() {
		_, err := c.WaitForNotification(context.Background())
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !contains(err, "airlock: server shutting down — session closed") {
		t.Fatalf("session at shutdown: %v", err)
	}
	if _, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable")); err == nil {
		t.Fatal("connected after shutdown")
	}
	ev := e.waitEvent(t, "session.ended")
	if detail(ev, "end_reason") != string(airlock.EndServerShutdown) {
		t.Fatalf("end reason: %s", ev.Details)
	}
}

// TestExpiredGrantRefusalAudited: a valid token whose grant has ended by
// the time the gateway checks it is refused with the expiry FATAL and a
// session.denied event (every refusal of a door is an event).
func TestExpiredGrantRefusalAudited(t *testing.T) {
	e := newEnv(t)
	e.target("read-token", func(tg *Target) { tg.EndsAt = time.Now().Add(-time.Minute) })
	c, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
	if err == nil {
		c.Close(context.Background())
		t.Fatal("connected under an ended grant")
	}
	if !contains(err, "grant expired") {
		t.Fatalf("err = %v, want the expiry FATAL", err)
	}
	ev := e.waitEvent(t, "session.denied")
	if detail(ev, "reason") != "grant_expired" || ev.Outcome != airlock.OutcomeDenied {
		t.Fatalf("session.denied %+v %s", ev, ev.Details)
	}
}
