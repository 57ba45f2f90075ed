package mfa

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sqlite"
)

// TestFactorsOnSQLite runs every factor against the real SQLite store, so
// the single-use guarantees rest on the store's AdvanceFactorCounter and the
// ceremony state on its KV table, not on the in-memory fake.
func TestFactorsOnSQLite(t *testing.T) {
	// A store that hangs fails this test within a minute instead of
	// stalling the package's run.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := newClock()
	u := &airlock.User{ID: airlock.NewID("us"), Name: "grace", CreatedAt: clock.Now(), UpdatedAt: clock.Now()}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}

	t.Run("totp", func(t *testing.T) {
		tp := NewTOTP(db, newKeyring(t), "Airlock", clock.Now)
		f, uri, _, err := tp.Enroll(ctx, u, "phone")
		if err != nil {
			t.Fatal(err)
		}
		sec := secretOf(t, uri)
		code, _ := totp.GenerateCode(sec, clock.Now())
		if err := tp.Confirm(ctx, u.ID, f.ID, code); err != nil {
			t.Fatal(err)
		}
		clock.Add(30 * time.Second)
		code, _ = totp.GenerateCode(sec, clock.Now())
		const n = 8
		var wg sync.WaitGroup
		oks := make(chan bool, n)
		for range n {
			wg.Go(func() {
				_, err := tp.Verify(ctx, u.ID, code)
				if err != nil && Reason(err) != "replayed_code" {
					t.Errorf("Verify: %v", err)
				}
				oks <- err == nil
			})
		}
		wg.Wait()
		close(oks)
		won := 0
		for ok := range oks {
			if ok {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d concurrent verifies of one code succeeded, want 1", won)
		}
	})

	t.Run("recovery", func(t *testing.T) {
		r := NewRecovery(db, clock.Now)
		codes, err := r.Generate(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if left, err := r.Use(ctx, u.ID, codes[0]); err != nil || left != 9 {
			t.Fatalf("Use = %d, %v", left, err)
		}
		_, err = NewRecovery(db, clock.Now).Use(ctx, u.ID, codes[0])
		wantRefused(t, err, ErrReplayedCode)
		if _, err := r.Generate(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		_, err = r.Use(ctx, u.ID, codes[1])
		wantRefused(t, err, ErrInvalidCode)
	})

	t.Run("webauthn", func(t *testing.T) {
		w, err := NewWebAuthn(baseCfg, db, db, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		e := &waEnv{store: nil, clock: clock, wa: w, user: u}
		a := newAuthenticator(u, virtualwebauthn.AuthenticatorOptions{})
		f, err := e.register(t, a, goodRP)
		if err != nil {
			t.Fatal(err)
		}
		id, resp := e.assert(t, a, goodRP, 7)
		if got, err := w.FinishLogin(ctx, u, id, resp); err != nil || got != f.ID {
			t.Fatalf("FinishLogin = %q, %v", got, err)
		}
		_, err = w.FinishLogin(ctx, u, id, resp)
		wantWAFail(t, err, ErrCeremony)
		id, resp = e.assert(t, a, goodRP, 3)
		_, err = w.FinishLogin(ctx, u, id, resp)
		wantWAFail(t, err, ErrClonedAuthenticator)
		if sf, _ := db.FactorByID(ctx, f.ID); sf.Counter != 7 {
			t.Fatalf("stored sign count %d, want 7", sf.Counter)
		}
	})
}
