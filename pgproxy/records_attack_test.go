package pgproxy

// From an attack review of the record forgetting in sessions without
// guardrails (forgetPortals, plainDeallocate). Both tests failed (DESYNC)
// while their attacks worked; records that may start a copy are now never
// forgotten there (forgetStmt, forgetPortal).

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func dumpErrors(t *testing.T, e *env) {
	t.Helper()
	for _, ev := range e.sink.Events() {
		if ev.Action == "db.error" || ev.Action == "db.copy" {
			t.Logf("event %s %s", ev.Action, ev.Details)
		}
	}
}

// queueState returns the requests s still waits for a response to, and
// how many of them are open.
func queueState(s *session) (q []unit, open int) {
	s.requests.mu.Lock()
	defer s.requests.mu.Unlock()
	return append([]unit(nil), s.requests.q[s.requests.next:]...), s.requests.open
}

// A plain DEALLOCATE / DISCARD ALL that fails on the server still forgets
// the statement record; a re-Parse of the name (refused by the server,
// 42P05) then records the name as no copy, while the server still holds
// COPY ... FROM STDIN under it. Its Execute opens no copy gate, the
// client's Sync after it reaches the server in copy-in mode (ignored),
// and the request queue keeps a Sync unit no response will ever match.
func TestAttackFailedDeallocateOpensCopyGate(t *testing.T) {
	for _, drop := range []string{"DEALLOCATE s", "DISCARD ALL", "pipelined DEALLOCATE s", "skipped Close", ""} {
		t.Run(strings.ReplaceAll(drop+"_", " ", "_"), func(t *testing.T) {
			e := newEnv(t)
			r := dialRaw(t, e)
			r.send(1, &pgproto3.Parse{Name: "s", Query: "COPY items (id, name) FROM STDIN"}, &pgproto3.Sync{})
			switch drop {
			case "DEALLOCATE s": // aborted transaction: 25P02
				r.send(1, q("BEGIN"))
				r.send(1, q("SELECT 1/0"))
				t.Logf("%s: %s", drop, r.send(1, q(drop)))
				r.send(1, q("ROLLBACK"))
			case "DISCARD ALL": // 25001 inside a transaction block
				r.send(1, q("BEGIN"))
				t.Logf("%s: %s", drop, r.send(1, q(drop)))
				r.send(1, q("ROLLBACK"))
			case "skipped Close":
				t.Logf("%s: %s", drop, r.send(1, &pgproto3.Bind{PreparedStatement: "nope"}, &pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}))
			case "pipelined DEALLOCATE s": // skipped after an extended-protocol error
				t.Logf("%s: %s", drop, r.send(1, &pgproto3.Bind{PreparedStatement: "nope"}, q("DEALLOCATE s"), &pgproto3.Sync{}))
			}
			s := e.onlySession(t)
			t.Logf("record of s kept: %v", s.stmts.prepared["s"] != nil)
			t.Logf("re-Parse: %s", r.send(1, &pgproto3.Parse{Name: "s", Query: "SELECT 1"}, &pgproto3.Sync{}))
			s = e.onlySession(t)
			t.Logf("record of s: copyIn=%v", s.stmts.prepared["s"].copyIn)
			// libpq's way: Execute and Sync at once, then the data.
			r.fe.Send(&pgproto3.Bind{PreparedStatement: "s"})
			r.fe.Send(&pgproto3.Execute{})
			r.fe.Send(&pgproto3.Sync{})
			r.flush()
			r.untilCopyIn()
			out := r.send(1, &pgproto3.CopyData{Data: []byte("90\tninety\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
			t.Logf("copy:\n%s", out)
			qu, open := queueState(e.onlySession(t))
			t.Logf("queue after the copy: %v open=%d; syncs sent %d, answered %d", qu, open, e.onlySession(t).stmts.batch, e.onlySession(t).syncsAnswered)
			t.Logf("later error: %s", r.send(1, q("SELECT 1/0 AS later")))
			// A later, ordinary COPY through a Query.
			r.fe.Send(q("COPY items (id, name) FROM STDIN"))
			r.flush()
			r.untilCopyIn()
			out = r.send(1, &pgproto3.CopyData{Data: []byte("91\tx\n")}, &pgproto3.CopyDone{})
			t.Logf("second copy: %s", out)
			out = r.send(1, q("SELECT count(*) FROM items"))
			t.Logf("after the second copy: %s", out)
			dumpErrors(t, e)
			if len(qu) != 0 || !strings.Contains(out, `D "4"`) {
				t.Errorf("DESYNC: request units left with no response to come: %v; then %q", qu, out)
			}
		})
	}
}
