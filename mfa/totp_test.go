package mfa

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
)

// oathtool returns the TOTP code of secret at time at, computed by the
// Debian oathtool binary (an independent RFC 6238 implementation).
func oathtool(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	out, err := exec.Command("oathtool", "--totp", "-b", "-d", "6", "-s", "30s",
		"-N", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func needOathtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("oathtool"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("oathtool not installed (apt-get install oathtool)")
		}
		t.Skip("oathtool not installed; apt-get install oathtool to run the interop test")
	}
}

func secretOf(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	s := u.Query().Get("secret")
	if len(s) != 32 { // 160 bits in base32
		t.Fatalf("secret %d chars, want 32", len(s))
	}
	return s
}

func wantRefused(t *testing.T, err error, reason error) {
	t.Helper()
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) || airlock.ErrorMessage(err) != MsgInvalidCode {
		t.Fatalf("err = %v, want EUNAUTHORIZED %q", err, MsgInvalidCode)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("err = %v, want reason %v", err, reason)
	}
}

type totpEnv struct {
	store *memStore
	clock *fakeClock
	totp  *TOTP
}

func newTOTPEnv(t testing.TB) *totpEnv {
	s, c := newMemStore(), newClock()
	return &totpEnv{store: s, clock: c, totp: NewTOTP(s, newKeyring(t), "Airlock Test", c.Now)}
}

// enroll enrolls and confirms a TOTP factor with an oathtool code and
// returns the factor and its base32 secret.
func (e *totpEnv) enroll(t *testing.T, u *airlock.User) (*airlock.Factor, string) {
	t.Helper()
	f, uri, _, err := e.totp.Enroll(t.Context(), u, "phone")
	if err != nil {
		t.Fatal(err)
	}
	sec := secretOf(t, uri)
	if err := e.totp.Confirm(t.Context(), u.ID, f.ID, oathtool(t, sec, e.clock.Now())); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return f, sec
}

func TestTOTPOathtoolInterop(t *testing.T) {
	needOathtool(t)
	e := newTOTPEnv(t)
	ctx := t.Context()
	alice, bob := testUser("alice"), testUser("bob")

	f, uri, qr, err := e.totp.Enroll(ctx, alice, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != airlock.FactorPending || f.Kind != airlock.FactorTOTP || f.UserID != alice.ID {
		t.Fatalf("enrolled factor %+v", f)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "issuer=Airlock") {
		t.Fatalf("uri %q", uri)
	}
	if !strings.ContainsAny(qr, "▀▄█") {
		t.Fatalf("QR is not half blocks: %q", qr[:min(len(qr), 40)])
	}
	sec := secretOf(t, uri)

	t.Run("secret-sealed-at-rest", func(t *testing.T) {
		stored, err := e.store.FactorByID(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := b32.DecodeString(sec)
		if len(stored.Secret) == 0 || bytes.Contains(stored.Secret, []byte(sec)) || bytes.Contains(stored.Secret, raw) {
			t.Fatal("stored Secret contains the TOTP secret")
		}
		if _, err := e.totp.sealer.Open(stored.Secret, factorAAD("fa_other")); err == nil {
			t.Fatal("sealed secret opens under another factor's AAD")
		}
	})

	t.Run("fail/pending-not-usable", func(t *testing.T) {
		_, err := e.totp.Verify(ctx, alice.ID, oathtool(t, sec, e.clock.Now()))
		wantRefused(t, err, ErrNoFactor)
	})

	t.Run("fail/confirm-wrong-code", func(t *testing.T) {
		good := oathtool(t, sec, e.clock.Now())
		bad := []byte(good)
		bad[0] = '0' + (bad[0]-'0'+1)%10
		wantRefused(t, e.totp.Confirm(ctx, alice.ID, f.ID, string(bad)), ErrInvalidCode)
	})

	t.Run("fail/confirm-other-users-factor", func(t *testing.T) {
		err := e.totp.Confirm(ctx, bob.ID, f.ID, oathtool(t, sec, e.clock.Now()))
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			t.Fatalf("err = %v, want ENOTFOUND", err)
		}
	})

	confirmCode := oathtool(t, sec, e.clock.Now())
	if err := e.totp.Confirm(ctx, alice.ID, f.ID, confirmCode); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if got, _ := e.store.FactorByID(ctx, f.ID); got.Status != airlock.FactorActive {
		t.Fatalf("status after confirm %q", got.Status)
	}

	t.Run("fail/confirm-code-consumed", func(t *testing.T) {
		_, err := e.totp.Verify(ctx, alice.ID, confirmCode)
		wantRefused(t, err, ErrReplayedCode)
	})

	e.clock.Add(30 * time.Second)
	code := oathtool(t, sec, e.clock.Now())
	t.Run("fresh-code", func(t *testing.T) {
		id, err := e.totp.Verify(ctx, alice.ID, code)
		if err != nil || id != f.ID {
			t.Fatalf("Verify = %q, %v", id, err)
		}
	})
	t.Run("fail/same-code-again", func(t *testing.T) {
		_, err := e.totp.Verify(ctx, alice.ID, code)
		wantRefused(t, err, ErrReplayedCode)
	})

	t.Run("fail/other-users-code", func(t *testing.T) {
		_, bobSec := e.enroll(t, bob)
		e.clock.Add(30 * time.Second)
		bobCode := oathtool(t, bobSec, e.clock.Now())
		if bobCode == oathtool(t, sec, e.clock.Now()) {
			t.Skip("codes collide (1 in a million)")
		}
		_, err := e.totp.Verify(ctx, alice.ID, bobCode)
		wantRefused(t, err, ErrInvalidCode)
		if id, err := e.totp.Verify(ctx, bob.ID, bobCode); err != nil || id == f.ID {
			t.Fatalf("bob's own code: %q, %v", id, err)
		}
	})

	t.Run("skew-one-step-accepted", func(t *testing.T) {
		e.clock.Add(10 * time.Minute)
		now := e.clock.Now()
		if _, err := e.totp.Verify(ctx, alice.ID, oathtool(t, sec, now.Add(-30*time.Second))); err != nil {
			t.Fatalf("code of previous step: %v", err)
		}
		if _, err := e.totp.Verify(ctx, alice.ID, oathtool(t, sec, now.Add(30*time.Second))); err != nil {
			t.Fatalf("code of next step: %v", err)
		}
		// The current step is now older than the accepted one: refused.
		_, err := e.totp.Verify(ctx, alice.ID, oathtool(t, sec, now))
		wantRefused(t, err, ErrReplayedCode)
	})

	t.Run("fail/skew-two-steps", func(t *testing.T) {
		e.clock.Add(10 * time.Minute)
		now := e.clock.Now()
		for _, d := range []time.Duration{-60 * time.Second, 60 * time.Second} {
			_, err := e.totp.Verify(ctx, alice.ID, oathtool(t, sec, now.Add(d)))
			wantRefused(t, err, ErrOutOfWindow)
		}
	})

	t.Run("fail/malformed", func(t *testing.T) {
		for _, c := range []string{"", "12345", "1234567", "12a456", "١٢٣٤٥٦", strings.Repeat("1", 100)} {
			_, err := e.totp.Verify(ctx, alice.ID, c)
			wantRefused(t, err, ErrMalformedCode)
		}
		// Spaces are tolerated ("123 456").
		e.clock.Add(time.Minute)
		c := oathtool(t, sec, e.clock.Now())
		if _, err := e.totp.Verify(ctx, alice.ID, c[:3]+" "+c[3:]); err != nil {
			t.Fatalf("spaced code: %v", err)
		}
	})
}

func TestTOTPConcurrentVerifyOneSuccess(t *testing.T) {
	needOathtool(t)
	e := newTOTPEnv(t)
	u := testUser("carol")
	_, sec := e.enroll(t, u)
	e.clock.Add(30 * time.Second)
	code := oathtool(t, sec, e.clock.Now())
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() { _, err := e.totp.Verify(t.Context(), u.ID, code); errs <- err }()
	}
	ok := 0
	for range n {
		if err := <-errs; err == nil {
			ok++
		} else {
			wantRefused(t, err, ErrReplayedCode)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent verifies of one code succeeded, want 1", ok)
	}
}

func FuzzTOTPVerify(f *testing.F) {
	for _, s := range []string{"", "000000", "123456", "12 34 56", "abcdef", "1234567", " 1 2 3 4 5 6 ", "\x00\x00\x00\x00\x00\x00"} {
		f.Add(s)
	}
	e := newTOTPEnv(f)
	u := testUser("fuzz")
	fac, uri, _, err := e.totp.Enroll(f.Context(), u, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	sec := pu.Query().Get("secret")
	code, _ := totp.GenerateCode(sec, e.clock.Now())
	if err := e.totp.Confirm(f.Context(), u.ID, fac.ID, code); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, err := e.totp.Verify(t.Context(), u.ID, in)
		if err == nil {
			// Only a genuine code of the window may pass.
			norm := strings.ReplaceAll(in, " ", "")
			now := e.clock.Now()
			valid := false
			for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
				if c, _ := totp.GenerateCode(sec, now.Add(d)); c == norm {
					valid = true
				}
			}
			if !valid || id != fac.ID {
				t.Fatalf("accepted %q", in)
			}
			return
		}
		if !airlock.IsCode(err, airlock.EUNAUTHORIZED) || airlock.ErrorMessage(err) != MsgInvalidCode {
			t.Fatalf("Verify(%q) = %v", in, err)
		}
	})
}

// BenchmarkTOTPVerify measures one successful verification: list factors,
// open the sealed secret (AES-256-GCM envelope), 3 HMAC-SHA1 steps and the
// counter advance, against the in-memory store.
func BenchmarkTOTPVerify(b *testing.B) {
	e := newTOTPEnv(b)
	u := testUser("bench")
	fac, uri, _, err := e.totp.Enroll(b.Context(), u, "bench")
	if err != nil {
		b.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	sec := pu.Query().Get("secret")
	code, _ := totp.GenerateCode(sec, e.clock.Now())
	if err := e.totp.Confirm(b.Context(), u.ID, fac.ID, code); err != nil {
		b.Fatal(err)
	}
	codes := make([]string, b.N)
	start := e.clock.Now()
	for i := range codes {
		codes[i], _ = totp.GenerateCode(sec, start.Add(time.Duration(i+1)*30*time.Second))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.clock.Add(30 * time.Second)
		if _, err := e.totp.Verify(b.Context(), u.ID, codes[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

func TestHOTPMatchesPquerna(t *testing.T) {
	secret := []byte("12345678901234567890") // RFC 4226 Appendix D
	mac := hmac.New(sha1.New, secret)
	rfc := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for c := uint64(0); c < 2000; c++ {
		var got [TOTPDigits]byte
		hotpCode(mac, c, &got)
		want, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), c, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:]) != want || (c < 10 && want != rfc[c]) {
			t.Fatalf("counter %d: got %s, pquerna %s", c, got, want)
		}
	}
}
