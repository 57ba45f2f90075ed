package pgproxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/policy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// chanHolder is a Holder the test decides: each hold is sent on reqs
// (after its notice), and waits for a result on res.
type chanHolder struct {
	reqs chan HoldRequest
	res  chan HoldResult
}

func newChanHolder() *chanHolder {
	return &chanHolder{reqs: make(chan HoldRequest, 4), res: make(chan HoldResult, 4)}
}

func (h *chanHolder) Hold(ctx context.Context, r HoldRequest, notice func(string)) HoldResult {
	notice("airlock: statement held for approval by rule " + r.Rule)
	h.reqs <- r
	select {
	case res := <-h.res:
		return res
	case <-ctx.Done():
		return HoldResult{Outcome: HoldTimeout}
	}
}

// next waits for the next hold.
func (h *chanHolder) next(t *testing.T) HoldRequest {
	t.Helper()
	select {
	case r := <-h.reqs:
		return r
	case <-time.After(2 * time.Minute): // the parser's first compile is slow under -race
		t.Fatal("no statement was held")
		return HoldRequest{}
	}
}

var holdRules = &policy.Statements{Rules: []policy.StatementRule{
	{Name: "files", Functions: []string{"pg_read_file"}, Action: policy.StatementDeny},
	{Name: "wipe", Forms: []string{"no_where"}, Action: policy.StatementRequireApproval, Timeout: time.Minute},
}}

func (e *env) count(t *testing.T) int {
	t.Helper()
	c, err := pgx.Connect(t.Context(), e.pg.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), "select count(*) from items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func holdEnv(t *testing.T, h Holder) *env {
	WarmGuard()
	e := newEnv(t, func(c *Config) {
		if h != nil {
			c.Holder = h
		}
	})
	e.target("write-token", func(tg *Target) { tg.Statements = holdRules })
	return e
}

func refused(err error, what string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501" && strings.Contains(pe.Message, what)
}

// A held simple-protocol Query waits at the gateway (the server has not
// seen it), the client is told why in a notice, and it runs once approved;
// a refusal is an ErrorResponse and the session goes on.
func TestHoldSimpleQuery(t *testing.T) {
	h := newChanHolder()
	e := holdEnv(t, h)
	var mu sync.Mutex
	var notices []string
	cfg, err := pgx.ParseConfig(e.dsn("write-token", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { mu.Lock(); notices = append(notices, n.Message); mu.Unlock() }
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	done := make(chan error, 1)
	go func() { _, err := c.Exec(context.Background(), "DELETE FROM items"); done <- err }()
	r := h.next(t)
	if r.Action != policy.StatementRequireApproval || r.Rule != "wipe" || r.Statement != "DELETE FROM items" || r.UserName != "alice" ||
		r.Resource != "prod-db" || r.Timeout != time.Minute {
		t.Fatalf("hold request %+v", r)
	}
	if n := e.count(t); n != 2 {
		t.Fatalf("the held statement reached the server: %d rows", n)
	}
	h.res <- HoldResult{Outcome: HoldDenied, By: "bob"}
	if err := <-done; !refused(err, "refused by rule wipe: denied by bob") {
		t.Fatalf("denied hold: %v", err)
	}
	mu.Lock()
	if len(notices) != 1 || !strings.Contains(notices[0], "held for approval") {
		t.Errorf("notices %q", notices)
	}
	mu.Unlock()
	if n := e.count(t); n != 2 {
		t.Fatalf("a denied hold ran: %d rows", n)
	}
	// The session is usable; a timeout is refused the same way.
	var one int
	if err := c.QueryRow(t.Context(), "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after a refusal: %v", err)
	}
	go func() { _, err := c.Exec(context.Background(), "UPDATE items SET name = 'x'"); done <- err }()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldTimeout}
	if err := <-done; !refused(err, "not approved within 1m") {
		t.Fatalf("timed out hold: %v", err)
	}
	// Approved: it runs.
	go func() { _, err := c.Exec(context.Background(), "DELETE FROM items"); done <- err }()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved, By: "bob", Factor: "totp"}
	if err := <-done; err != nil {
		t.Fatalf("approved hold: %v", err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("approved DELETE left %d rows", n)
	}
	ev := e.waitEvent(t, "db.guard")
	if ev.Outcome != "success" || detail(ev, "hold") != "approved" || detail(ev, "by") != "bob" || detail(ev, "factor") != "totp" {
		t.Fatalf("db.guard of the approval: %s %s", ev.Outcome, ev.Details)
	}
	held := 0
	for _, ev := range e.sink.Find("db.guard", "") {
		if detail(ev, "hold") == "held" {
			held++
		}
	}
	if held != 3 {
		t.Fatalf("%d db.guard held events, want 3", held)
	}
}

// Extended protocol: decided at Parse, held at Execute. A pipelined batch
// keeps its order: what precedes the held statement answers, what follows
// waits behind it; a refusal skips to Sync like any error.
func TestHoldExtendedPipeline(t *testing.T) {
	h := newChanHolder()
	e := holdEnv(t, h)
	c := e.connect(t, "write-token")

	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "DELETE FROM items WHERE $1::int > 0 OR true", 1)
		done <- err
	}()
	r := h.next(t)
	if r.Statement != "DELETE FROM items WHERE $1::int > 0 OR true" {
		t.Fatalf("held %+v", r)
	}
	h.res <- HoldResult{Outcome: HoldDenied}
	if err := <-done; !refused(err, "refused by rule wipe") {
		t.Fatalf("denied extended hold: %v", err)
	}

	b := &pgx.Batch{}
	b.Queue("select 1")
	b.Queue("UPDATE items SET name = 'y'")
	b.Queue("select count(*) from items where name = 'y'")
	res := make(chan []any, 1)
	go func() {
		br := c.SendBatch(context.Background(), b)
		var one, n int
		e1 := br.QueryRow().Scan(&one)
		_, e2 := br.Exec()
		e3 := br.QueryRow().Scan(&n)
		res <- []any{one, e1, e2, n, e3, br.Close()}
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved, By: "bob"}
	got := <-res
	if got[0] != 1 || got[1] != nil || got[2] != nil || got[3] != 2 || got[4] != nil || got[5] != nil {
		t.Fatalf("approved batch: %v", got)
	}
	// Each Execute of a held statement is held again.
	go func() {
		_, err := c.Exec(context.Background(), "DELETE FROM items WHERE $1::int > 0 OR true", 1)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d rows left", n)
	}
}

// Without a Holder a held statement is refused: fail closed.
func TestHoldWithoutHolder(t *testing.T) {
	e := holdEnv(t, nil)
	c := e.connect(t, "write-token")
	if _, err := c.Exec(t.Context(), "DELETE FROM items"); !refused(err, "the approval could not be asked") {
		t.Fatalf("hold without a holder: %v", err)
	}
	if n := e.count(t); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

// SQL PREPARE of a held statement is held, and so is each EXECUTE, and a
// protocol Bind of the SQL-prepared name; the reserved portal cannot be
// bound.
func TestHoldSQLPrepared(t *testing.T) {
	h := newChanHolder()
	e := holdEnv(t, h)
	c := e.connect(t, "write-token")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "PREPARE wipe AS DELETE FROM items", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := c.Exec(context.Background(), "EXECUTE wipe", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldDenied}
	if err := <-done; !refused(err, "refused by rule wipe") {
		t.Fatalf("EXECUTE of a held PREPARE: %v", err)
	}
	// The protocol's Bind may name the SQL-prepared statement.
	go func() {
		rr := c.PgConn().ExecPrepared(context.Background(), "wipe", nil, nil, nil).Read()
		done <- rr.Err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldDenied}
	if err := <-done; !refused(err, "refused by rule wipe") {
		t.Fatalf("Bind of a held SQL PREPARE: %v", err)
	}
	if n := e.count(t); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

// With strict audit, the notice waits for the held event's receipt like
// any output, and the held statement runs once approved.
func TestHoldStrictAudit(t *testing.T) {
	h := newChanHolder()
	e := holdEnv(t, h)
	e.target("write-token", func(tg *Target) { tg.StrictAudit = true })
	c := e.connect(t, "write-token")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "DELETE FROM items", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d rows", n)
	}
	var one int
	if err := c.QueryRow(t.Context(), "select 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// A held statement's name prepared again with a harmless text — which the
// server refuses while the name exists (42P05) — is still held at its
// Execute, through the protocol and through SQL PREPARE/EXECUTE (a review
// ran the DELETE unheld this way).
func TestHoldSurvivesReprepare(t *testing.T) {
	h := newChanHolder()
	e := holdEnv(t, h)
	c := e.connect(t, "write-token")
	ctx := context.Background()
	if _, err := c.PgConn().Prepare(ctx, "s1", "DELETE FROM items", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PgConn().Prepare(ctx, "s1", "SELECT 1", nil); err == nil {
		t.Fatal("the server took a second Parse of s1")
	}
	done := make(chan error, 1)
	go func() { done <- c.PgConn().ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err }()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldDenied}
	if err := <-done; !refused(err, "refused by rule wipe") {
		t.Fatalf("Execute of s1 after a refused re-Parse: %v", err)
	}

	go func() {
		_, err := c.Exec(ctx, "PREPARE w2 AS DELETE FROM items", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldApproved}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "PREPARE w2 AS SELECT 1", pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("the server took a second PREPARE w2")
	}
	go func() {
		_, err := c.Exec(ctx, "EXECUTE w2", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	h.next(t)
	h.res <- HoldResult{Outcome: HoldDenied}
	if err := <-done; !refused(err, "refused by rule wipe") {
		t.Fatalf("EXECUTE w2 after a refused re-PREPARE: %v", err)
	}
	if n := e.count(t); n != 2 {
		t.Fatalf("%d rows left", n)
	}
}
