package identity

import (
	"context"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// The audit-read rule: admins and auditors read the log; nobody else,
// whatever their other groups.
func TestRequireAuditReader(t *testing.T) {
	s := &Service{}
	for _, c := range []struct {
		groups []string
		ok     bool
	}{
		{[]string{airlock.GroupAdmins}, true},
		{[]string{airlock.GroupAuditors}, true},
		{[]string{"dev", airlock.GroupAuditors}, true},
		{[]string{airlock.GroupPolicyReaders, "dev"}, false},
		{nil, false},
	} {
		err := s.RequireAuditReader(&Principal{User: &airlock.User{Name: "u", Groups: c.groups}})
		if c.ok != (err == nil) {
			t.Errorf("groups %v: err = %v, want allowed %v", c.groups, err, c.ok)
		}
		if err != nil && (!airlock.IsCode(err, airlock.EFORBIDDEN) || airlock.ErrorMessage(err) != "reading the audit log needs the admins or auditors group") {
			t.Errorf("groups %v: refusal %v", c.groups, err)
		}
	}
}

// VerifyStepUp is the one check of an inline step-up factor: without one
// it does nothing (no guess counted, nothing audited); with one it is
// VerifyMFA, however fresh the session is, and a wrong code is refused.
func TestVerifyStepUp(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	if _, err := svc.createUser(ctx, airlock.SystemActor, "alice", "correct horse battery", nil, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, res.Token, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p.Session.MFAAt, p.Session.MFAMethod = clk.now(), MethodTOTP // fresh
	before, _ := store.ListEvents(ctx, airlock.EventFilter{})
	if err := svc.VerifyStepUp(ctx, p, StepUp{}); err != nil {
		t.Fatalf("no factor: %v", err)
	}
	if after, _ := store.ListEvents(ctx, airlock.EventFilter{}); len(after) != len(before) {
		t.Fatalf("no factor: %d events recorded", len(after)-len(before))
	}
	if err := svc.VerifyStepUp(ctx, p, StepUp{OTP: "000000"}); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("wrong code on a fresh session: %v, want EUNAUTHORIZED", err)
	}
	evs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "mfa.verify_failed"})
	if len(evs) != 1 {
		t.Fatalf("wrong code: %d mfa.verify_failed events, want 1", len(evs))
	}
}
