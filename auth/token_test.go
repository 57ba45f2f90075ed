package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, h := NewToken("al")
		if !strings.HasPrefix(tok, "al_") {
			t.Fatalf("token %q lacks prefix", tok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "al_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("token body: %d bytes, %v", len(raw), err)
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
		want := sha256.Sum256([]byte(tok))
		if !bytes.Equal(h, want[:]) || !bytes.Equal(HashToken(tok), h) {
			t.Fatal("hash is not the stable SHA-256 of the token")
		}
	}
	// A prefix that already ends in "_" gets no second one. (The random
	// body may itself start with "_", so check that it is exactly 32
	// bytes after the prefix rather than that "ct__" is absent.)
	for range 200 {
		tok, _ := NewToken("ct_")
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "ct_"))
		if !strings.HasPrefix(tok, "ct_") || err != nil || len(raw) != 32 {
			t.Fatalf("prefix with underscore: %q (%d bytes, %v)", tok, len(raw), err)
		}
	}
}

func BenchmarkHashToken(b *testing.B) {
	tok, _ := NewToken("al")
	b.ReportAllocs()
	for b.Loop() {
		HashToken(tok)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
