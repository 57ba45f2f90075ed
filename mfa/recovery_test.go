package mfa

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/airlockhq/airlock"
)

func TestRecoveryCodes(t *testing.T) {
	s, c := newMemStore(), newClock()
	r := NewRecovery(s, c.Now)
	ctx := t.Context()
	u := testUser("dave")

	codes, err := r.Generate(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d codes, want 10", len(codes))
	}
	format := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)
	seen := map[string]bool{}
	for _, code := range codes {
		if !format.MatchString(code) || seen[code] {
			t.Fatalf("bad or duplicate code %q", code)
		}
		seen[code] = true
	}
	fs, _ := s.ListFactors(ctx, u.ID)
	if len(fs) != 1 || fs[0].Kind != airlock.FactorRecovery || fs[0].Status != airlock.FactorActive {
		t.Fatalf("factors %+v", fs)
	}
	for _, code := range codes {
		if bytes.Contains(fs[0].Data, []byte(strings.ReplaceAll(code, "-", ""))) {
			t.Fatal("a code is stored in clear")
		}
	}

	t.Run("each-usable-once", func(t *testing.T) {
		for i, code := range codes[:9] {
			in := code
			if i == 0 {
				in = strings.ToUpper(strings.ReplaceAll(code, "-", " ")) // forgiving input
			}
			left, err := r.Use(ctx, u.ID, in)
			if err != nil || left != 9-i {
				t.Fatalf("Use #%d = %d, %v", i, left, err)
			}
			_, err = r.Use(ctx, u.ID, code)
			wantRefused(t, err, ErrReplayedCode)
		}
		if n, _ := r.Remaining(ctx, u.ID); n != 1 {
			t.Fatalf("Remaining = %d, want 1", n)
		}
		f, _ := s.FactorByID(ctx, fs[0].ID)
		var d recoveryData
		if err := json.Unmarshal(f.Data, &d); err != nil {
			t.Fatal(err)
		}
		for i, used := range d.Used {
			if used != (i < 9) {
				t.Fatalf("Data used flags %v", d.Used)
			}
		}
	})

	t.Run("fail/unknown-and-malformed", func(t *testing.T) {
		_, err := r.Use(ctx, u.ID, "zzzzz-zzzzz")
		wantRefused(t, err, ErrInvalidCode)
		for _, bad := range []string{"", "abc", "uuuuu-uuuuu", "zzzzz-zzzzz-z", strings.Repeat("a", 200)} {
			_, err := r.Use(ctx, u.ID, bad)
			wantRefused(t, err, ErrMalformedCode)
		}
		_, err = r.Use(ctx, testUser("nobody").ID, codes[9])
		wantRefused(t, err, ErrNoFactor)
	})

	t.Run("regenerate-voids-old-set", func(t *testing.T) {
		fresh, err := r.Generate(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Use(ctx, u.ID, codes[9]) // unused in the old set
		wantRefused(t, err, ErrInvalidCode)
		fs, _ := s.ListFactors(ctx, u.ID)
		if len(fs) != 1 {
			t.Fatalf("%d recovery factors after regenerate, want 1", len(fs))
		}
		if left, err := r.Use(ctx, u.ID, fresh[0]); err != nil || left != 9 {
			t.Fatalf("new set: %d, %v", left, err)
		}
	})
}

func TestRecoveryConcurrentUse(t *testing.T) {
	s, c := newMemStore(), newClock()
	ctx := t.Context()
	u := testUser("erin")
	codes, err := NewRecovery(s, c.Now).Generate(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Separate Recovery values stand in for separate server processes: they
	// share only the store.
	const n = 12
	var wg sync.WaitGroup
	oks := make(chan bool, n)
	for range n {
		r := NewRecovery(s, c.Now)
		wg.Go(func() {
			_, err := r.Use(ctx, u.ID, codes[3])
			if err != nil && Reason(err) != "replayed_code" {
				t.Errorf("unexpected error %v", err)
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
		t.Fatalf("%d concurrent uses of one code succeeded, want 1", won)
	}
	// Distinct codes used concurrently in one process all succeed once.
	r := NewRecovery(s, c.Now)
	for i := range codes {
		if i == 3 {
			continue
		}
		wg.Go(func() {
			if _, err := r.Use(ctx, u.ID, codes[i]); err != nil {
				t.Errorf("code %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n, _ := r.Remaining(ctx, u.ID); n != 0 {
		t.Fatalf("Remaining = %d, want 0", n)
	}
}
