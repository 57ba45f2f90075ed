package pgproxy

import (
	"testing"

	"github.com/airlockhq/airlock/sqlguard"
)

// A name changed in batches that fail keeps every candidate, merged past
// maxCandidates: a held or touching candidate stays one however many
// changes follow, and one change per name and batch is confirmed.
func TestStatementCandidatesBounded(t *testing.T) {
	st := statements{prepared: map[string]*stmtInfo{}, portals: map[string]*portalInfo{}}
	held := &sqlguard.Verdict{Action: "hold"}
	st.setStmt("n", &stmtInfo{no: 1, hold: held, raw: "DELETE FROM t", touches: true}, true)
	st.sync()
	st.confirm(true, true)
	for b := range 50 {
		for i := range 20 {
			if i%2 == 0 {
				st.setStmt("n", &stmtInfo{closed: true}, true)
			} else {
				st.setStmt("n", &stmtInfo{no: int64(100*b + i)}, true)
			}
		}
		if len(st.changed) != 1 {
			t.Fatalf("batch %d: %d changes of one name", b, len(st.changed))
		}
		st.sync()
		st.confirm(false, false)
	}
	n := 0
	for x := st.prepared["n"]; x != nil; x = x.prev {
		n++
	}
	if n > maxCandidates {
		t.Errorf("%d records under one name (bound %d)", n, maxCandidates)
	}
	found, touches, _, hold, raw := st.prepared["n"].effective(st.batch)
	if !found || !touches || hold != held || raw != "DELETE FROM t" {
		t.Errorf("merged candidates lost the held statement: found=%v touches=%v hold=%v raw=%q", found, touches, hold, raw)
	}
	// A batch that runs makes its change certain.
	st.setStmt("n", &stmtInfo{no: 9999}, true)
	st.sync()
	st.confirm(true, false)
	found, touches, _, hold, _ = st.prepared["n"].effective(st.batch)
	if !found || touches || hold != nil || st.prepared["n"].prev != nil {
		t.Errorf("confirmed change not certain: touches=%v hold=%v", touches, hold)
	}
}

// Portals end with their transaction: a batch that ends idle forgets the
// portal records of it and of the batches before, and keeps later ones.
func TestPortalsEndWithTransaction(t *testing.T) {
	st := statements{prepared: map[string]*stmtInfo{}, portals: map[string]*portalInfo{}}
	st.setPortal("a", &portalInfo{stmt: "s"}, true)
	st.sync() // batch 0
	st.setPortal("b", &portalInfo{stmt: "s"}, true)
	st.setPortal("a", &portalInfo{stmt: "s2", touches: true}, true)
	st.sync()               // batch 1, not settled yet
	st.confirm(false, true) // batch 0 ends idle
	if _, ok := st.portals["b"]; !ok {
		t.Fatal("a portal of a later batch was forgotten")
	}
	if a := st.portals["a"]; a == nil || a.prev != nil || a.stmt != "s2" {
		t.Fatalf("portal a: %+v", a)
	}
	st.confirm(false, true) // batch 1 ends idle
	if len(st.portals) != 0 {
		t.Errorf("%d portal records left after the transaction ended", len(st.portals))
	}
}
