package access

import (
	"context"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

const grantTestPolicy = `version: 1
rules:
  - name: devs-read-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// savePolicy stores yaml as the next policy version, as another replica's
// apply would: the service sees it only by reloading from the store.
func savePolicy(t *testing.T, store airlock.Store, yaml string) {
	t.Helper()
	if err := store.SavePolicy(context.Background(), &airlock.PolicyVersion{Document: encodeFiles(map[string][]byte{"p.yaml": []byte(yaml)}),
		AppliedBy: "admin", AppliedAt: time.Now().UTC(), SHA256: "x"}); err != nil {
		t.Fatal(err)
	}
}

// TestGrantRechecksPolicyInForce pins invariant 1 at grant time: a grant
// is made only if the policy in force when it is created (here: applied on
// another replica after the request) still allows the request; otherwise
// it is refused with grant.refused and the request is left pending.
func TestGrantRechecksPolicyInForce(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, al := newTestService(t, clk)
	if err := store.CreateUser(ctx, &airlock.User{ID: "usr_a", Name: "alice", Groups: []string{"devs"}, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateResource(ctx, &airlock.Resource{ID: "res_1", Name: "prod-db", Kind: airlock.KindPostgres, Addr: "127.0.0.1:5432",
		Credentials: map[string][]byte{"read": []byte("sealed")}, Labels: map[string]string{}, Source: "api", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	newReq := func(id string, d time.Duration) *airlock.AccessRequest {
		r := &airlock.AccessRequest{ID: id, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: "read", Duration: d,
			State: airlock.RequestPending, RequiredApprovals: 1, ApproverGroups: []string{"leads"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := store.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	savePolicy(t, store, grantTestPolicy)
	ok := newReq("req_ok", time.Hour)
	if g, err := svc.grant(ctx, ok, airlock.Actor{ID: "usr_b", Name: "bob"}, "totp", "1 of 1 approvals"); err != nil || g == nil {
		t.Fatalf("grant under the policy that allows it: %v", err)
	}

	for _, tc := range []struct{ name, policy string }{
		{"fail/eligibility-removed", "version: 1\n"},
		{"fail/duration-over-new-max", `version: 1
rules:
  - name: devs-read-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 30m
    approval: {required: 1, groups: [leads]}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			savePolicy(t, store, grantTestPolicy)
			req := newReq("req_"+tc.name[5:], time.Hour)
			savePolicy(t, store, tc.policy)
			g, err := svc.grant(ctx, req, airlock.Actor{ID: "usr_b", Name: "bob"}, "totp", "1 of 1 approvals")
			if g != nil || !airlock.IsCode(err, airlock.EFORBIDDEN) {
				t.Fatalf("grant = %v, %v; want EFORBIDDEN and no grant", g, err)
			}
			if gs, _ := store.ListGrants(ctx, airlock.GrantFilter{UserID: "usr_a"}); len(gs) != 1 {
				t.Fatalf("%d grants; want only the first", len(gs))
			}
			if r, _ := store.RequestByID(ctx, req.ID); r.State != airlock.RequestPending {
				t.Fatalf("request state %s; want it left pending", r.State)
			}
			al.Flush()
			evs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "grant.refused"})
			found := false
			for _, e := range evs {
				if e.RequestID == req.ID && e.Outcome == airlock.OutcomeDenied {
					found = true
				}
			}
			if !found {
				t.Fatalf("no grant.refused event for %s: %+v", req.ID, evs)
			}
			if evs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "grant.activated"}); len(evs) != 1 {
				t.Fatalf("%d grant.activated events; want 1 (no event claims a grant that was not made)", len(evs))
			}
		})
	}
}
