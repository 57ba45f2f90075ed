package auth

import (
	"sync"
	"testing"
	"time"
)

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

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func TestLimiterLockout(t *testing.T) {
	c := newClock()
	l := NewLimiter(LimiterConfig{}, c.Now)
	wantDelays := []time.Duration{0, 0, time.Second, 2 * time.Second}
	for i := range 4 {
		if locked, _ := l.Fail("alice"); locked {
			t.Fatalf("locked after %d failures", i+1)
		}
		if d := l.Delay("alice"); d != wantDelays[i] {
			t.Fatalf("delay after %d failures = %v, want %v", i+1, d, wantDelays[i])
		}
		c.Add(time.Minute)
	}
	if _, locked := l.Check("alice"); locked {
		t.Fatal("locked before the 5th failure")
	}
	locked, until := l.Fail("alice")
	if !locked || !until.Equal(c.Now().Add(15*time.Minute)) {
		t.Fatalf("5th failure: locked=%v until=%v", locked, until)
	}
	if u, locked := l.Check("alice"); !locked || !u.Equal(until) {
		t.Fatalf("Check after lockout = %v, %v", u, locked)
	}
	if _, locked := l.Check("bob"); locked {
		t.Fatal("other key locked")
	}
	// A failure while locked neither relocks nor extends.
	c.Add(time.Minute)
	if locked, u := l.Fail("alice"); locked || !u.Equal(until) {
		t.Fatalf("Fail while locked = %v, %v", locked, u)
	}
	// Succeed does not lift a lockout.
	l.Succeed("alice")
	if _, locked := l.Check("alice"); !locked {
		t.Fatal("Succeed lifted the lockout")
	}
	// Expiry.
	c.Add(14*time.Minute - time.Nanosecond)
	if _, locked := l.Check("alice"); !locked {
		t.Fatal("unlocked before 15 min")
	}
	c.Add(time.Nanosecond)
	if _, locked := l.Check("alice"); locked {
		t.Fatal("still locked after 15 min")
	}
	if n := l.Failures("alice"); n != 0 {
		t.Fatalf("failures after lockout = %d, want a fresh count", n)
	}
}

func TestLimiterUnlock(t *testing.T) {
	c := newClock()
	l := NewLimiter(LimiterConfig{MaxFailures: 2}, c.Now)
	l.Fail("k")
	if locked, _ := l.Fail("k"); !locked {
		t.Fatal("not locked at MaxFailures")
	}
	l.Unlock("k")
	if _, locked := l.Check("k"); locked {
		t.Fatal("locked after Unlock")
	}
	if n := l.Failures("k"); n != 0 {
		t.Fatalf("failures after Unlock = %d", n)
	}
}

func TestLimiterWindowAndSucceed(t *testing.T) {
	c := newClock()
	l := NewLimiter(LimiterConfig{}, c.Now)
	for range 4 {
		l.Fail("k")
	}
	c.Add(15 * time.Minute) // the window passes: old failures are forgotten
	if n := l.Failures("k"); n != 0 {
		t.Fatalf("failures after window = %d", n)
	}
	for range 4 {
		if locked, _ := l.Fail("k"); locked {
			t.Fatal("locked by failures from an expired window")
		}
	}
	l.Succeed("k")
	if n := l.Failures("k"); n != 0 {
		t.Fatalf("failures after Succeed = %d", n)
	}
	for range 4 {
		if locked, _ := l.Fail("k"); locked {
			t.Fatal("Succeed did not reset the count")
		}
	}
}

func TestLimiterDelayCap(t *testing.T) {
	c := newClock()
	l := NewLimiter(LimiterConfig{MaxFailures: 100, MaxDelay: 5 * time.Second}, c.Now)
	var got []time.Duration
	for range 7 {
		l.Fail("k")
		got = append(got, l.Delay("k"))
	}
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
}

func TestLimiterMaxKeysSweepsOnlyStale(t *testing.T) {
	c := newClock()
	l := NewLimiter(LimiterConfig{MaxKeys: 2, MaxFailures: 1}, c.Now)
	l.Fail("locked") // MaxFailures 1: locked at once
	l.Fail("stale")
	c.Add(16 * time.Minute)
	l.Fail("locked2")
	l.Fail("new") // over MaxKeys: the sweep drops expired entries only
	if _, locked := l.Check("locked2"); !locked {
		t.Fatal("sweep dropped a live lockout")
	}
	l.mu.Lock()
	_, staleKept := l.entries["stale"]
	l.mu.Unlock()
	if staleKept {
		t.Fatal("stale entry not swept")
	}
}
