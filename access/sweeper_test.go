package access

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func newTestService(tb testing.TB, clk *clock) (*Service, airlock.Store, *audit.Log) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "airlock.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	// MaxDelay of an hour: anything here that waited for an event without
	// flushing would hang instead of passing slowly.
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: clk.now, MaxDelay: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { al.Close(context.Background()) })
	svc, err := New(ctx, Deps{Store: store, Audit: al, Now: clk.now})
	if err != nil {
		tb.Fatal(err)
	}
	return svc, store, al
}

func seedGrants(tb testing.TB, store airlock.Store, n int, start, end time.Time) {
	tb.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		g := &airlock.Grant{ID: fmt.Sprintf("gr_%07d", i), RequestID: fmt.Sprintf("req_%07d", i), UserID: "usr_a", UserName: "alice",
			Resource: "prod-db", Access: "read", StartsAt: start, EndsAt: end, State: airlock.GrantActive, CreatedAt: start}
		if err := store.CreateGrant(ctx, g); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestSweepExpiresDueGrants pins invariant 2: expiry needs no timer that
// ran at the right moment. Grants whose ends_at passed are recorded as
// expired (audited, fanned out) by the next sweep, and never before.
func TestSweepExpiresDueGrants(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, _ := newTestService(t, clk)
	seedGrants(t, store, 50, t0, t0.Add(time.Hour))
	var cut atomic.Int64
	svc.Bus().Subscribe(func(r airlock.Revocation) {
		if r.GrantID != "" {
			cut.Add(1)
		}
	})
	ctx := context.Background()
	if n, err := svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before ends_at: n=%d err=%v", n, err)
	}
	clk.mu.Lock()
	clk.t = t0.Add(time.Hour) // exactly ends_at: now < ends_at no longer holds
	clk.mu.Unlock()
	n, err := svc.Sweep(ctx)
	if err != nil || n != 50 {
		t.Fatalf("sweep at ends_at: n=%d err=%v", n, err)
	}
	if cut.Load() != 50 {
		t.Fatalf("bus saw %d revocations, want 50", cut.Load())
	}
	evs, err := store.ListEvents(ctx, airlock.EventFilter{Action: "grant.expired"})
	if err != nil || len(evs) != 50 {
		t.Fatalf("grant.expired events = %d (%v)", len(evs), err)
	}
	g, _ := store.GrantByID(ctx, "gr_0000007")
	if g.State != airlock.GrantExpired {
		t.Fatalf("state = %s", g.State)
	}
	if n, _ := svc.Sweep(ctx); n != 0 {
		t.Fatalf("second sweep expired %d again", n)
	}
}

// BenchmarkSweep100k measures expiring 100,000 grants due at the same second.
func BenchmarkSweep100k(b *testing.B) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clk := &clock{t: t0}
		svc, store, _ := newTestService(b, clk)
		seedGrants(b, store, 100000, t0, t0.Add(time.Hour))
		clk.mu.Lock()
		clk.t = t0.Add(time.Hour)
		clk.mu.Unlock()
		b.StartTimer()
		start := time.Now()
		n, err := svc.Sweep(context.Background())
		if err != nil || n != 100000 {
			b.Fatalf("n=%d err=%v", n, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/100k-grants")
	}
}
