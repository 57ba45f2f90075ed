package pgproxy

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPortalRecordsEndWithTransaction: in a session without guardrails a
// portal's record (kept for the copy gate) ends, as the portal does on
// the server, once a Sync is answered outside a transaction. Before, every
// portal name a client bound stayed for the session's life: a pgjdbc
// client (a new name per query it fetches in parts) grew the gateway
// without bound. A portal of an open transaction is kept and still runs.
func TestPortalRecordsEndWithTransaction(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	r.send(1, &pgproto3.Parse{Name: "n", Query: "SELECT 1"}, &pgproto3.Sync{})
	const batches, binds = 20, 500
	for b := range batches {
		var msgs []pgproto3.FrontendMessage
		for i := range binds {
			msgs = append(msgs, &pgproto3.Bind{DestinationPortal: "C_" + itoa(b*binds+i), PreparedStatement: "n"})
		}
		if out := r.send(1, append(msgs, &pgproto3.Sync{})...); strings.Contains(out, "Error") {
			t.Fatalf("batch %d: %.500s", b, out)
		}
	}
	// A transaction's portal outlives idle answers before it and its
	// own batch's Sync.
	r.send(1, &pgproto3.Query{String: "BEGIN"})
	r.send(1, &pgproto3.Bind{DestinationPortal: "keep", PreparedStatement: "n"}, &pgproto3.Sync{})
	r.send(1, &pgproto3.Bind{DestinationPortal: "last", PreparedStatement: "n"}, &pgproto3.Sync{})
	s := e.onlySession(t)
	n := len(s.stmts.portals)
	_, kept := s.stmts.portals["keep"]
	t.Logf("portal records after %d binds: %d", batches*binds, n)
	if n > binds+2 {
		t.Errorf("%d portal records kept after %d idle batches (the server has 2 portals)", n, batches)
	}
	if !kept {
		t.Error("the open transaction's portal was forgotten")
	}
	if out := r.send(1, &pgproto3.Execute{Portal: "keep"}, &pgproto3.Sync{}); !strings.Contains(out, `D "1"`) {
		t.Errorf("the transaction's portal does not run:\n%.500s", out)
	}
	r.send(1, &pgproto3.Query{String: "COMMIT"})
}

// TestStatementRecordsFollowPlainDeallocate: in a session without
// guardrails, statements prepared through the protocol and dropped with
// SQL DEALLOCATE (Rails' way) or DISCARD ALL leave no records behind;
// before, each name stayed, with its text, for the connection's life.
func TestStatementRecordsFollowPlainDeallocate(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	const n = 3000
	for i := range n {
		name := "a" + itoa(i)
		r.send(1, &pgproto3.Parse{Name: name, Query: "SELECT " + itoa(i)}, &pgproto3.Sync{})
		if out := r.send(1, &pgproto3.Query{String: "DEALLOCATE " + name}); strings.Contains(out, "E ") {
			t.Fatalf("DEALLOCATE %s: %.300s", name, out)
		}
	}
	r.send(1, &pgproto3.Parse{Name: "kept", Query: "SELECT 1"}, &pgproto3.Sync{})
	s := e.onlySession(t)
	if got := len(s.stmts.prepared); got > 2 {
		t.Errorf("%d statement records after %d DEALLOCATEs (the server holds 1)", got, n)
	}
	if _, ok := s.stmts.prepared["kept"]; !ok {
		t.Error("a statement never dropped lost its record")
	}
	r.send(1, &pgproto3.Query{String: "DISCARD ALL"})
	r.send(1, &pgproto3.Sync{})
	if got := len(e.onlySession(t).stmts.prepared); got != 0 {
		t.Errorf("%d statement records after DISCARD ALL", got)
	}
}
