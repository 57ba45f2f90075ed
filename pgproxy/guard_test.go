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
