package gwsession_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/gwsession"
)

// fake is a session that records how it was closed.
type fake struct {
	gwsession.Session
	mu      sync.Mutex
	reasons []airlock.EndReason
}

func newFake(id, user, grant string, started time.Time) *fake {
	f := &fake{}
	f.Session = gwsession.Session{ID: id, UserID: user, GrantID: grant, Resource: "db", Node: "n1", StartedAt: started}
	f.Close = func(r airlock.EndReason) {
		f.mu.Lock()
		f.reasons = append(f.reasons, r)
		f.mu.Unlock()
	}
	return f
}

func (f *fake) closedWith() []airlock.EndReason {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]airlock.EndReason(nil), f.reasons...)
}

func mustAdd(t *testing.T, r *gwsession.Registry, fs ...*fake) {
	t.Helper()
	for _, f := range fs {
		if !r.Add(&f.Session) {
			t.Fatalf("Add(%s) refused", f.ID)
		}
	}
}

func wantClosed(t *testing.T, f *fake, want ...airlock.EndReason) {
	t.Helper()
	got := f.closedWith()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s closed with %v, want %v", f.ID, got, want)
	}
}

func TestCloseByGrantUserSession(t *testing.T) {
	var r gwsession.Registry
	t0 := time.Unix(1000, 0)
	a := newFake("a", "u1", "g1", t0)
	b := newFake("b", "u1", "g2", t0)
	c := newFake("c", "u2", "g1", t0)
	d := newFake("d", "u3", "g3", t0)
	mustAdd(t, &r, a, b, c, d)

	if n := r.CloseGrant("g1", ""); n != 2 {
		t.Errorf("CloseGrant = %d, want 2", n)
	}
	wantClosed(t, a, airlock.EndGrantRevoked)
	wantClosed(t, c, airlock.EndGrantRevoked)
	wantClosed(t, b)

	if n := r.CloseUser("u1", airlock.EndNodeLost); n != 2 { // a is still live: Close does not remove
		t.Errorf("CloseUser = %d, want 2", n)
	}
	wantClosed(t, a, airlock.EndGrantRevoked, airlock.EndNodeLost)
	wantClosed(t, b, airlock.EndNodeLost)

	if !r.CloseSession("d", "") {
		t.Error("CloseSession(d) = false")
	}
	wantClosed(t, d, airlock.EndSessionKilled)
	if r.CloseSession("nope", "") {
		t.Error("CloseSession(nope) = true")
	}
	if n := r.CloseUser("u1", ""); n != 2 {
		t.Errorf("CloseUser default = %d", n)
	}
	wantClosed(t, b, airlock.EndNodeLost, airlock.EndUserDisabled)
	if n := r.CloseGrant("none", ""); n != 0 {
		t.Errorf("CloseGrant(none) = %d", n)
	}
}

func TestRemoveAndCount(t *testing.T) {
	var r gwsession.Registry
	a := newFake("a", "u", "g", time.Time{})
	mustAdd(t, &r, a)
	if r.Count() != 1 {
		t.Fatalf("Count = %d", r.Count())
	}
	// Another session under a's ID (it replaced a): removing a keeps it.
	a2 := newFake("a", "u", "g", time.Time{})
	mustAdd(t, &r, a2)
	r.Remove(&a.Session)
	if r.Count() != 1 || !r.CloseSession("a", "") {
		t.Fatal("Remove of a replaced session removed its successor")
	}
	wantClosed(t, a)
	wantClosed(t, a2, airlock.EndSessionKilled)
	r.Remove(&a2.Session)
	r.Remove(&a2.Session) // twice is harmless
	if r.Count() != 0 || r.CloseSession("a", "") {
		t.Fatal("removed session still live")
	}
	if n := len(r.ActiveSessions()); n != 0 {
		t.Fatalf("ActiveSessions = %d rows", n)
	}
}

func TestActiveSessionsOldestFirst(t *testing.T) {
	var r gwsession.Registry
	t0 := time.Unix(1000, 0)
	late := newFake("late", "u", "g", t0.Add(time.Minute))
	early := newFake("early", "u", "g", t0)
	early.Info = func() airlock.Session {
		return airlock.Session{ID: "early", StartedAt: t0, BytesIn: 42}
	}
	mustAdd(t, &r, late, early)
	got := r.ActiveSessions()
	if len(got) != 2 || got[0].ID != "early" || got[1].ID != "late" {
		t.Fatalf("ActiveSessions = %+v", got)
	}
	if got[0].BytesIn != 42 {
		t.Errorf("Info not used: %+v", got[0])
	}
	want := airlock.Session{ID: "late", UserID: "u", GrantID: "g", Resource: "db", Node: "n1", StartedAt: t0.Add(time.Minute)}
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("row without Info = %+v, want %+v", got[1], want)
	}
}

func TestReserve(t *testing.T) {
	var r gwsession.Registry
	rel1, ok := r.Reserve("u", "g", 2)
	if !ok {
		t.Fatal("first slot refused")
	}
	rel2, ok := r.Reserve("u", "g", 2)
	if !ok {
		t.Fatal("second slot refused")
	}
	if _, ok := r.Reserve("u", "g", 2); ok {
		t.Fatal("third slot granted over limit 2")
	}
	if rel, ok := r.Reserve("u", "other", 2); !ok {
		t.Fatal("another grant's slot refused")
	} else {
		rel()
	}
	if rel, ok := r.Reserve("u", "g", 0); !ok {
		t.Fatal("limit 0 refused")
	} else {
		rel()
	}
	rel1()
	rel1() // idempotent: frees one slot, not two
	if _, ok := r.Reserve("u", "g", 2); !ok {
		t.Fatal("freed slot refused")
	}
	if _, ok := r.Reserve("u", "g", 2); ok {
		t.Fatal("double release freed two slots")
	}
	rel2()
}

// Of many connections racing for the last slots, exactly limit win.
func TestReserveRace(t *testing.T) {
	var r gwsession.Registry
	const limit, racers = 3, 50
	var won atomic.Int32
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			if _, ok := r.Reserve("u", "g", limit); ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != limit {
		t.Fatalf("%d won, want %d", won.Load(), limit)
	}
}

func TestDrainRefusesAddAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r gwsession.Registry
		a := newFake("a", "u", "g", time.Time{})
		b := newFake("b", "u", "g", time.Time{})
		mustAdd(t, &r, a, b)
		// Each session ends a little after it is closed.
		for _, f := range []*fake{a, b} {
			f.Close = func(reason airlock.EndReason) {
				f.mu.Lock()
				f.reasons = append(f.reasons, reason)
				f.mu.Unlock()
				time.AfterFunc(time.Second, func() { r.Remove(&f.Session) })
			}
		}
		if n := r.Drain(airlock.EndServerShutdown); n != 2 {
			t.Fatalf("Drain = %d", n)
		}
		wantClosed(t, a, airlock.EndServerShutdown)
		wantClosed(t, b, airlock.EndServerShutdown)
		if r.Add(&newFake("c", "u", "g", time.Time{}).Session) {
			t.Fatal("Add after Drain accepted")
		}

		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		if err := r.Wait(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Wait before the sessions ended = %v", err)
		}
		start := time.Now()
		if err := r.Wait(t.Context()); err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if d := time.Since(start); d != 500*time.Millisecond {
			t.Fatalf("Wait returned after %v, want when the sessions ended (500ms later)", d)
		}
		if err := r.Wait(t.Context()); err != nil {
			t.Fatal("Wait on an empty registry:", err)
		}
	})
}

// The Close methods call every matched session's Close concurrently and
// return once all have returned.
func TestCloseWaitsForEachClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r gwsession.Registry
		for i := range 3 {
			f := newFake(fmt.Sprint(i), "u", "g", time.Time{})
			f.Close = func(airlock.EndReason) { time.Sleep(time.Second) } // fake clock: a slow notice
			mustAdd(t, &r, f)
		}
		start := time.Now()
		if n := r.CloseUser("u", ""); n != 3 {
			t.Fatalf("CloseUser = %d", n)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("CloseUser took %v, want 1s (the closes run concurrently and are waited for)", d)
		}
	})
}

// Close, Remove, Add, ActiveSessions and Drain race freely (run with -race).
func TestConcurrentCloseAndRemove(t *testing.T) {
	var r gwsession.Registry
	const n = 200
	var closes atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		f := newFake(fmt.Sprint(i), fmt.Sprint("u", i%5), fmt.Sprint("g", i%7), time.Unix(int64(i), 0))
		f.Close = func(airlock.EndReason) {
			closes.Add(1)
			r.Remove(&f.Session) // a session may end from inside its Close
		}
		wg.Go(func() {
			if !r.Add(&f.Session) {
				return
			}
			if i%3 == 0 {
				r.Remove(&f.Session)
			}
		})
		wg.Go(func() { r.CloseGrant(fmt.Sprint("g", i%7), "") })
		wg.Go(func() { r.CloseUser(fmt.Sprint("u", i%5), "") })
		wg.Go(func() { r.CloseSession(fmt.Sprint(i), "") })
		wg.Go(func() { _ = r.ActiveSessions(); _ = r.Count() })
	}
	wg.Go(func() { r.Drain(airlock.EndServerShutdown) })
	wg.Wait()
	r.Drain(airlock.EndServerShutdown)
	if err := r.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c := r.Count(); c != 0 {
		t.Fatalf("Count after Drain = %d", c)
	}
}

func TestWaitGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(time.Second) }) // fake clock
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := gwsession.WaitGroup(ctx, &wg); err != context.DeadlineExceeded {
			t.Fatalf("WaitGroup before done = %v", err)
		}
		if err := gwsession.WaitGroup(t.Context(), &wg); err != nil {
			t.Fatalf("WaitGroup = %v", err)
		}
	})
}
