package access

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

const holdTestPolicy = `version: 1
rules:
  - name: devs-write-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// The hold state machine: pending → approved | denied | expired, each
// transition once across concurrent deciders; the requester and
// non-approvers cannot decide; a decision is taken by one wait only.
func TestHoldStateMachine(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, al, principal := newIdentityTestService(t, clk)
	alice, lee, lou, eve := principal("usr_a", "alice", "devs"), principal("usr_l", "lee", "leads"), principal("usr_o", "lou", "leads"),
		principal("usr_e", "eve", "devs")
	if err := store.CreateResource(ctx, &airlock.Resource{ID: "res_1", Name: "prod-db", Kind: airlock.KindPostgres, Addr: "127.0.0.1:5432",
		Credentials: map[string][]byte{"write": []byte("sealed")}, Labels: map[string]string{}, Source: "api", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	savePolicy(t, store, holdTestPolicy)
	if err := svc.reloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	hold := func() *StatementHold {
		t.Helper()
		h, err := svc.HoldStatement(ctx, HoldInput{UserID: "usr_a", UserName: "alice", GrantID: "gr_1", SessionID: "ses_1", Resource: "prod-db",
			Access: "write", Rule: "wipe", Statement: "DELETE FROM orders", Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	h := hold()
	if h.State != HoldPending || h.ApproverGroups[0] != "leads" || !h.ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("hold %+v", h)
	}
	// Who sees it: the requester and approvers, nobody else.
	if l, _ := svc.ListHolds(ctx, lee); len(l) != 1 {
		t.Fatalf("lee lists %d", len(l))
	}
	if l, _ := svc.ListHolds(ctx, alice); len(l) != 1 {
		t.Fatalf("alice lists %d", len(l))
	}
	if l, _ := svc.ListHolds(ctx, eve); len(l) != 0 {
		t.Fatalf("eve lists %d", len(l))
	}
	if _, err := svc.GetHold(ctx, eve, h.ID); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("eve reads it: %v", err)
	}
	// The requester cannot decide their own statement; eve is no approver.
	if _, err := svc.DecideHold(ctx, alice, h.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EFORBIDDEN) {
		t.Fatalf("own approval: %v", err)
	}
	if _, err := svc.DecideHold(ctx, eve, h.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EFORBIDDEN) {
		t.Fatalf("non-approver: %v", err)
	}
	// Stale MFA is refused.
	stale := *lee
	ls := *lee.Session
	ls.MFAAt = t0.Add(-time.Hour)
	stale.Session = &ls
	if _, err := svc.DecideHold(ctx, &stale, h.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EMFAREQUIRED) {
		t.Fatalf("stale MFA: %v", err)
	}
	// Two approvers at once: exactly one decision counts.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*identity.Principal{lee, lou} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc.DecideHold(ctx, p, h.ID, ReviewInput{Decision: airlock.DecisionApprove})
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent approvals: %v / %v", errs[0], errs[1])
	}
	d := svc.WaitHold(ctx, h.ID, time.Millisecond)
	if d.State != HoldApproved || (d.By != "lee" && d.By != "lou") || d.MFAMethod != "totp" {
		t.Fatalf("decision %+v", d)
	}
	// A decision is used once: it cannot be replayed, nor decided again.
	if _, err := svc.DecideHold(ctx, lee, h.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("second approval: %v", err)
	}

	// Denied.
	h2 := hold()
	if _, err := svc.DecideHold(ctx, lee, h2.ID, ReviewInput{Decision: airlock.DecisionDeny, Comment: "not now"}); err != nil {
		t.Fatal(err)
	}
	if d := svc.WaitHold(ctx, h2.ID, time.Millisecond); d.State != HoldDenied || d.Comment != "not now" {
		t.Fatalf("denied: %+v", d)
	}

	// Expired: the wait takes the pending key, so a late approval fails.
	h3 := hold()
	clk.mu.Lock()
	clk.t = clk.t.Add(61 * time.Second)
	clk.mu.Unlock()
	if d := svc.WaitHold(ctx, h3.ID, time.Millisecond); d.State != HoldExpired {
		t.Fatalf("expired: %+v", d)
	}
	if _, err := svc.DecideHold(ctx, lee, h3.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("approval after expiry: %v", err)
	}
	// An ended session (its wait cancelled) takes the pending key too.
	h4 := hold()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if d := svc.WaitHold(cctx, h4.ID, time.Millisecond); d.State != HoldExpired {
		t.Fatalf("cancelled: %+v", d)
	}
	if _, err := svc.DecideHold(ctx, lee, h4.ID, ReviewInput{Decision: airlock.DecisionApprove}); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("approval after the session ended: %v", err)
	}
	// Not a decision: refused, and the refusal audited like the others.
	if _, err := svc.DecideHold(ctx, lee, h4.ID, ReviewInput{Decision: "maybe"}); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("a decision that is none: %v", err)
	}
	al.Flush()
	if evs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "statement.review_refused"}); !slices.ContainsFunc(evs, func(e airlock.Event) bool {
		return strings.Contains(string(e.Details), `"why":"not a decision"`)
	}) {
		t.Fatal("no statement.review_refused event for a decision that is none")
	}
	evs, err := store.ListEvents(ctx, airlock.EventFilter{Action: "statement.approved"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("statement.approved events: %d %v", len(evs), err)
	}
	refusedEvs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "statement.review_refused"})
	if len(refusedEvs) < 5 {
		t.Fatalf("%d statement.review_refused events, want ≥ 5", len(refusedEvs))
	}
}
