package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSecretRedacts(t *testing.T) {
	const value = "hunter2-super-secret"
	s := Secret(value)
	type wrapper struct {
		Password Secret `json:"password"`
		Name     string `json:"name"`
	}
	w := wrapper{Password: s, Name: "n"}
	outputs := map[string]string{
		"%v":          fmt.Sprintf("%v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%x":          fmt.Sprintf("%x", s),
		"%d":          fmt.Sprintf("%d", s),
		"%+v":         fmt.Sprintf("%+v", s),
		"%#v":         fmt.Sprintf("%#v", s),
		"%10s":        fmt.Sprintf("%10s", s),
		"struct %v":   fmt.Sprintf("%v", w),
		"struct %+v":  fmt.Sprintf("%+v", w),
		"struct %#v":  fmt.Sprintf("%#v", w),
		"ptr %+v":     fmt.Sprintf("%+v", &w),
		"Sprint":      fmt.Sprint(s),
		"Sprintln":    fmt.Sprintln(s),
		"String":      s.String(),
		"GoString":    s.GoString(),
		"errorf wrap": fmt.Errorf("connect with %v: %w", s, errors.New("x")).Error(),
	}
	for name, got := range outputs {
		if strings.Contains(got, value) {
			t.Errorf("%s leaked the secret: %q", name, got)
		}
		if !strings.Contains(got, "[redacted]") {
			t.Errorf("%s = %q, want it to say [redacted]", name, got)
		}
	}

	j, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `{"password":"[redacted]","name":"n"}` {
		t.Errorf("json = %s", j)
	}
	txt, _ := s.MarshalText()
	if string(txt) != "[redacted]" {
		t.Errorf("MarshalText = %q", txt)
	}

	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("connecting", "password", s, "cfg", w, slog.Any("any", s), slog.Group("g", "p", s))
		if strings.Contains(buf.String(), value) {
			t.Errorf("slog %s leaked: %s", h.name, buf.String())
		}
		if !strings.Contains(buf.String(), "[redacted]") {
			t.Errorf("slog %s: no [redacted] in %s", h.name, buf.String())
		}
	}

	if s.Reveal() != value {
		t.Errorf("Reveal = %q, want %q", s.Reveal(), value)
	}
	if s.IsZero() || !Secret("").IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestKeyringRoundTrip(t *testing.T) {
	k, err := NewKeyring("k1", map[string][]byte{"k1": mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plain []byte
		aad   []byte
	}{
		{"empty", []byte{}, nil},
		{"short", []byte("pa55word"), []byte("resource:prod-db:read")},
		{"large", bytes.Repeat([]byte("x"), 1<<16), []byte("a")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, err := k.Seal(tc.plain, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.plain) > 4 && bytes.Contains(blob, tc.plain[:5]) {
				t.Error("blob contains plaintext")
			}
			got, err := k.Open(blob, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Errorf("round trip mismatch")
			}
			id, err := KeyID(blob)
			if err != nil || id != "k1" {
				t.Errorf("KeyID = %q, %v", id, err)
			}
			again, _ := k.Seal(tc.plain, tc.aad)
			if bytes.Equal(again, blob) {
				t.Error("two seals of the same plaintext are equal: data key or nonce reused")
			}
		})
	}
}

func TestKeyringTamperAndContext(t *testing.T) {
	key := mustKey(t)
	k, err := NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("upstream-password-123")
	aad := []byte("resource:prod-db:read")
	blob, err := k.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	checkErr := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("opened a bad blob")
		}
		msg := err.Error()
		if strings.Contains(msg, string(plain)) || strings.Contains(msg, string(key)) || strings.Contains(msg, fmt.Sprintf("%x", key)) {
			t.Fatalf("error leaks secret material: %q", msg)
		}
	}
	for i := range blob {
		for _, flip := range []byte{0x01, 0x80} {
			bad := bytes.Clone(blob)
			bad[i] ^= flip
			_, err := k.Open(bad, aad)
			checkErr(t, err)
		}
	}
	for _, n := range []int{0, 1, 2, len(blob) / 2, len(blob) - 1} {
		_, err := k.Open(blob[:n], aad)
		checkErr(t, err)
	}
	_, err = k.Open(append(bytes.Clone(blob), 0), aad)
	checkErr(t, err)

	t.Run("wrong-aad", func(t *testing.T) {
		for _, other := range [][]byte{nil, []byte("resource:prod-db:write"), []byte("resource:prod-db:rea")} {
			_, err := k.Open(blob, other)
			checkErr(t, err)
			if !errors.Is(err, ErrDecrypt) {
				t.Errorf("err = %v, want ErrDecrypt", err)
			}
		}
	})
	t.Run("other-key-same-id", func(t *testing.T) {
		k2, _ := NewKeyring("k1", map[string][]byte{"k1": mustKey(t)})
		_, err := k2.Open(blob, aad)
		checkErr(t, err)
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("err = %v, want ErrDecrypt", err)
		}
	})
	t.Run("unknown-id", func(t *testing.T) {
		k3, _ := NewKeyring("k9", map[string][]byte{"k9": key})
		_, err := k3.Open(blob, aad)
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("err = %v, want ErrUnknownKey", err)
		}
	})
}

func TestKeyringRotation(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	old, err := NewKeyring("2024", map[string][]byte{"2024": k1})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := old.Seal([]byte("s3cret"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewKeyring("2025", map[string][]byte{"2024": k1, "2025": k2})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CurrentID() != "2025" {
		t.Fatalf("CurrentID = %q", rotated.CurrentID())
	}
	got, err := rotated.Open(blob, []byte("ctx"))
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("old blob after rotation: %q, %v", got, err)
	}
	fresh, err := rotated.Seal(got, []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KeyID(fresh); id != "2025" {
		t.Errorf("re-sealed under %q, want 2025", id)
	}
	if _, err := old.Open(fresh, []byte("ctx")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old keyring opened a blob of the new key: %v", err)
	}
	if ids := rotated.IDs(); len(ids) != 2 || ids[0] != "2024" || ids[1] != "2025" {
		t.Errorf("IDs = %v", ids)
	}
}

func TestNewKeyringRejects(t *testing.T) {
	good := mustKey(t)
	for _, tc := range []struct {
		name    string
		current string
		keys    map[string][]byte
	}{
		{"missing-current", "k2", map[string][]byte{"k1": good}},
		{"short-key", "k1", map[string][]byte{"k1": good[:16]}},
		{"long-key", "k1", map[string][]byte{"k1": append(bytes.Clone(good), 1)}},
		{"empty-id", "", map[string][]byte{"": good}},
		{"long-id", strings.Repeat("i", 256), map[string][]byte{strings.Repeat("i", 256): good}},
		{"nil", "k1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewKeyring(tc.current, tc.keys); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	k, err := NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		f.Fatal(err)
	}
	blob, _ := k.Seal([]byte("hello"), []byte("aad"))
	f.Add(blob, []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1, 2, 'k', '1'}, []byte("aad"))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		plain, err := k.Open(sealed, aad)
		if err == nil {
			// Only a genuine blob can open; re-sealing must round trip.
			again, err := k.Seal(plain, aad)
			if err != nil {
				t.Fatal(err)
			}
			if p2, err := k.Open(again, aad); err != nil || !bytes.Equal(p2, plain) {
				t.Fatal("round trip failed")
			}
		}
		_, _ = KeyID(sealed)
	})
}
