package dbgw

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// A life ends once: the first reason stays, the first caller's then runs
// (and only it), and every End returns after it has.
func TestLifeEndsOnce(t *testing.T) {
	l := NewLife()
	if l.Ended() || l.Reason() != "" {
		t.Fatal("a new life has ended")
	}
	var runs atomic.Int32
	var wg sync.WaitGroup
	for _, r := range []airlock.EndReason{airlock.EndGrantRevoked, airlock.EndClientClosed, airlock.EndIdleTimeout} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.End(r, func() { time.Sleep(10 * time.Millisecond); runs.Add(1) })
			if runs.Load() != 1 {
				t.Error("End returned before the first then had run")
			}
		}()
	}
	wg.Wait()
	select {
	case <-l.Done():
	default:
		t.Fatal("Done not closed")
	}
	if runs.Load() != 1 || !l.Ended() || l.Reason() == "" {
		t.Fatalf("runs %d, ended %v, reason %q", runs.Load(), l.Ended(), l.Reason())
	}
	if l.End(airlock.EndServerShutdown, nil) {
		t.Fatal("a later End reported ending it")
	}
}

// The deadline ends a life at its time; the idle timer waits for a quiet
// period after the last Touch and not while busy; Stop stops both.
func TestLifeTimers(t *testing.T) {
	l := NewLife()
	expired := make(chan struct{})
	l.Arm(50*time.Millisecond, func() { close(expired) }, time.Hour, nil, func() { t.Error("idle") })
	select {
	case <-expired:
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline did not fire")
	}
	l.Stop()

	l = NewLife()
	var busy atomic.Bool
	idled := make(chan time.Time, 1)
	l.Arm(time.Hour, func() { t.Error("expired") }, 500*time.Millisecond, busy.Load, func() { idled <- time.Now() })
	start := time.Now()
	for time.Since(start) < 700*time.Millisecond { // kept active
		l.Touch()
		time.Sleep(10 * time.Millisecond)
	}
	busy.Store(true)
	time.Sleep(700 * time.Millisecond) // quiet, but busy
	select {
	case <-idled:
		t.Fatal("idle while active or busy")
	default:
	}
	busy.Store(false)
	select {
	case <-idled:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle timer did not fire once quiet and not busy")
	}
	l.Stop()

	l = NewLife()
	l.Arm(20*time.Millisecond, func() { t.Error("fired after Stop") }, 20*time.Millisecond, nil, func() { t.Error("idle after Stop") })
	l.Stop()
	time.Sleep(100 * time.Millisecond)
}
