package identity

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// TestLoginStepRefusalsAudited: every refusal of the second login step is
// an event with its reason (invariant 11), and a made-up login step is
// audited once per source and window so that garbage cannot flood the log.
func TestLoginStepRefusalsAudited(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	code := withTOTP(t, svc, clk, "admin")
	step := func() string {
		t.Helper()
		res, err := svc.Login(ctx, "admin", password, FactorInput{}, ownerAddr)
		if err != nil || res.Challenge == "" {
			t.Fatalf("password step: %v", err)
		}
		return res.Challenge
	}
	refusals := func() []string {
		t.Helper()
		evs, err := store.ListEvents(ctx, airlock.EventFilter{Action: "login.refused"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			var d struct{ Why string }
			json.Unmarshal(e.Details, &d)
			if e.Outcome != airlock.OutcomeDenied {
				t.Errorf("login.refused with outcome %q", e.Outcome)
			}
			out = append(out, d.Why)
		}
		return out
	}

	// No factor given.
	if _, err := svc.LoginFactor(ctx, step(), FactorInput{}, ownerAddr); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("no factor: %v", err)
	}
	// A login step used twice: the second use is refused.
	ch := step()
	if _, err := svc.LoginFactor(ctx, ch, FactorInput{OTP: code()}, ownerAddr); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := svc.LoginFactor(ctx, ch, FactorInput{OTP: code()}, ownerAddr); err == nil {
		t.Fatal("a login step opened two sessions")
	}
	// Made-up steps from one address: refused, audited once.
	for range 20 {
		if _, err := svc.LoginFactor(ctx, "made-up", FactorInput{OTP: "123456"}, "203.0.113.7:9"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("made-up step: %v", err)
		}
	}
	// A disabled user's pending login step.
	ch = step()
	u, err := store.UserByName(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LoginFactor(ctx, ch, FactorInput{OTP: code()}, ownerAddr); err == nil {
		t.Fatal("a disabled user logged in")
	}

	got := refusals()
	// The reused step and the 20 made-up ones come from two addresses:
	// one event each.
	want := []string{"a second factor is required: pass --otp CODE", "unknown or expired login step", "unknown or expired login step", "user disabled"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("login.refused reasons = %q, want %q", got, want)
	}
}
