package pgproxy

import (
	"strconv"
	"testing"

	"github.com/airlockhq/airlock/policy"
)

// The PREPAREs a session remembers are bounded (their names are the
// client's); past the bound an EXECUTE is unknown, and denied.
func TestGuardPreparedBounded(t *testing.T) {
	g := newGuard(&policy.Statements{})
	for i := range maxPrepared + 5 {
		g.decide("PREPARE p" + strconv.Itoa(i) + " AS SELECT 1")
	}
	if len(g.prepared) != maxPrepared {
		t.Fatalf("%d prepared remembered, want %d", len(g.prepared), maxPrepared)
	}
	if v := g.decide("EXECUTE p0"); v.Action != policy.StatementAllow {
		t.Fatalf("EXECUTE of a remembered PREPARE: %+v", v)
	}
	if v := g.decide("EXECUTE p" + strconv.Itoa(maxPrepared+1)); v.Action != policy.StatementDeny || v.Rule != "on_unknown" {
		t.Fatalf("EXECUTE past the bound: %+v", v)
	}
}

// An SQL EXECUTE of a statement the protocol prepared is decided as that
// statement (so a held one is held, even with on_unknown: allow), and a
// held statement the session can no longer remember is denied rather than
// left to run unheld through EXECUTE.
func TestGuardHoldsThroughExecute(t *testing.T) {
	rules := &policy.Statements{OnUnknown: policy.StatementAllow, Rules: []policy.StatementRule{
		{Name: "wipe", Forms: []string{"no_where"}, Action: policy.StatementRequireApproval},
	}}
	g := newGuard(rules)
	if v := g.decideNamed("DELETE FROM t", "x"); v.Action != policy.StatementRequireApproval {
		t.Fatalf("Parse x: %+v", v)
	}
	if v := g.decide("EXECUTE x"); v.Action != policy.StatementRequireApproval || v.Rule != "wipe" {
		t.Fatalf("EXECUTE of a protocol-prepared held statement: %+v", v)
	}
	for i := len(g.prepared); i < maxPrepared; i++ {
		g.decide("PREPARE p" + strconv.Itoa(i) + " AS SELECT 1")
	}
	if v := g.decide("PREPARE late AS DELETE FROM t"); v.Action != policy.StatementDeny {
		t.Fatalf("a held PREPARE past the bound: %+v", v)
	}
	if v := g.decideNamed("DELETE FROM t", "late2"); v.Action != policy.StatementDeny {
		t.Fatalf("a held Parse past the bound: %+v", v)
	}
	// Re-preparing a remembered name is not past the bound.
	if v := g.decideNamed("DELETE FROM t", "x"); v.Action != policy.StatementRequireApproval {
		t.Fatalf("Parse x again: %+v", v)
	}
}

// A name prepared again and again: every text is remembered up to
// maxPreparedAgain, then the name also counts as an unknown statement; a
// held statement is not prepared under it past the bound. The Parse or
// PREPARE itself stays allowed (drivers reuse names).
func TestGuardPreparedAgainBounded(t *testing.T) {
	rules := &policy.Statements{Rules: []policy.StatementRule{
		{Name: "wipe", Forms: []string{"no_where"}, Action: policy.StatementRequireApproval},
	}}
	g := newGuard(rules)
	for i := range maxPreparedAgain {
		if v := g.decideNamed("SELECT "+strconv.Itoa(i), "s"); v.Action != policy.StatementAllow {
			t.Fatalf("Parse %d: %+v", i, v)
		}
	}
	if v := g.decide("EXECUTE s"); v.Action != policy.StatementAllow {
		t.Fatalf("EXECUTE of a name within the bound: %+v", v)
	}
	if v := g.decideNamed("SELECT 99", "s"); v.Action != policy.StatementAllow {
		t.Fatalf("Parse past the bound: %+v", v)
	}
	if v := g.decide("EXECUTE s"); v.Action != policy.StatementDeny || v.Rule != "on_unknown" {
		t.Fatalf("EXECUTE of an overflowed name: %+v", v)
	}
	if v := g.decideNamed("DELETE FROM t", "s"); v.Action != policy.StatementDeny {
		t.Fatalf("a held statement past the bound: %+v", v)
	}
}
