package mfa

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/secrets"
)

// memStore is an in-memory FactorStore and KVStore for unit tests of this
// package's logic. It copies values in and out like a database would.
type memStore struct {
	mu      sync.Mutex
	factors map[string]*airlock.Factor
	order   []string
	kv      map[string]kvEntry
}

type kvEntry struct {
	v   []byte
	exp time.Time
}

func newMemStore() *memStore {
	return &memStore{factors: map[string]*airlock.Factor{}, kv: map[string]kvEntry{}}
}

func cloneFactor(f *airlock.Factor) *airlock.Factor {
	c := *f
	c.Secret = slices.Clone(f.Secret)
	c.Data = slices.Clone(f.Data)
	return &c
}

func (s *memStore) CreateFactor(_ context.Context, f *airlock.Factor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.factors[f.ID]; ok {
		return airlock.Errorf(airlock.ECONFLICT, "factor exists")
	}
	s.factors[f.ID] = cloneFactor(f)
	s.order = append(s.order, f.ID)
	return nil
}

func (s *memStore) UpdateFactor(_ context.Context, f *airlock.Factor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.factors[f.ID]
	if !ok {
		return airlock.Errorf(airlock.ENOTFOUND, "no factor")
	}
	c := cloneFactor(f)
	c.Counter = old.Counter // UpdateFactor does not write Counter
	s.factors[f.ID] = c
	return nil
}

func (s *memStore) FactorByID(_ context.Context, id string) (*airlock.Factor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.factors[id]
	if !ok {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no factor")
	}
	return cloneFactor(f), nil
}

func (s *memStore) ListFactors(_ context.Context, userID string) ([]*airlock.Factor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*airlock.Factor
	for _, id := range s.order {
		if f, ok := s.factors[id]; ok && f.UserID == userID {
			out = append(out, cloneFactor(f))
		}
	}
	return out, nil
}

func (s *memStore) DeleteFactor(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.factors[id]; !ok {
		return airlock.Errorf(airlock.ENOTFOUND, "no factor")
	}
	delete(s.factors, id)
	return nil
}

func (s *memStore) AdvanceFactorCounter(_ context.Context, id string, next int64, usedAt time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.factors[id]
	if !ok {
		return false, airlock.Errorf(airlock.ENOTFOUND, "no factor")
	}
	if f.Counter >= next {
		return false, nil
	}
	f.Counter, f.LastUsedAt = next, usedAt
	return true, nil
}

func (s *memStore) PutKV(_ context.Context, key string, value []byte, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = kvEntry{slices.Clone(value), exp}
	return nil
}

func (s *memStore) GetKV(_ context.Context, key string, now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok || !now.Before(e.exp) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no such key")
	}
	return slices.Clone(e.v), nil
}

func (s *memStore) TakeKV(ctx context.Context, key string, now time.Time) ([]byte, error) {
	v, err := s.GetKV(ctx, key, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.kv[key]; !ok && err == nil {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "key %q not found", key)
	}
	delete(s.kv, key)
	return v, err
}

func (s *memStore) ScanKV(_ context.Context, prefix string, now time.Time) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, e := range s.kv {
		if strings.HasPrefix(k, prefix) && (e.exp.IsZero() || now.Before(e.exp)) {
			out[k] = slices.Clone(e.v)
		}
	}
	return out, nil
}

func (s *memStore) DeleteKV(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, key)
	return nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newClock starts 15 s into a TOTP step.
func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 15, 0, time.UTC)} }

func newKeyring(tb testing.TB) *secrets.Keyring {
	tb.Helper()
	key, err := secrets.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func testUser(name string) *airlock.User {
	return &airlock.User{ID: airlock.NewID("us"), Name: name}
}
