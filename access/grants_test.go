package access

import (
	"context"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/identity"
)

// newIdentityTestService is newTestService with an identity service, for
// the methods that check their caller, and principal makes that caller: a
// user in store, enrolled and with MFA fresh at the clock's time.
func newIdentityTestService(t *testing.T, clk *clock) (*Service, airlock.Store, *audit.Log, func(id, name string, groups ...string) *identity.Principal) {
	svc, store, al := newTestService(t, clk)
	svc.ident = identity.New(identity.Deps{Store: store, Audit: al, Now: clk.now}, identity.Config{})
	principal := func(id, name string, groups ...string) *identity.Principal {
		now := clk.now()
		u := &airlock.User{ID: id, Name: name, Groups: groups, CreatedAt: now, UpdatedAt: now}
		if err := store.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		return &identity.Principal{User: u, Session: &airlock.LoginSession{ID: "ls_" + id, UserID: id, MFAAt: now, MFAMethod: identity.MethodTOTP},
			Source: "10.0.0.1:4242"}
	}
	return svc, store, al, principal
}

// TestRequestGrant pins the console's read of a request's grant: shown as
// ListGrants shows it (time left, expired once it ended) to those who may
// see the request, and to nobody else.
func TestRequestGrant(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, _, principal := newIdentityTestService(t, clk)
	alice, lead, eve := principal("usr_a", "alice", "devs"), principal("usr_l", "lee", "leads"), principal("usr_e", "eve", "devs")
	for _, id := range []string{"req_1", "req_2"} {
		if err := store.CreateRequest(ctx, &airlock.AccessRequest{ID: id, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: "read",
			Duration: time.Hour, State: airlock.RequestPending, RequiredApprovals: 1, ApproverGroups: []string{"leads"}, CreatedAt: t0,
			ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ApproveRequest(ctx, "req_1", &airlock.Grant{ID: "gr_1", RequestID: "req_1", UserID: "usr_a", UserName: "alice", Resource: "prod-db",
		Access: "read", StartsAt: t0, EndsAt: t0.Add(time.Hour), State: airlock.GrantActive, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	for _, p := range []*identity.Principal{alice, lead} {
		g, err := svc.RequestGrant(ctx, p, "req_1")
		if err != nil || g == nil || g.ID != "gr_1" || !g.Active || g.SecondsLeft != 3600 || g.State != airlock.GrantActive {
			t.Fatalf("%s: %+v, %v", p.User.Name, g, err)
		}
	}
	if g, err := svc.RequestGrant(ctx, eve, "req_1"); g != nil || !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("a stranger: %+v, %v; want ENOTFOUND", g, err)
	}
	if g, err := svc.RequestGrant(ctx, alice, "req_2"); g != nil || err != nil {
		t.Fatalf("no grant yet: %+v, %v", g, err)
	}
	clk.mu.Lock()
	clk.t = t0.Add(2 * time.Hour)
	clk.mu.Unlock()
	if g, err := svc.RequestGrant(ctx, alice, "req_1"); err != nil || g.Active || g.SecondsLeft != 0 || g.State != airlock.GrantExpired {
		t.Fatalf("ended: %+v, %v", g, err)
	}
}
