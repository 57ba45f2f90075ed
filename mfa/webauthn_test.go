package mfa

import (
	"errors"
	"testing"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

var (
	goodRP  = virtualwebauthn.RelyingParty{ID: "airlock.test", Name: "Airlock", Origin: "https://airlock.test"}
	baseCfg = WebAuthnConfig{RPID: "airlock.test", RPDisplayName: "Airlock", RPOrigins: []string{"https://airlock.test"}}
)

type waEnv struct {
	store *memStore
	clock *fakeClock
	wa    *WebAuthn
	user  *airlock.User
}

func newWAEnv(t testing.TB, cfg WebAuthnConfig) *waEnv {
	t.Helper()
	s, c := newMemStore(), newClock()
	w, err := NewWebAuthn(cfg, s, s, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &waEnv{store: s, clock: c, wa: w, user: testUser("frank")}
}

// authenticator is a virtual authenticator with one credential.
type authenticator struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newAuthenticator(u *airlock.User, opts virtualwebauthn.AuthenticatorOptions) *authenticator {
	opts.UserHandle = []byte(u.ID)
	return &authenticator{auth: virtualwebauthn.NewAuthenticatorWithOptions(opts), cred: testenv.WebAuthnEC2Credential()}
}

func (e *waEnv) register(t testing.TB, a *authenticator, rp virtualwebauthn.RelyingParty) (*airlock.Factor, error) {
	t.Helper()
	id, opts, err := e.wa.BeginRegistration(t.Context(), e.user, "yubikey")
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		t.Fatalf("browser cannot parse creation options: %v", err)
	}
	resp := virtualwebauthn.CreateAttestationResponse(rp, a.auth, a.cred, *ao)
	f, err := e.wa.FinishRegistration(t.Context(), e.user, id, []byte(resp))
	if err == nil {
		a.auth.AddCredential(a.cred)
	}
	return f, err
}

// assert begins a login and returns the ceremony and the authenticator's
// response signed with sign count counter.
func (e *waEnv) assert(t testing.TB, a *authenticator, rp virtualwebauthn.RelyingParty, counter uint32) (string, []byte) {
	t.Helper()
	id, opts, err := e.wa.BeginLogin(t.Context(), e.user)
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAssertionOptions(string(opts))
	if err != nil {
		t.Fatalf("browser cannot parse request options: %v", err)
	}
	a.cred.Counter = counter
	return id, []byte(virtualwebauthn.CreateAssertionResponse(rp, a.auth, a.cred, *ao))
}

func wantWAFail(t *testing.T, err error, reason error) {
	t.Helper()
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) || airlock.ErrorMessage(err) != MsgWebAuthnFailed || !errors.Is(err, reason) {
		t.Fatalf("err = %v, want EUNAUTHORIZED %q wrapping %v", err, MsgWebAuthnFailed, reason)
	}
}

func TestWebAuthnRegisterAndLogin(t *testing.T) {
	e := newWAEnv(t, baseCfg)
	a := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	f, err := e.register(t, a, goodRP)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if f.Kind != airlock.FactorWebAuthn || f.Status != airlock.FactorActive || f.Name != "yubikey" || f.UserID != e.user.ID {
		t.Fatalf("factor %+v", f)
	}
	ctx := t.Context()

	id, resp := e.assert(t, a, goodRP, 1)
	got, err := e.wa.FinishLogin(ctx, e.user, id, resp)
	if err != nil || got != f.ID {
		t.Fatalf("FinishLogin = %q, %v", got, err)
	}
	if sf, _ := e.store.FactorByID(ctx, f.ID); sf.Counter != 1 || sf.LastUsedAt.IsZero() {
		t.Fatalf("stored counter %d, last used %v", sf.Counter, sf.LastUsedAt)
	}

	t.Run("fail/replayed-assertion-same-ceremony", func(t *testing.T) {
		_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
		wantWAFail(t, err, ErrCeremony)
	})
	t.Run("fail/replayed-assertion-new-ceremony", func(t *testing.T) {
		id2, _, err := e.wa.BeginLogin(ctx, e.user)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.wa.FinishLogin(ctx, e.user, id2, resp)
		wantWAFail(t, err, ErrAssertion)
	})
	t.Run("fail/wrong-origin", func(t *testing.T) {
		rp := goodRP
		rp.Origin = "https://evil.test"
		id, resp := e.assert(t, a, rp, 10)
		_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
		wantWAFail(t, err, ErrAssertion)
	})
	t.Run("fail/wrong-rp-id", func(t *testing.T) {
		rp := goodRP
		rp.ID = "evil.test"
		id, resp := e.assert(t, a, rp, 11)
		_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
		wantWAFail(t, err, ErrAssertion)
	})
	t.Run("fail/other-users-ceremony", func(t *testing.T) {
		id, resp := e.assert(t, a, goodRP, 12)
		_, err := e.wa.FinishLogin(ctx, testUser("mallory"), id, resp)
		wantWAFail(t, err, ErrCeremony)
	})
	t.Run("fail/ceremony-expired", func(t *testing.T) {
		id, resp := e.assert(t, a, goodRP, 13)
		e.clock.Add(CeremonyTTL)
		_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
		wantWAFail(t, err, ErrCeremony)
	})
	t.Run("fail/sign-count-regression", func(t *testing.T) {
		id, resp := e.assert(t, a, goodRP, 20)
		if _, err := e.wa.FinishLogin(ctx, e.user, id, resp); err != nil {
			t.Fatalf("count 20: %v", err)
		}
		for _, c := range []uint32{20, 5} {
			id, resp := e.assert(t, a, goodRP, c)
			_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
			wantWAFail(t, err, ErrClonedAuthenticator)
			if Reason(err) != "cloned_authenticator" {
				t.Fatalf("Reason = %q", Reason(err))
			}
		}
		if sf, _ := e.store.FactorByID(ctx, f.ID); sf.Counter != 20 {
			t.Fatalf("counter moved to %d after regression", sf.Counter)
		}
	})
	t.Run("fail/wrong-key-same-credential-id", func(t *testing.T) {
		forged := &authenticator{auth: a.auth, cred: testenv.WebAuthnEC2Credential()}
		forged.cred.ID = a.cred.ID
		id, resp := e.assert(t, forged, goodRP, 100)
		_, err := e.wa.FinishLogin(ctx, e.user, id, resp)
		wantWAFail(t, err, ErrAssertion)
	})
	t.Run("fail/duplicate-registration", func(t *testing.T) {
		_, err := e.register(t, a, goodRP)
		if !airlock.IsCode(err, airlock.ECONFLICT) {
			t.Fatalf("same credential registered twice: %v", err)
		}
	})
}

func TestWebAuthnRegistrationRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		rp   virtualwebauthn.RelyingParty
	}{
		{"wrong-origin", virtualwebauthn.RelyingParty{ID: "airlock.test", Name: "x", Origin: "https://airlock.test.evil.test"}},
		{"wrong-rp-id", virtualwebauthn.RelyingParty{ID: "evil.test", Name: "x", Origin: "https://airlock.test"}},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			e := newWAEnv(t, baseCfg)
			_, err := e.register(t, newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{}), tc.rp)
			if !airlock.IsCode(err, airlock.EINVALID) || !errors.Is(err, ErrAssertion) {
				t.Fatalf("err = %v, want EINVALID wrapping ErrAssertion", err)
			}
			if fs, _ := e.store.ListFactors(t.Context(), e.user.ID); len(fs) != 0 {
				t.Fatal("factor stored despite refusal")
			}
		})
	}
	t.Run("fail/ceremony-reused", func(t *testing.T) {
		e := newWAEnv(t, baseCfg)
		id, opts, err := e.wa.BeginRegistration(t.Context(), e.user, "")
		if err != nil {
			t.Fatal(err)
		}
		ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts))
		a := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
		resp := []byte(virtualwebauthn.CreateAttestationResponse(goodRP, a.auth, a.cred, *ao))
		if _, err := e.wa.FinishRegistration(t.Context(), e.user, id, resp); err != nil {
			t.Fatal(err)
		}
		if _, err := e.wa.FinishRegistration(t.Context(), e.user, id, resp); !errors.Is(err, ErrCeremony) {
			t.Fatalf("reused registration ceremony: %v", err)
		}
	})
}

func TestWebAuthnUserVerification(t *testing.T) {
	cfg := baseCfg
	cfg.RequireUserVerification = true
	e := newWAEnv(t, cfg)
	noUV := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{UserNotVerified: true})
	if _, err := e.register(t, noUV, goodRP); !airlock.IsCode(err, airlock.EFORBIDDEN) || !errors.Is(err, ErrPolicy) {
		t.Fatalf("authenticator without UV while UV is required: %v, want EFORBIDDEN wrapping ErrPolicy", err)
	}
	if fs, _ := e.store.ListFactors(t.Context(), e.user.ID); len(fs) != 0 {
		t.Fatal("factor stored despite refusal")
	}
	withUV := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	if _, err := e.register(t, withUV, goodRP); err != nil {
		t.Fatalf("UV authenticator: %v", err)
	}
	id, resp := e.assert(t, withUV, goodRP, 1)
	if _, err := e.wa.FinishLogin(t.Context(), e.user, id, resp); err != nil {
		t.Fatalf("login with UV: %v", err)
	}
	// The same key answering without UV (e.g. PIN skipped) is refused.
	withUV.auth.Options.UserNotVerified = true
	id, resp = e.assert(t, withUV, goodRP, 2)
	_, err := e.wa.FinishLogin(t.Context(), e.user, id, resp)
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) || airlock.ErrorMessage(err) != MsgWebAuthnFailed {
		t.Fatalf("login without UV: %v", err)
	}
	t.Logf("no-UV login refused: %v", err)

	// Without the requirement, a presence-only key is fine.
	e2 := newWAEnv(t, baseCfg)
	a := newAuthenticator(e2.user, virtualwebauthn.AuthenticatorOptions{UserNotVerified: true})
	if _, err := e2.register(t, a, goodRP); err != nil {
		t.Fatalf("UV not required: %v", err)
	}
	id, resp = e2.assert(t, a, goodRP, 1)
	if _, err := e2.wa.FinishLogin(t.Context(), e2.user, id, resp); err != nil {
		t.Fatalf("UV not required, login: %v", err)
	}
}

func TestWebAuthnAAGUIDAllowlist(t *testing.T) {
	allowed := uuid.New()
	cfg := baseCfg
	cfg.AllowedAAGUIDs = []string{allowed.String()}
	e := newWAEnv(t, cfg)

	other := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	_, err := e.register(t, other, goodRP)
	if !airlock.IsCode(err, airlock.EFORBIDDEN) || !errors.Is(err, ErrPolicy) {
		t.Fatalf("other AAGUID: %v, want EFORBIDDEN wrapping ErrPolicy", err)
	}
	zero := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	zero.auth.Aaguid = [16]byte{}
	if _, err := e.register(t, zero, goodRP); !errors.Is(err, ErrPolicy) {
		t.Fatalf("zero AAGUID: %v, want ErrPolicy", err)
	}
	good := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	good.auth.Aaguid = allowed
	if _, err := e.register(t, good, goodRP); err != nil {
		t.Fatalf("allowed AAGUID: %v", err)
	}
	if _, err := NewWebAuthn(WebAuthnConfig{RPID: "a.test", RPOrigins: []string{"https://a.test"}, AllowedAAGUIDs: []string{"nope"}}, e.store, e.store, nil); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("bad AAGUID config: %v", err)
	}
}

func TestWebAuthnZeroCounterAuthenticator(t *testing.T) {
	e := newWAEnv(t, baseCfg)
	a := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true})
	f, err := e.register(t, a, goodRP)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, resp := e.assert(t, a, goodRP, 0)
		if got, err := e.wa.FinishLogin(t.Context(), e.user, id, resp); err != nil || got != f.ID {
			t.Fatalf("passkey without counter: %q, %v", got, err)
		}
	}
	id, resp := e.assert(t, a, goodRP, 0)
	if _, err := e.wa.FinishLogin(t.Context(), e.user, id, resp); err != nil {
		t.Fatal(err)
	}
	_, err = e.wa.FinishLogin(t.Context(), e.user, id, resp)
	wantWAFail(t, err, ErrCeremony)
}

func TestWebAuthnBeginLoginWithoutCredential(t *testing.T) {
	e := newWAEnv(t, baseCfg)
	_, _, err := e.wa.BeginLogin(t.Context(), e.user)
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) || !errors.Is(err, ErrNoFactor) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzFinishLogin(f *testing.F) {
	e := newWAEnv(f, baseCfg)
	a := newAuthenticator(e.user, virtualwebauthn.AuthenticatorOptions{})
	if _, err := e.register(f, a, goodRP); err != nil {
		f.Fatal(err)
	}
	_, valid := e.assert(f, a, goodRP, 1) // for another ceremony: must fail
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{}}`))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, resp []byte) {
		id, _, err := e.wa.BeginLogin(t.Context(), e.user)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.wa.FinishLogin(t.Context(), e.user, id, resp)
		if err == nil {
			t.Fatalf("arbitrary response accepted: %q", resp)
		}
		if c := airlock.ErrorCode(err); c != airlock.EUNAUTHORIZED && c != airlock.ETOOLARGE {
			t.Fatalf("code %s for %q", c, resp)
		}
	})
}
