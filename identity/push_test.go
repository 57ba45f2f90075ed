package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// pushUser returns a service, its push factor, alice's device principal
// (signed in with a passkey) and the device token.
func pushUser(t *testing.T, clk *clock) (*Service, *Push, *Principal, string, airlock.Store) {
	t.Helper()
	svc, store := newService(t, clk)
	ctx := context.Background()
	u, err := svc.createUser(ctx, airlock.SystemActor, "alice", "correct horse battery", nil, "", "user.created")
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p := &Principal{User: u, Session: res.Session, Source: "127.0.0.1:1"}
	push := svc.NewPush(PushConfig{})
	// A TOTP-verified session may not register a push device.
	if err := svc.markFresh(ctx, p, MethodTOTP, "mfa.verified"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := push.RegisterDevice(ctx, p, "laptop"); !airlock.IsCode(err, airlock.EMFAREQUIRED) {
		t.Fatalf("register after TOTP: %v", err)
	}
	// As if signed in with a passkey.
	if err := svc.markFresh(ctx, p, MethodWebAuthn, "mfa.verified"); err != nil {
		t.Fatal(err)
	}
	f, tok, err := push.RegisterDevice(ctx, p, "laptop")
	if err != nil || f.Kind != airlock.FactorPush || tok == "" {
		t.Fatalf("register: %v %+v", err, f)
	}
	return svc, push, p, tok, store
}

func countEvents(t *testing.T, store airlock.Store, action string) int {
	t.Helper()
	evs, err := store.ListEvents(context.Background(), airlock.EventFilter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestPushNumberMatching(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, push, dev, tok, store := pushUser(t, clk)
	ctx := context.Background()

	login := func() string {
		t.Helper()
		res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "10.0.0.9:2")
		if err != nil || res.Challenge == "" {
			t.Fatalf("login: %v", err)
		}
		found := false
		for _, m := range res.Methods {
			found = found || m == airlock.FactorPush
		}
		if !found {
			t.Fatalf("push not offered: %v", res.Methods)
		}
		return res.Challenge
	}
	events, cancel := push.Subscribe(dev.User.ID)
	defer cancel()

	t.Run("fail/wrong-number", func(t *testing.T) {
		chal := login()
		c, err := push.BeginLogin(ctx, chal, "10.0.0.9:2")
		if err != nil {
			t.Fatal(err)
		}
		got := <-events
		if got.ID != c.ID || len(got.Choices) != 3 {
			t.Fatalf("device got %+v", got)
		}
		wrong := got.Choices[0]
		if wrong == c.Number {
			wrong = got.Choices[1]
		}
		if err := push.Answer(ctx, dev, tok, c.ID, wrong); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("wrong number: %v", err)
		}
		// No retry on the same push, and no login from it.
		if err := push.Answer(ctx, dev, tok, c.ID, c.Number); !airlock.IsCode(err, airlock.EINVALID) {
			t.Fatalf("answer after deny: %v", err)
		}
		if _, err := push.LoginPush(ctx, chal, c.ID, "10.0.0.9:2"); err == nil {
			t.Fatal("login with a denied push")
		}
		if n := countEvents(t, store, "mfa.push_denied"); n != 1 {
			t.Fatalf("mfa.push_denied events: %d", n)
		}
	})

	t.Run("ok/right-number", func(t *testing.T) {
		chal := login()
		c, err := push.BeginLogin(ctx, chal, "10.0.0.9:2")
		if err != nil {
			t.Fatal(err)
		}
		<-events
		if err := push.Answer(ctx, dev, "dev_not-this-browser", c.ID, c.Number); !airlock.IsCode(err, airlock.ENOTFOUND) {
			t.Fatalf("answer from an unregistered browser: %v", err)
		}
		if err := push.Answer(ctx, dev, tok, c.ID, c.Number); err != nil {
			t.Fatal(err)
		}
		res, err := push.LoginPush(ctx, chal, c.ID, "10.0.0.9:2")
		if err != nil || res.Token == "" || res.Session.MFAMethod != MethodPush {
			t.Fatalf("login by push: %v %+v", err, res)
		}
		// Single use.
		if _, err := push.LoginPush(ctx, login(), c.ID, "10.0.0.9:2"); err == nil {
			t.Fatal("a push approval was used twice")
		}
		if n := countEvents(t, store, "mfa.push_approved"); n != 1 {
			t.Fatalf("mfa.push_approved events: %d", n)
		}
	})

	t.Run("fail/timeout", func(t *testing.T) {
		chal := login()
		c, err := push.BeginLogin(ctx, chal, "10.0.0.9:2")
		if err != nil {
			t.Fatal(err)
		}
		<-events
		clk.add(61 * time.Second)
		for range 2 {
			if st, _, err := push.Status(ctx, c.ID); err != nil || st != PushExpired {
				t.Fatalf("status after 61 s: %s %v", st, err)
			}
		}
		if err := push.Answer(ctx, dev, tok, c.ID, c.Number); !airlock.IsCode(err, airlock.EINVALID) {
			t.Fatalf("late answer: %v", err)
		}
		if n := countEvents(t, store, "mfa.push_timeout"); n != 1 {
			t.Fatalf("mfa.push_timeout events: %d, want exactly 1", n)
		}
	})

	t.Run("fail/rate-limit", func(t *testing.T) {
		// Three pushes went out within five minutes: the fourth is refused.
		if _, err := push.BeginLogin(ctx, login(), "10.0.0.9:2"); !airlock.IsCode(err, airlock.ELOCKED) {
			t.Fatalf("fourth push: %v", err)
		}
		if n := countEvents(t, store, "mfa.push_rate_limited"); n != 1 {
			t.Fatalf("mfa.push_rate_limited events: %d", n)
		}
		clk.add(5 * time.Minute)
		if _, err := push.BeginLogin(ctx, login(), "10.0.0.9:2"); err != nil {
			t.Fatalf("push after the window: %v", err)
		}
		<-events
	})

	t.Run("ok/step-up", func(t *testing.T) {
		clk.add(5 * time.Minute)
		c, err := push.BeginStepUp(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		<-events
		if err := push.VerifyPush(ctx, dev, c.ID); err == nil {
			t.Fatal("step-up before the device answered")
		}
		if st, err := push.StepUpStatus(ctx, dev, c.ID); err != nil || st != PushPending {
			t.Fatalf("own step-up status = %q, %v", st, err)
		}
		// Another login session (another user's, or this user's other
		// one) can neither read nor expire this challenge.
		other := &Principal{User: dev.User, Session: &airlock.LoginSession{ID: "ls_other", UserID: dev.User.ID}}
		if _, err := push.StepUpStatus(ctx, other, c.ID); !airlock.IsCode(err, airlock.ENOTFOUND) {
			t.Fatalf("another session's status of this push: %v, want ENOTFOUND", err)
		}
		if err := push.Answer(ctx, dev, tok, c.ID, c.Number); err != nil {
			t.Fatal(err)
		}
		if err := push.VerifyPush(ctx, dev, c.ID); err != nil {
			t.Fatal(err)
		}
		if dev.Session.MFAMethod != MethodPush || !dev.Session.MFAAt.Equal(clk.now().UTC()) {
			t.Fatalf("session after push step-up: %+v", dev.Session)
		}
	})
}

func TestWebLogin(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, _, p, _, _ := pushUser(t, clk)
	ctx := context.Background()
	code, poll, _, err := svc.StartWebLogin(ctx, "10.0.0.7:5")
	if err != nil || NormalizeUserCode(code) != code {
		t.Fatalf("start: %q %v", code, err)
	}
	if _, err := svc.PollWebLogin(ctx, poll, "10.0.0.7:5"); !errors.Is(err, ErrWebLoginPending) {
		t.Fatalf("poll before approval: %v", err)
	}
	if _, err := svc.PollWebLogin(ctx, "wl_guess", "10.0.0.7:5"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("poll with a wrong token: %v", err)
	}
	if src, err := svc.WebLoginSource(ctx, code); err != nil || src != "10.0.0.7:5" {
		t.Fatalf("source: %q %v", src, err)
	}
	// Stale MFA in the browser: approval needs a fresh factor.
	clk.add(6 * time.Minute)
	if err := svc.ApproveWebLogin(ctx, p, code); !airlock.IsCode(err, airlock.EMFAREQUIRED) {
		t.Fatalf("approve with stale MFA: %v", err)
	}
	if err := svc.markFresh(ctx, p, MethodWebAuthn, "mfa.verified"); err != nil {
		t.Fatal(err)
	}
	if err := svc.ApproveWebLogin(ctx, p, "  "+code[:4]+code[5:]+" "); err != nil { // typed without the dash
		t.Fatal(err)
	}
	res, err := svc.PollWebLogin(ctx, poll, "10.0.0.7:5")
	if err != nil || res.Token == "" || res.User.Name != "alice" || res.Session.MFAMethod != MethodWebAuthn {
		t.Fatalf("poll after approval: %v %+v", err, res)
	}
	if _, err := svc.PollWebLogin(ctx, poll, "10.0.0.7:5"); err == nil {
		t.Fatal("the CLI login was handed out twice")
	}
	// Expiry.
	code, poll, _, _ = svc.StartWebLogin(ctx, "10.0.0.7:5")
	clk.add(WebLoginTTL + time.Second)
	if err := svc.ApproveWebLogin(ctx, p, code); err == nil {
		t.Fatal("approved an expired browser login")
	}
	if _, err := svc.PollWebLogin(ctx, poll, "10.0.0.7:5"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("poll after expiry: %v", err)
	}
}

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH", "abcd efgh", "", "----", "ABCD-EFGH-IJ", "ü1234567"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeUserCode(s)
		if n == "" {
			return
		}
		if len(n) != 9 || n[4] != '-' || NormalizeUserCode(n) != n {
			t.Fatalf("NormalizeUserCode(%q) = %q", s, n)
		}
	})
}

// TestPushLoginIsASecondStep: a login by push is counted and reset like
// any second step — a user who always logs in by push is never
// throttled for it — and its refusal is an event.
func TestPushLoginIsASecondStep(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, push, dev, tok, store := pushUser(t, clk)
	ctx := context.Background()
	events, cancel := push.Subscribe(dev.User.ID)
	defer cancel()
	for i := range 8 {
		clk.add(5 * time.Minute) // past the push rate limit
		res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "10.0.0.9:2")
		if err != nil {
			t.Fatalf("password step of push login %d: %v", i+1, err)
		}
		c, err := push.BeginLogin(ctx, res.Challenge, "10.0.0.9:2")
		if err != nil {
			t.Fatalf("push %d: %v", i+1, err)
		}
		<-events
		if err := push.Answer(ctx, dev, tok, c.ID, c.Number); err != nil {
			t.Fatal(err)
		}
		if _, err := push.LoginPush(ctx, res.Challenge, c.ID, "10.0.0.9:2"); err != nil {
			t.Fatalf("push login %d: %v", i+1, err)
		}
	}
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "10.0.0.9:2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push.LoginPush(ctx, res.Challenge, "psh_none", "10.0.0.9:2"); err == nil {
		t.Fatal("login with no approved push")
	}
	if n := countEvents(t, store, "login.refused"); n != 1 {
		t.Fatalf("login.refused events after a refused push login: %d, want 1", n)
	}
}
