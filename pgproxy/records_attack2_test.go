package pgproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The Sync count runs ahead of the server once the queue is one behind:
// an ErrorResponse of a simple Query taken for one of a stale Parse unit
// drops the Query units behind it, and the ReadyForQuery of the failed
// Query pops (and counts as answered idle) a Sync the server has not
// read yet. A portal of the transaction that Sync ends in is forgotten
// while the server holds it; rebound in a savepoint to a non-copy
// statement (refused, 42P03), it runs its COPY FROM STDIN with no gate.
func TestAttackIdleSyncAhead(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	r.send(1, &pgproto3.Parse{Name: "cs", Query: "COPY items (id, name) FROM STDIN"},
		&pgproto3.Parse{Name: "n", Query: "SELECT 1"}, &pgproto3.Sync{})
	// 1. A Query the server skips after an extended-protocol error the
	// gateway already saw: its unit is not dropped.
	r.fe.Send(&pgproto3.Bind{PreparedStatement: "nope"})
	r.fe.Send(&pgproto3.Flush{})
	r.flush()
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := r.fe.Receive(); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%T", m)
	}
	time.Sleep(100 * time.Millisecond)
	t.Logf("skipped query: %s", r.send(1, q("SELECT 'skipped'"), &pgproto3.Sync{}))
	qu, _ := queueState(e.onlySession(t))
	t.Logf("queue: %v", qu)
	// 2. A Parse whose ParseComplete finds a stale unit at the head.
	t.Logf("%s", r.send(1, &pgproto3.Parse{Query: "SELECT 2"}, q("SELECT 'a'")))
	qu, _ = queueState(e.onlySession(t))
	t.Logf("queue: %v", qu)
	// 3. A slow failing Query, then BEGIN, a Bind of the copy, Sync.
	r.fe.Send(q("SELECT pg_sleep(0.5), 1/0"))
	r.fe.Send(q("BEGIN"))
	r.fe.Send(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "cs"})
	r.fe.Send(&pgproto3.Sync{})
	r.flush()
	t.Logf("%s", r.read(3))
	s := e.onlySession(t)
	t.Logf("syncs sent %d, answered %d, idle %d; portal p batch %d", s.stmts.batch, s.syncsAnswered, s.idleSyncs.Load(), s.stmts.portals["p"].batch)
	// 4. The record of p is forgotten at the next Bind, and replaced.
	t.Logf("%s", r.send(1, q("SAVEPOINT sp")))
	t.Logf("rebind: %s", r.send(1, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "n"}, &pgproto3.Sync{}))
	t.Logf("%s", r.send(1, q("ROLLBACK TO sp")))
	s = e.onlySession(t)
	t.Logf("record p: copyIn=%v", s.stmts.portals["p"].copyIn)
	qu, open := queueState(s)
	t.Logf("queue before: %v open=%d", qu, open)
	r.fe.Send(&pgproto3.Execute{Portal: "p"})
	r.fe.Send(&pgproto3.Sync{})
	r.flush()
	r.untilCopyIn()
	out := r.send(1, &pgproto3.CopyData{Data: []byte("90\tninety\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	t.Logf("copy: %s", out)
	qu, open = queueState(e.onlySession(t))
	t.Logf("queue after: %v open=%d", qu, open)
	t.Logf("%s", r.send(1, q("COMMIT")))
	if !strings.Contains(out, "COPY 1") {
		t.Fatal("no copy")
	}
	if len(qu) != 0 {
		t.Errorf("DESYNC: %v", qu)
	}
}
