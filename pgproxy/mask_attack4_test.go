package pgproxy

// A fourth attack review, against the copy gate (requests.go, relay.go)
// and the bounded statement bookkeeping (statements.go). Each
// TestMaskAttack4… test fails (BYPASS, DESYNC, HANG, DoS) only while its
// attack works. Both failed when written: a record a skipped Parse
// overwrote without guardrails hid a COPY from the gate (now a name that
// may copy stays one), and SQL DEALLOCATE did not end protocol records
// (now a query string's DEALLOCATEs are Closes of them).

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Without guardrails (no Statements on the target) the statement records
// are not tracked across batches: a Parse the server skips (after an
// error in its batch) still overwrites the gateway's record of the
// unnamed statement. The server keeps COPY ... FROM STDIN under it; the
// gateway believes "SELECT 1", so the Execute of it is not counted by
// the copy gate (copyIn false), the client's Sync after the Execute is
// forwarded and queued although the server ignores it in copy-in mode,
// and from then on every ReadyForQuery is matched to the request before
// its own.
func TestMaskAttack4NoGuardSkippedParseCopyDesync(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "COPY items (id, name) FROM STDIN"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Parse{Query: "SELECT 1"},                                // skipped
		&pgproto3.Sync{})
	// libpq's pattern: Bind, Execute, Sync, then the data.
	r.fe.Send(&pgproto3.Bind{})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{}) // ignored by the server in copy-in mode
	r.flush()
	out += r.untilCopyIn()
	out += r.send(1, &pgproto3.CopyData{Data: []byte("95\tnoguard\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	s := e.onlySession(t)
	left, _ := queueState(s)
	if len(left) > 0 {
		t.Errorf("DESYNC %d request(s) queued with every response received (%c first): a Sync the server ignored in copy-in mode", len(left), left[0].kind)
	}
}

// A legitimate client that prepares statements with the protocol and
// drops them with SQL DEALLOCATE (Rails' statement pool, libpq before
// PQclosePrepared: PQprepare("a<n>") … PQexec("DEALLOCATE a<n>")) uses a
// new name for each statement. The gateway never forgets a protocol
// statement record that SQL DEALLOCATE ended, so past maxNames distinct
// names over the session's life the session is ended, although the
// server holds only one statement at a time.
func TestMaskAttack4SQLDeallocateHitsMaxNames(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	const chunk = 1000
	for c := 0; c <= maxNames/chunk; c++ {
		var msgs []pgproto3.FrontendMessage
		for i := c * chunk; i < (c+1)*chunk; i++ {
			name := "a" + itoa(i)
			msgs = append(msgs, &pgproto3.Parse{Name: name, Query: "SELECT 1"}, &pgproto3.Sync{}, q("DEALLOCATE "+name))
		}
		out := r.send(2*chunk, msgs...)
		if strings.Contains(out, "too many prepared statements or portals") || strings.Contains(out, "FATAL") {
			t.Fatalf("DoS a client that keeps one prepared statement at a time was ended after %d names:\n%.500s", c*chunk, out[max(0, len(out)-500):])
		}
	}
}

// DISCARD ALL deallocates every statement too (Rails runs it when it
// resets a connection): the records of the names it dropped go with it.
func TestDiscardAllEndsStatementRecords(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.send(1, &pgproto3.Parse{Name: "a", Query: "SELECT 1"}, &pgproto3.Parse{Name: "b", Query: "SELECT 2"}, &pgproto3.Sync{})
	if out := r.send(1, q("DISCARD ALL")); !strings.Contains(out, "C DISCARD ALL") {
		t.Fatalf("DISCARD ALL: %s", out)
	}
	r.send(1, &pgproto3.Parse{Name: "c", Query: "SELECT 3"}, &pgproto3.Sync{}) // settles the batch
	r.send(1, &pgproto3.Sync{})
	s := e.onlySession(t)
	if _, ok := s.stmts.prepared["a"]; ok || len(s.stmts.prepared) != 1 {
		t.Errorf("statement records after DISCARD ALL: %d (want only c)", len(s.stmts.prepared))
	}
}
