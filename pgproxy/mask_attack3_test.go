package pgproxy

// A third attack review, against the batch bookkeeping of protocol
// statements and portals (statements.go: prev chains confirmed at each
// Sync's ReadyForQuery) and the request queue it relies on (requests.go,
// relay.go). Each TestMaskAttack3… test that names a BYPASS failed while
// the attack worked: an ErrorResponse over 1 MiB skipped the bookkeeping
// (now done from the message's start), a Sync in copy-in mode got no
// ReadyForQuery (now the copy gate), a Bind or Describe without masks was
// no request of its own, and a failing batch grew the records of a name
// without bound (now one change per name and batch, maxCandidates per
// name, maxNames per session, portals forgotten when their transaction
// ends).

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// bigErr is a statement whose error is longer than the 1 MiB under which
// the relay reads an ErrorResponse whole (relay.go: "not worth
// buffering"): int4in quotes the whole input in its message.
const bigErr = "SELECT repeat('x', 1100000)::int AS c"

// --- 1. An ErrorResponse over 1 MiB is relayed without errorResponse:
// batchErr is not set, so the batch whose later messages the server
// skipped is confirmed as run, and the prev chain of a skipped Parse is
// cut. The server keeps the old unnamed statement; the gateway decides
// it by the new text.

func TestMaskAttack3LargeErrorConfirmsSkippedParse(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"}, &pgproto3.Sync{})
	big := r.send(1,
		&pgproto3.Parse{Name: "big", Query: bigErr},
		&pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "big"},
		&pgproto3.Execute{Portal: "b"},                        // fails with a 1 MiB message
		&pgproto3.Parse{Query: "SELECT name AS c FROM items"}, // skipped
		&pgproto3.Sync{})
	if !strings.Contains(big, "E ERROR 22P02") {
		t.Fatalf("no large error: %.300s", big)
	}
	out += r.send(1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "1 MiB error, skipped Parse of the unnamed statement confirmed", out)
}

// The same runs a held statement unheld (no Holder: it must be refused).
func TestMaskAttack3HoldLargeErrorConfirmsSkippedParse(t *testing.T) {
	e := holdEnv(t, nil)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "DELETE FROM items"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Parse{Name: "big", Query: bigErr},
		&pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "big"},
		&pgproto3.Execute{Portal: "b"},     // fails with a 1 MiB message
		&pgproto3.Parse{Query: "SELECT 1"}, // skipped
		&pgproto3.Sync{})
	out += r.send(1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if n := e.count(t); n != 2 {
		t.Errorf("BYPASS held DELETE FROM items ran unheld after a 1 MiB error (%d rows left):\n%.2000s", n, out)
	}
}

// --- 2. The request queue falls one behind: a Sync the server never
// answers with its own ReadyForQuery. In copy-in mode the server ignores
// Sync (and Flush) messages; the gateway queues a unit for the Sync all
// the same. From then on each response is matched to the request before
// it: a RowDescription is masked by the stale Sync unit (touches false),
// so an expression over a masked column arrives in clear.

func TestMaskAttack3CopyInSyncDesync(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.fe.Send(q("COPY items (id, name) FROM STDIN"))
	r.fe.Send(&pgproto3.Sync{}) // ignored by the server during COPY
	r.fe.Send(&pgproto3.CopyData{Data: []byte("90\tcopied\n")})
	r.fe.Send(&pgproto3.CopyDone{})
	r.flush()
	out := r.read(1)
	out += r.send(1, q("SELECT card_number || '' AS c FROM orders ORDER BY id"))
	out += r.send(1, &pgproto3.Parse{Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "Sync during COPY FROM STDIN desyncs the request queue", out)
}

// The same through the extended protocol: the client's Sync after an
// Execute of COPY FROM STDIN is ignored too.
func TestMaskAttack3ExtendedCopyInSyncDesync(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.fe.Send(&pgproto3.Parse{Query: "COPY items (id, name) FROM STDIN"})
	r.fe.Send(&pgproto3.Bind{})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{}) // ignored by the server during COPY
	r.fe.Send(&pgproto3.CopyData{Data: []byte("91\tcopied\n")})
	r.fe.Send(&pgproto3.CopyDone{})
	r.fe.Send(&pgproto3.Parse{Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"})
	r.fe.Send(&pgproto3.Bind{})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{})
	r.flush()
	out := r.read(1)
	t.Logf("%s", out)
	noLeak(t, "Sync during extended COPY FROM STDIN desyncs the request queue", out)
}

// Without masks Bind is no request unit, so an error of a Bind leaves a
// Query at the head of the queue: errorResponse does not drop the
// requests the server skips, the Query is popped by the Sync's
// ReadyForQuery and the Sync's unit stays. Each batch is then confirmed
// at the next batch's ReadyForQuery, with that batch's outcome: a batch
// whose Parse was skipped is confirmed by a following empty batch, and a
// held statement runs unheld.
func TestMaskAttack3HoldSkippedQueryDesync(t *testing.T) {
	e := holdEnv(t, nil)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "DELETE FROM items"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		q("SELECT 1"), // skipped: no ReadyForQuery of its own
		&pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "y", PreparedStatement: "nope"}, // fails
		&pgproto3.Parse{Query: "SELECT 1"},                                // skipped
		&pgproto3.Sync{})
	out += r.send(1, &pgproto3.Sync{}) // confirms the batch before it as run
	out += r.send(1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if n := e.count(t); n != 2 {
		t.Errorf("BYPASS held DELETE FROM items ran unheld after a skipped Query (%d rows left):\n%s", n, out)
	}
}

// --- 3. Memory: a name changed in a batch with an error keeps every
// candidate for good, and the messages the server skips cost the client
// nothing (no response). A client repeating [failing Bind, many Close
// messages of one name, Sync] grows the name's prev chain without bound
// (and every later message of the name walks all of it).

func TestMaskAttack3FailedBatchChainUnbounded(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.send(1, &pgproto3.Parse{Name: "n", Query: "SELECT 1"}, &pgproto3.Sync{})
	const batches, closes = 20, 2000
	for range batches {
		r.fe.Send(&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}) // fails
		for range closes {
			r.fe.Send(&pgproto3.Close{ObjectType: 'S', Name: "n"}) // skipped
		}
		r.fe.Send(&pgproto3.Sync{})
	}
	r.flush()
	r.read(batches)
	// Settle the outcomes, then count the chain (c2s is idle: the client
	// waits for the answer to its Sync).
	r.send(1, &pgproto3.Sync{})
	r.send(1, &pgproto3.Sync{})
	s := e.onlySession(t)
	n := 0
	for x := s.stmts.prepared["n"]; x != nil; x = x.prev {
		n++
	}
	t.Logf("records under one name: %d (after %d messages the server skipped)", n, batches*closes)
	if n > 1000 {
		t.Errorf("DoS: %d records kept under one statement name, growing with every skipped message", n)
	}
}

// The same for names: a Bind of a new portal name (or a Parse of a new
// statement name, with its text) that the server skips stays in the
// gateway's maps for good, while the server has nothing under the name.
// (Portal records now end with their transaction: each batch here ends
// idle.)
func TestMaskAttack3FailedBatchNamesUnbounded(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.send(1, &pgproto3.Parse{Name: "n", Query: "SELECT 1"}, &pgproto3.Sync{})
	const batches, binds = 10, 2000
	for b := range batches {
		msgs := []pgproto3.FrontendMessage{&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}} // fails
		for i := range binds {
			msgs = append(msgs, &pgproto3.Bind{DestinationPortal: "p" + itoa(b*binds+i), PreparedStatement: "n"}) // skipped
		}
		r.send(1, append(msgs, &pgproto3.Sync{})...)
	}
	r.send(1, &pgproto3.Sync{})
	s := e.onlySession(t)
	n := len(s.stmts.portals)
	t.Logf("portal records: %d (the server has none)", n)
	if n > 1000 {
		t.Errorf("DoS: %d portal records kept for names the server skipped", n)
	}
}

// Names the client keeps in flight at once, or statement names in
// batches that fail (kept: the gateway cannot tell they were skipped),
// are bounded by maxNames: past it the session ends with a clear error.
func TestMaskAttack3NamesBounded(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	r.fe.Send(&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}) // fails
	for i := range maxNames + 1 {
		r.fe.Send(&pgproto3.Parse{Name: "s" + itoa(i), Query: "SELECT 1"}) // skipped
	}
	r.fe.Send(&pgproto3.Sync{})
	_ = r.fe.Flush()
	out := r.read(2)
	if !strings.Contains(out, "too many prepared statements or portals") {
		t.Errorf("past %d names the session did not end with the bound's error:\n%.2000s", maxNames, out)
	}
}

// onlySession is the gateway's one session, for a test to read its
// client→server state while that direction waits for the client: the
// last thing it did was queue a request, so taking the queue's lock
// orders the test's reads after its writes.
func (e *env) onlySession(t *testing.T) *session {
	t.Helper()
	e.gw.mu.Lock()
	var s *session
	for _, x := range e.gw.byPID {
		s = x
	}
	e.gw.mu.Unlock()
	if s == nil {
		t.Fatal("no session")
	}
	s.requests.mu.Lock()
	s.requests.mu.Unlock() //nolint:staticcheck // an empty critical section: a happens-before edge
	return s
}
