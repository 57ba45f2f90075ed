package airlock_test

import (
	"context"
	"testing"

	"github.com/airlockhq/airlock"
)

// fakeGateway records the Close calls it receives.
type fakeGateway struct {
	calls []string
	held  bool
}

func (g *fakeGateway) CloseGrant(id string, r airlock.EndReason) int {
	g.calls = append(g.calls, "grant "+id+" "+string(r))
	return 2
}

func (g *fakeGateway) CloseUser(id string, r airlock.EndReason) int {
	g.calls = append(g.calls, "user "+id+" "+string(r))
	return 3
}

func (g *fakeGateway) CloseSession(id string, r airlock.EndReason) bool {
	g.calls = append(g.calls, "session "+id+" "+string(r))
	return g.held
}

func (g *fakeGateway) ActiveSessions() []airlock.Session {
	if !g.held {
		return nil
	}
	return []airlock.Session{{ID: "se_live"}}
}

func (g *fakeGateway) Shutdown(context.Context) error { return nil }

var _ airlock.Gateway = (*fakeGateway)(nil)

// TestRevocationApply: each kind of revocation reaches the right Close
// method with its reason, the narrowest target wins, and an empty one
// closes nothing.
func TestRevocationApply(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    airlock.Revocation
		held bool
		want string
		n    int
	}{
		{"grant", airlock.Revocation{GrantID: "gr_1", Reason: airlock.EndGrantRevoked, By: "bob"}, false, "grant gr_1 grant_revoked", 2},
		{"grant/expired", airlock.Revocation{GrantID: "gr_1", Reason: airlock.EndGrantExpired, By: "system"}, false, "grant gr_1 grant_expired", 2},
		{"user", airlock.Revocation{UserID: "us_1", Reason: airlock.EndUserDisabled}, false, "user us_1 user_disabled", 3},
		{"session/held", airlock.Revocation{SessionID: "se_1", Reason: airlock.EndSessionKilled}, true, "session se_1 session_killed", 1},
		{"session/elsewhere", airlock.Revocation{SessionID: "se_1", Reason: airlock.EndSessionKilled}, false, "session se_1 session_killed", 0},
		{"narrowest/session", airlock.Revocation{SessionID: "se_1", GrantID: "gr_1", UserID: "us_1", Reason: airlock.EndSessionKilled}, true, "session se_1 session_killed", 1},
		{"narrowest/grant", airlock.Revocation{GrantID: "gr_1", UserID: "us_1", Reason: airlock.EndGrantRevoked}, false, "grant gr_1 grant_revoked", 2},
		{"node/own-sessions", airlock.Revocation{Node: "me", Reason: airlock.EndAuditUnavailable}, true, "session se_live audit_unavailable", 1},
		{"empty", airlock.Revocation{Reason: airlock.EndGrantRevoked}, false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGateway{held: tc.held}
			n := tc.r.Apply(g)
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if n != tc.n || len(g.calls) != len(want) || (len(want) == 1 && g.calls[0] != want[0]) {
				t.Fatalf("Apply(%+v) = %d, calls %q; want %d, calls %q", tc.r, n, g.calls, tc.n, want)
			}
			if tc.r.Empty() != (tc.want == "") {
				t.Fatalf("Empty() = %v", tc.r.Empty())
			}
		})
	}
}
