package auth

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlockhq/airlock"
)

// fastParams keep unit tests quick; TestHashDefaultParams covers the real ones.
var fastParams = Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	h := NewHasher(fastParams, 2)
	ctx := t.Context()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoding %q", enc)
	}
	ok, err := h.Verify(ctx, enc, "correct horse battery staple")
	if err != nil || !ok {
		t.Fatalf("Verify right password = %v, %v", ok, err)
	}
	ok, err = h.Verify(ctx, enc, "correct horse battery stapl3")
	if err != nil || ok {
		t.Fatalf("Verify wrong password = %v, %v", ok, err)
	}
	enc2, _ := h.Hash(ctx, "correct horse battery staple")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if h.NeedsRehash(enc) {
		t.Fatal("NeedsRehash of a current hash")
	}
	if !NewHasher(DefaultParams(), 1).NeedsRehash(enc) {
		t.Fatal("NeedsRehash false for other params")
	}
}

func TestHashDefaultParams(t *testing.T) {
	h := NewHasher(DefaultParams(), 1)
	enc, err := h.Hash(t.Context(), "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("encoding %q", enc)
	}
	p, salt, key, err := ParsePHC(enc)
	if err != nil || p != DefaultParams() || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("ParsePHC = %+v %d %d %v", p, len(salt), len(key), err)
	}
	// Verify with these parameters costs as much again (seconds under
	// -race); TestHashVerify and TestVerifyKnownVector cover Verify.
}

func TestVerifyKnownVector(t *testing.T) {
	// Test vector of golang.org/x/crypto/argon2 (from the reference
	// implementation): argon2id, t=3, m=256, p=2, "password", "somesalt".
	key, _ := hex.DecodeString("4668d30ac4187e6878eedeacf0fd83c5a0a30db2cc16ef0b")
	p := Params{Memory: 256, Iterations: 3, Parallelism: 2, SaltLen: 8, KeyLen: 24}
	enc := EncodePHC(p, []byte("somesalt"), key)
	if enc != "$argon2id$v=19$m=256,t=3,p=2$c29tZXNhbHQ$RmjTCsQYfmh47t6s8P2DxaCjDbLMFu8L" {
		t.Fatalf("EncodePHC = %q", enc)
	}
	h := NewHasher(fastParams, 1)
	if ok, err := h.Verify(t.Context(), enc, "password"); err != nil || !ok {
		t.Fatalf("Verify reference vector = %v, %v", ok, err)
	}
	if ok, err := h.Verify(t.Context(), enc, "Password"); err != nil || ok {
		t.Fatalf("Verify reference vector, wrong password = %v, %v", ok, err)
	}
}

func TestParsePHCErrors(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	for name, enc := range map[string]string{
		"empty":           "",
		"argon2i":         "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"version":         "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"missing-field":   "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"extra-field":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x",
		"no-leading":      "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"param-order":     "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"param-missing":   "$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"param-neg":       "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key,
		"param-leading0":  "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"t-zero":          "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"p-zero":          "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"p-256":           "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key,
		"m-huge":          "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,
		"m-below-8p":      "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key,
		"t-huge":          "$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"salt-padded":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"salt-short":      "$argon2id$v=19$m=64,t=1,p=1$c29t$" + key,
		"salt-bad-base64": "$argon2id$v=19$m=64,t=1,p=1$!!!!!!!!!!!!$" + key,
		"key-short":       "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$CTFhFdXP",
		"too-long":        "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 600),
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			if _, _, _, err := ParsePHC(enc); !errors.Is(err, ErrPHC) {
				t.Fatalf("ParsePHC(%q) err = %v, want ErrPHC", enc, err)
			}
			ok, err := NewHasher(fastParams, 1).Verify(t.Context(), enc, "password")
			if ok || !airlock.IsCode(err, airlock.EINTERNAL) || !errors.Is(err, ErrPHC) {
				t.Fatalf("Verify = %v, %v; want false, EINTERNAL wrapping ErrPHC", ok, err)
			}
			if strings.Contains(airlock.ErrorMessage(err), "password\"") {
				t.Fatal("message leaks input")
			}
		})
	}
}

// countingKDF wraps h.kdf and records the number of derivations and the
// highest number running at once. release, when non-nil, holds each
// derivation until a value is received.
type countingKDF struct {
	calls, running, max atomic.Int64
	entered             chan struct{}
	release             chan struct{}
}

func (c *countingKDF) install(h *Hasher) {
	inner := h.kdf
	h.kdf = func(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
		c.calls.Add(1)
		r := c.running.Add(1)
		for {
			old := c.max.Load()
			if r <= old || c.max.CompareAndSwap(old, r) {
				break
			}
		}
		if c.entered != nil {
			c.entered <- struct{}{}
		}
		if c.release != nil {
			<-c.release
		}
		defer c.running.Add(-1)
		return inner(pw, salt, t, m, p, n)
	}
}

func TestDummyVerifyDoesWork(t *testing.T) {
	h := NewHasher(fastParams, 1)
	c := &countingKDF{}
	c.install(h)
	h.DummyVerify(t.Context(), "whatever")
	h.DummyVerify(t.Context(), "whatever")
	if got := c.calls.Load(); got != 2 {
		t.Fatalf("DummyVerify ran %d derivations, want 2 (one each)", got)
	}
}

func TestWorkerPoolBound(t *testing.T) {
	h := NewHasher(fastParams, 1)
	enc, err := h.Hash(t.Context(), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingKDF{entered: make(chan struct{}), release: make(chan struct{})}
	c.install(h)
	const n = 8
	var wg sync.WaitGroup
	results := make(chan bool, n)
	for range n {
		wg.Go(func() {
			ok, err := h.Verify(context.Background(), enc, "correct horse battery staple")
			results <- ok && err == nil
		})
	}
	// Let each derivation in one at a time; with one worker, never two run.
	for range n {
		<-c.entered
		if r := c.running.Load(); r != 1 {
			t.Fatalf("%d derivations running with workers=1", r)
		}
		c.release <- struct{}{}
	}
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Fatal("a queued Verify failed")
		}
	}
	if m := c.max.Load(); m != 1 {
		t.Fatalf("max concurrency %d, want 1", m)
	}
}

func TestWorkerPoolWaitRespectsContext(t *testing.T) {
	h := NewHasher(fastParams, 1)
	c := &countingKDF{entered: make(chan struct{}), release: make(chan struct{})}
	c.install(h)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = h.Hash(context.Background(), "x") }()
	<-c.entered // the only worker is busy now
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := h.Hash(ctx, "y")
	if !airlock.IsCode(err, airlock.EUNAVAILABLE) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with busy pool and done ctx: %v, want EUNAVAILABLE", err)
	}
	c.release <- struct{}{}
	<-done
	if got := c.calls.Load(); got != 1 {
		t.Fatalf("%d derivations, want 1 (the refused caller must do no work)", got)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"elevenchars", false},
		{"twelve chars", true},
		{"ääääääääääää", true}, // 12 characters, 24 bytes
		{"äääääääääää", false}, // 11 characters, 22 bytes
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
		{"\xff\xfe invalid utf8!", false},
	} {
		err := CheckPassword(tc.pw)
		if tc.ok != (err == nil) {
			t.Errorf("CheckPassword(%.20q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		if err != nil && !airlock.IsCode(err, airlock.EINVALID) {
			t.Errorf("CheckPassword(%.20q) code %s, want EINVALID", tc.pw, airlock.ErrorCode(err))
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := ParsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrPHC) {
				t.Fatalf("error %v does not wrap ErrPHC", err)
			}
			return
		}
		if p.Memory > maxMemoryKiB || p.Iterations > maxIter || p.Parallelism == 0 || len(salt) < minSaltLen || len(key) < minKeyLen {
			t.Fatalf("accepted out-of-range %+v", p)
		}
		// A parsed hash re-encodes to itself (the parser is strict).
		if got := EncodePHC(p, salt, key); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	})
}

func BenchmarkVerifyDefaultParams(b *testing.B) {
	h := NewHasher(DefaultParams(), 0)
	enc, err := h.Hash(b.Context(), "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := h.Verify(b.Context(), enc, "correct horse battery staple"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
