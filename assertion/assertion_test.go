package assertion_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/assertion"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

const issuer = "https://airlock.example.com"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// memKV is an in-memory assertion.Store with the expiry semantics of
// airlock.KVStore. beforePut, when set, runs (once) before a put lands:
// it lets a test make another replica act in the middle of one.
type memKV struct {
	mu        sync.Mutex
	m         map[string]kvEntry
	scans     int
	fail      error
	beforePut func()
}

type kvEntry struct {
	v   []byte
	exp time.Time
}

func newMemKV() *memKV { return &memKV{m: map[string]kvEntry{}} }

func (s *memKV) PutKV(_ context.Context, key string, value []byte, expiresAt time.Time) error {
	s.mu.Lock()
	hook := s.beforePut
	s.beforePut = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.m[key] = kvEntry{bytes.Clone(value), expiresAt}
	return nil
}

func (s *memKV) ScanKV(_ context.Context, prefix string, now time.Time) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans++
	if s.fail != nil {
		return nil, s.fail
	}
	out := map[string][]byte{}
	for k, e := range s.m {
		if strings.HasPrefix(k, prefix) && now.Before(e.exp) {
			out[k] = bytes.Clone(e.v)
		}
	}
	return out, nil
}

func (s *memKV) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memKV) scanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans
}

// recordingSealer is the server's keyring, remembering every plaintext
// it sealed so a test can look for it where it must not be.
type recordingSealer struct {
	airlock.Sealer
	mu     sync.Mutex
	sealed [][]byte
}

func (r *recordingSealer) Seal(plaintext, aad []byte) ([]byte, error) {
	r.mu.Lock()
	r.sealed = append(r.sealed, bytes.Clone(plaintext))
	r.mu.Unlock()
	return r.Sealer.Seal(plaintext, aad)
}

func newSealer(t testing.TB) *recordingSealer {
	t.Helper()
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return &recordingSealer{Sealer: kr}
}

func newKeys(t testing.TB, store assertion.Store, sealer airlock.Sealer, clk *clock, opts assertion.Options) *assertion.Keys {
	t.Helper()
	opts.Issuer = issuer
	opts.Now = clk.now
	opts.Logger = slog.New(slog.DiscardHandler)
	k, err := assertion.New(store, sealer, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func claims(clk *clock) assertion.Claims {
	return assertion.Claims{
		Audience: "grafana", Subject: "u_alice", Name: "alice", Groups: []string{"sre", "oncall"},
		Grant: "g_123", Access: "read", EndsAt: clk.now().Add(time.Hour),
	}
}

func mustSign(t testing.TB, k *assertion.Keys, c assertion.Claims) string {
	t.Helper()
	tok, err := k.Sign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustJWKS(t testing.TB, k *assertion.Keys) []byte {
	t.Helper()
	b, err := k.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseJWKS reads a JWKS the way an app would, with the standard library
// only: Ed25519 OKP keys by kid. A private member fails the test.
func parseJWKS(t testing.TB, b []byte) map[string]ed25519.PublicKey {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("jwks: %v\n%s", err, b)
	}
	out := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if _, ok := k["d"]; ok {
			t.Fatalf("jwks holds a private key: %s", b)
		}
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("unexpected jwk %v", k)
		}
		x, err := base64.RawURLEncoding.DecodeString(k["x"])
		if err != nil || len(x) != ed25519.PublicKeySize {
			t.Fatalf("jwk x %q: %v", k["x"], err)
		}
		out[k["kid"]] = ed25519.PublicKey(x)
	}
	return out
}

func kids(t testing.TB, jwks []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// verify checks token as an app would, with golang-jwt (not the issuing
// library) and the keys of jwks.
func verify(t testing.TB, token string, jwks []byte, aud string, now time.Time) (jwt.MapClaims, error) {
	t.Helper()
	keys := parseJWKS(t, jwks)
	mc := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, mc, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return k, nil
	},
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithAudience(aud), jwt.WithIssuer(issuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	return mc, err
}

func header(t testing.TB, token string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	kid, _ := header(t, token)["kid"].(string)
	return kid
}

func TestSignVerifiesWithJWKS(t *testing.T) {
	clk := newClock()
	k := newKeys(t, newMemKV(), newSealer(t), clk, assertion.Options{})
	c := claims(clk)
	tok := mustSign(t, k, c)

	mc, err := verify(t, tok, mustJWKS(t, k), "grafana", clk.now())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	now := clk.now().Unix()
	want := map[string]any{
		"iss": issuer, "sub": "u_alice", "aud": "grafana", "name": "alice",
		"groups": []any{"sre", "oncall"}, "grant": "g_123", "access": "read",
		"ends_at": float64(c.EndsAt.Unix()), "iat": float64(now), "nbf": float64(now),
		"exp": float64(now + int64(assertion.DefaultLifetime/time.Second)),
	}
	for name, v := range want {
		if got := mc[name]; fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("claim %s = %v, want %v", name, got, v)
		}
	}
	if jti, _ := mc["jti"].(string); len(jti) < 16 {
		t.Errorf("jti = %q", jti)
	}
	if tok2 := mustSign(t, k, c); tok2 == tok {
		t.Error("two assertions are identical (jti not unique)")
	}
	h := header(t, tok)
	if h["typ"] != "JWT" || h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Errorf("header = %v", h)
	}
}

func TestVerifyRefuses(t *testing.T) {
	clk := newClock()
	k := newKeys(t, newMemKV(), newSealer(t), clk, assertion.Options{})
	tok := mustSign(t, k, claims(clk))
	jwks := mustJWKS(t, k)
	parts := strings.Split(tok, ".")

	reencode := func(i int, edit func(string) string) string {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		p := slicesClone(parts)
		p[i] = base64.RawURLEncoding.EncodeToString([]byte(edit(string(b))))
		return strings.Join(p, ".")
	}
	other := newKeys(t, newMemKV(), newSealer(t), clk, assertion.Options{})

	cases := []struct {
		name  string
		token string
		aud   string
		at    time.Time
	}{
		{"fail/wrong-audience", tok, "kibana", clk.now()},
		{"fail/expired", tok, "grafana", clk.now().Add(assertion.DefaultLifetime + time.Second)},
		{"fail/not-yet-valid", tok, "grafana", clk.now().Add(-time.Minute)},
		{"fail/tampered-payload", reencode(1, func(s string) string {
			return strings.Replace(s, `"access":"read"`, `"access":"admin"`, 1)
		}), "grafana", clk.now()},
		{"fail/unknown-kid", reencode(0, func(s string) string {
			return strings.Replace(s, kidOf(t, tok), "nope", 1)
		}), "grafana", clk.now()},
		{"fail/other-key-set", mustSign(t, other, claims(clk)), "grafana", clk.now()},
		{"fail/alg-none", reencode(0, func(s string) string {
			return strings.Replace(s, `"alg":"EdDSA"`, `"alg":"none"`, 1)
		}), "grafana", clk.now()},
		{"fail/signature-stripped", parts[0] + "." + parts[1] + ".", "grafana", clk.now()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := verify(t, tc.token, jwks, tc.aud, tc.at); err == nil {
				t.Fatal("verified; want a failure")
			}
		})
	}
	t.Run("ok/control", func(t *testing.T) {
		if _, err := verify(t, tok, jwks, "grafana", clk.now()); err != nil {
			t.Fatal(err)
		}
	})
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func TestSignBoundsAndRefusals(t *testing.T) {
	clk := newClock()
	k := newKeys(t, newMemKV(), newSealer(t), clk, assertion.Options{Lifetime: 10 * time.Minute})

	t.Run("ok/exp-capped-at-grant-end", func(t *testing.T) {
		c := claims(clk)
		c.EndsAt = clk.now().Add(30 * time.Second)
		mc, err := verify(t, mustSign(t, k, c), mustJWKS(t, k), "grafana", clk.now())
		if err != nil {
			t.Fatal(err)
		}
		if exp, _ := mc["exp"].(float64); int64(exp) != c.EndsAt.Unix() {
			t.Errorf("exp = %v, want ends_at %d", exp, c.EndsAt.Unix())
		}
	})
	t.Run("ok/configured-lifetime", func(t *testing.T) {
		mc, err := verify(t, mustSign(t, k, claims(clk)), mustJWKS(t, k), "grafana", clk.now())
		if err != nil {
			t.Fatal(err)
		}
		if exp, _ := mc["exp"].(float64); int64(exp) != clk.now().Add(10*time.Minute).Unix() {
			t.Errorf("exp = %v", exp)
		}
	})
	for name, edit := range map[string]func(*assertion.Claims){
		"fail/grant-ended":     func(c *assertion.Claims) { c.EndsAt = clk.now() },
		"fail/no-audience":     func(c *assertion.Claims) { c.Audience = "" },
		"fail/no-subject":      func(c *assertion.Claims) { c.Subject = "" },
		"fail/no-grant":        func(c *assertion.Claims) { c.Grant = "" },
		"fail/no-access":       func(c *assertion.Claims) { c.Access = "" },
		"fail/no-grant-end":    func(c *assertion.Claims) { c.EndsAt = time.Time{} },
		"ok/no-groups-or-name": func(c *assertion.Claims) { c.Groups, c.Name = nil, "" },
	} {
		t.Run(name, func(t *testing.T) {
			c := claims(clk)
			edit(&c)
			tok, err := k.Sign(t.Context(), c)
			if strings.HasPrefix(name, "ok/") {
				if err != nil {
					t.Fatal(err)
				}
				mc, err := verify(t, tok, mustJWKS(t, k), "grafana", clk.now())
				if err != nil {
					t.Fatal(err)
				}
				if g, ok := mc["groups"].([]any); !ok || len(g) != 0 {
					t.Errorf("groups = %#v, want []", mc["groups"])
				}
				return
			}
			if code := airlock.ErrorCode(err); code != airlock.EINVALID {
				t.Fatalf("err = %v (code %q), want EINVALID", err, code)
			}
		})
	}
	t.Run("fail/options", func(t *testing.T) {
		for _, o := range []assertion.Options{
			{},
			{Issuer: issuer, RotateEvery: 10 * time.Minute},
			{Issuer: issuer, Lifetime: -time.Second},
		} {
			if _, err := assertion.New(newMemKV(), newSealer(t), o); airlock.ErrorCode(err) != airlock.EINVALID {
				t.Errorf("New(%+v) err = %v, want EINVALID", o, err)
			}
		}
	})
}

func TestRotation(t *testing.T) {
	clk := newClock()
	store := newMemKV()
	const rotate = time.Hour
	k := newKeys(t, store, newSealer(t), clk, assertion.Options{RotateEvery: rotate})
	t0 := clk.now()
	ahead := k.PublishAhead()
	publishEnd := t0.Add(rotate + assertion.DefaultLifetime + assertion.Margin)

	kid1 := kidOf(t, mustSign(t, k, claims(clk)))
	if got := kids(t, mustJWKS(t, k)); len(got) != 1 || got[0] != kid1 {
		t.Fatalf("jwks kids = %v, want [%s]", got, kid1)
	}

	// Before the successor is due: one key.
	clk.set(t0.Add(rotate - ahead - time.Second))
	if got := kids(t, mustJWKS(t, k)); len(got) != 1 {
		t.Fatalf("jwks kids before pre-publication = %v", got)
	}
	// From PublishAhead before the end: the successor is published, not yet signing.
	clk.set(t0.Add(rotate - ahead))
	if kid := kidOf(t, mustSign(t, k, claims(clk))); kid != kid1 {
		t.Fatalf("the successor signs %v early", ahead)
	}
	got := kids(t, mustJWKS(t, k))
	if len(got) != 2 || got[0] != kid1 {
		t.Fatalf("jwks kids while pre-published = %v, want [%s, successor]", got, kid1)
	}
	kid2 := got[1]

	clk.set(t0.Add(rotate - time.Second))
	old := mustSign(t, k, claims(clk))
	if kidOf(t, old) != kid1 {
		t.Fatal("old key stopped signing early")
	}

	// At RotateEvery the successor signs; the old key still verifies.
	clk.set(t0.Add(rotate))
	if kid := kidOf(t, mustSign(t, k, claims(clk))); kid != kid2 {
		t.Fatalf("after rotation kid = %s, want %s", kid, kid2)
	}
	jwks := mustJWKS(t, k)
	if got := kids(t, jwks); len(got) != 2 || got[0] != kid2 {
		t.Fatalf("jwks kids after rotation = %v, want [%s, %s]", got, kid2, kid1)
	}
	if _, err := verify(t, old, jwks, "grafana", clk.now()); err != nil {
		t.Fatalf("a token of the previous key no longer verifies: %v", err)
	}

	// Published until its last token's expiry plus the margin, then gone
	// from the JWKS and from the store.
	clk.set(publishEnd.Add(-time.Second))
	if got := kids(t, mustJWKS(t, k)); len(got) != 2 {
		t.Fatalf("old key gone early: %v", got)
	}
	clk.set(publishEnd)
	jwks = mustJWKS(t, k)
	if got := kids(t, jwks); len(got) != 1 || got[0] != kid2 {
		t.Fatalf("jwks kids after the old key's publication = %v, want [%s]", got, kid2)
	}
	if _, err := verify(t, old, jwks, "grafana", t0.Add(rotate)); err == nil {
		t.Fatal("a token of a retired key still verifies")
	}
	kv, _ := store.ScanKV(t.Context(), assertion.KeyPrefix, clk.now())
	if _, ok := kv[assertion.KeyPrefix+kid1]; ok || len(kv) != 1 {
		t.Fatalf("store still holds the retired key: %v", keysOf(kv))
	}

	// Long idle (no traffic across a whole rotation): a fresh key signs.
	clk.set(t0.Add(5 * rotate))
	if kid := kidOf(t, mustSign(t, k, claims(clk))); kid == kid2 || kid == kid1 {
		t.Fatal("an expired key still signs")
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNoStoreReadOnTheHotPath(t *testing.T) {
	clk := newClock()
	store := newMemKV()
	k := newKeys(t, store, newSealer(t), clk, assertion.Options{})
	mustSign(t, k, claims(clk))
	base := store.scanCount()
	for range 100 {
		clk.add(100 * time.Millisecond) // 10 s in all, within Reload
		mustSign(t, k, claims(clk))
	}
	if n := store.scanCount() - base; n != 0 {
		t.Fatalf("%d store reads for 100 signatures within Reload", n)
	}
	clk.add(assertion.DefaultReload)
	mustSign(t, k, claims(clk))
	if n := store.scanCount() - base; n != 1 {
		t.Fatalf("%d store reads after Reload, want 1", n)
	}
}

func TestStoreOutage(t *testing.T) {
	clk := newClock()
	store := newMemKV()
	k := newKeys(t, store, newSealer(t), clk, assertion.Options{})
	outage := errors.New("store down")

	t.Run("fail/no-key-yet", func(t *testing.T) {
		store.setFail(outage)
		defer store.setFail(nil)
		if _, err := k.Sign(t.Context(), claims(clk)); !errors.Is(err, outage) {
			t.Fatalf("err = %v, want the store's", err)
		}
		rec := httptest.NewRecorder()
		k.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
		if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "store down") {
			t.Fatalf("jwks during outage: %d %q", rec.Code, rec.Body)
		}
	})
	t.Run("ok/cached-key-keeps-signing", func(t *testing.T) {
		tok := mustSign(t, k, claims(clk))
		store.setFail(outage)
		defer store.setFail(nil)
		clk.add(2 * assertion.DefaultReload)
		base := store.scanCount()
		tok2 := mustSign(t, k, claims(clk))
		mustSign(t, k, claims(clk))
		if kidOf(t, tok2) != kidOf(t, tok) {
			t.Fatal("kid changed during an outage")
		}
		if n := store.scanCount() - base; n != 1 {
			t.Fatalf("%d store reads during an outage, want 1 until the next reload", n)
		}
		if _, err := verify(t, tok2, mustJWKS(t, k), "grafana", clk.now()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReplicasShareKeys runs two Keys on one real SQLite store, as two
// replicas on one database would, and a third as a restart.
func TestReplicasShareKeys(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := newClock()
	sealer := newSealer(t)
	a := newKeys(t, db, sealer, clk, assertion.Options{})
	b := newKeys(t, db, sealer, clk, assertion.Options{})

	tokA := mustSign(t, a, claims(clk))
	if _, err := verify(t, tokA, mustJWKS(t, b), "grafana", clk.now()); err != nil {
		t.Fatalf("replica B's JWKS does not verify replica A's token: %v", err)
	}
	tokB := mustSign(t, b, claims(clk))
	if kidOf(t, tokA) != kidOf(t, tokB) {
		t.Fatal("replicas sign with different keys")
	}
	if _, err := verify(t, tokB, mustJWKS(t, a), "grafana", clk.now()); err != nil {
		t.Fatal(err)
	}

	// A restart (a new Keys on the same store) keeps the key.
	c := newKeys(t, db, sealer, clk, assertion.Options{})
	if kidOf(t, mustSign(t, c, claims(clk))) != kidOf(t, tokA) {
		t.Fatal("a restarted replica made a new key")
	}

	// Rotation through the store: both replicas move to the same successor.
	clk.add(assertion.DefaultRotateEvery)
	nA, nB := kidOf(t, mustSign(t, a, claims(clk))), kidOf(t, mustSign(t, b, claims(clk)))
	if nA != nB || nA == kidOf(t, tokA) {
		t.Fatalf("after rotation A signs %s, B %s (old %s)", nA, nB, kidOf(t, tokA))
	}
	if got := kids(t, mustJWKS(t, b)); len(got) != 2 {
		t.Fatalf("jwks after rotation = %v", got)
	}
	kv, err := db.ScanKV(ctx, assertion.KeyPrefix, clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if len(kv) != 2 {
		t.Fatalf("store holds %d keys, want 2", len(kv))
	}
	assertNoPlaintext(t, sealer, kv, mustJWKS(t, a))
}

// TestReplicasRotateAtOnce has replica B store its key while replica A is
// storing its own (first key, then successor): both keys are published
// and both replicas converge on one signing key.
func TestReplicasRotateAtOnce(t *testing.T) {
	clk := newClock()
	store := newMemKV()
	sealer := newSealer(t)
	a := newKeys(t, store, sealer, clk, assertion.Options{})
	b := newKeys(t, store, sealer, clk, assertion.Options{})

	race := func(t *testing.T) (tokA, tokB string) {
		t.Helper()
		store.mu.Lock()
		store.beforePut = func() { tokB = mustSign(t, b, claims(clk)) }
		store.mu.Unlock()
		tokA = mustSign(t, a, claims(clk))
		return tokA, tokB
	}

	tokA, tokB := race(t)
	jwksA := mustJWKS(t, a)
	if len(kids(t, jwksA)) != 2 {
		t.Fatalf("after a first-key race the JWKS lists %v, want both keys", kids(t, jwksA))
	}
	for _, tok := range []string{tokA, tokB} {
		if _, err := verify(t, tok, jwksA, "grafana", clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	// Within JWKSReload B publishes A's key too, and at B's next reload
	// both sign with the same one.
	clk.add(assertion.JWKSReload)
	if _, err := verify(t, tokA, mustJWKS(t, b), "grafana", clk.now()); err != nil {
		t.Fatalf("B's JWKS does not verify A's token after JWKSReload: %v", err)
	}
	clk.add(assertion.DefaultReload)
	first := kidOf(t, mustSign(t, a, claims(clk)))
	if kidB := kidOf(t, mustSign(t, b, claims(clk))); kidB != first {
		t.Fatalf("replicas sign with %s and %s after reloading", first, kidB)
	}

	// Both store a successor at the same moment.
	clk.add(assertion.DefaultRotateEvery - a.PublishAhead() - assertion.JWKSReload - assertion.DefaultReload)
	race(t)
	if got := kids(t, mustJWKS(t, a)); len(got) != 4 || got[0] != first {
		t.Fatalf("after a successor race A's JWKS lists %v, want 4 keys, %s first", got, first)
	}
	clk.add(assertion.JWKSReload)
	if got := kids(t, mustJWKS(t, b)); len(got) != 4 || got[0] != first {
		t.Fatalf("after a successor race B's JWKS lists %v, want 4 keys, %s first", got, first)
	}
	clk.add(a.PublishAhead() - assertion.JWKSReload)
	kidA, kidB := kidOf(t, mustSign(t, a, claims(clk))), kidOf(t, mustSign(t, b, claims(clk)))
	if kidA != kidB || kidA == first {
		t.Fatalf("after rotation A signs %s, B %s (previous %s)", kidA, kidB, first)
	}
}

func TestPrivateKeyNeverInPlaintext(t *testing.T) {
	clk := newClock()
	store := newMemKV()
	sealer := newSealer(t)
	k := newKeys(t, store, sealer, clk, assertion.Options{RotateEvery: time.Hour})
	mustSign(t, k, claims(clk))
	clk.add(time.Hour)
	mustSign(t, k, claims(clk))
	kv, _ := store.ScanKV(t.Context(), assertion.KeyPrefix, clk.now())
	if len(kv) != 2 || len(sealer.sealed) != 2 {
		t.Fatalf("%d keys stored, %d sealed; want 2 and 2", len(kv), len(sealer.sealed))
	}
	assertNoPlaintext(t, sealer, kv, mustJWKS(t, k))
}

// assertNoPlaintext fails if any private key the sealer saw appears, raw
// or in a usual encoding, in a KV value or the JWKS.
func assertNoPlaintext(t *testing.T, sealer *recordingSealer, kv map[string][]byte, jwks []byte) {
	t.Helper()
	sealer.mu.Lock()
	defer sealer.mu.Unlock()
	for _, seed := range sealer.sealed {
		if len(seed) != ed25519.SeedSize {
			t.Fatalf("sealed %d bytes, want an Ed25519 seed", len(seed))
		}
		priv := ed25519.NewKeyFromSeed(seed)
		var forms [][]byte
		for _, b := range [][]byte{seed, priv} {
			forms = append(forms, b,
				[]byte(base64.StdEncoding.EncodeToString(b)), []byte(base64.RawStdEncoding.EncodeToString(b)),
				[]byte(base64.RawURLEncoding.EncodeToString(b)), []byte(hex.EncodeToString(b)))
		}
		for name, v := range kv {
			for _, f := range forms {
				if bytes.Contains(v, f) {
					t.Fatalf("KV entry %s holds a private key in plaintext", name)
				}
			}
		}
		for _, f := range forms {
			if bytes.Contains(jwks, f) {
				t.Fatal("the JWKS holds a private key")
			}
		}
	}
}

func TestHandler(t *testing.T) {
	clk := newClock()
	k := newKeys(t, newMemKV(), newSealer(t), clk, assertion.Options{})
	srv := httptest.NewServer(k.Handler())
	t.Cleanup(srv.Close)

	res, err := http.Get(srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" ||
		res.Header.Get("Cache-Control") != "public, max-age=300" || res.Header.Get("ETag") == "" {
		t.Fatalf("GET: %d %v", res.StatusCode, res.Header)
	}
	if _, err := verify(t, mustSign(t, k, claims(clk)), body.Bytes(), "grafana", clk.now()); err != nil {
		t.Fatalf("served JWKS: %v", err)
	}

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d, want 304", res2.StatusCode)
	}

	res3, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res3.Body.Close()
	if res3.StatusCode != http.StatusMethodNotAllowed || res3.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", res3.StatusCode, res3.Header)
	}
}

func BenchmarkSign(b *testing.B) {
	clk := newClock()
	k := newKeys(b, newMemKV(), newSealer(b), clk, assertion.Options{})
	c := claims(clk)
	ctx := context.Background()
	mustSign(b, k, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Sign(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
