package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/sqlite"
)

// scanCounter counts the events a store's ScanEvents hands out.
type scanCounter struct {
	airlock.Store
	scanned int
}

func (s *scanCounter) ScanEvents(ctx context.Context, after int64, fn func(airlock.Event) error) error {
	return s.Store.ScanEvents(ctx, after, func(e airlock.Event) error { s.scanned++; return fn(e) })
}

// TestRequestWindowStreamed: the request's events (which carry no grant)
// are found in the log around it by a scan that keeps only them and stops
// a requestSlack past the window's end, instead of reading the window's
// every event into memory. An event of the window stamped by a slower
// clock after later ones is still found; events of the request outside
// the window, and other requests' events, are not taken.
func TestRequestWindowStreamed(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	var now atomic.Int64 // the log's clock, read by its writer goroutine
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(at time.Duration, e airlock.Event) {
		t.Helper()
		now.Store(t0.Add(at).UnixNano())
		e.Outcome = airlock.OutcomeSuccess
		if _, err := al.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	bob := airlock.Actor{ID: "usr_b", Name: "bob"}
	noise := func(at time.Duration, n int) {
		for range n {
			rec(at, airlock.Event{Actor: bob, Action: "login.succeeded"})
		}
	}
	rq := &airlock.AccessRequest{ID: "req_1", CreatedAt: t0, DecidedAt: t0.Add(10 * time.Minute)}
	g := &airlock.Grant{ID: "gr_1", RequestID: rq.ID, CreatedAt: rq.DecidedAt}
	rec(-5*time.Minute, airlock.Event{Actor: bob, Action: "request.commented", RequestID: rq.ID}) // before the window
	noise(-30*time.Second, 10)
	rec(0, airlock.Event{Actor: bob, Action: "request.created", RequestID: rq.ID})
	noise(time.Minute, 500)
	rec(2*time.Minute, airlock.Event{Actor: bob, Action: "request.created", RequestID: "req_other"})
	rec(10*time.Minute, airlock.Event{Actor: bob, Action: "request.reviewed", RequestID: rq.ID})
	rec(10*time.Minute, airlock.Event{Actor: bob, Action: "grant.activated", RequestID: rq.ID, GrantID: g.ID})
	noise(11*time.Minute+30*time.Second, 5)
	rec(10*time.Minute+30*time.Second, airlock.Event{Actor: bob, Action: "request.noted", RequestID: rq.ID}) // a slower clock
	noise(13*time.Minute, 1)                                                                                 // stops the scan
	noise(14*time.Minute, 500)
	rec(14*time.Minute, airlock.Event{Actor: bob, Action: "request.late", RequestID: rq.ID}) // after the window
	if err := al.Close(ctx); err != nil {
		t.Fatal(err)
	}

	sc := &scanCounter{Store: store}
	evs, err := grantEvents(ctx, sc, g, rq)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Action)
	}
	want := []string{"request.created", "request.reviewed", "grant.activated", "request.noted"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	// From the first event at the window's start (less its slack) to the
	// first one a further slack past its end: 10+1+500+1+1+1+5+1+1.
	if sc.scanned != 521 {
		t.Errorf("the scan handed out %d events, want 521 (it must stop past the window)", sc.scanned)
	}
}
