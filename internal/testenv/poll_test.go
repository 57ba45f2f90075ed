package testenv

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Poll(time.Second, func() bool { return true }) || time.Since(start) != 0 {
			t.Fatal("a true condition was not taken at once")
		}
		ready := start.Add(95 * time.Millisecond)
		if !Poll(time.Second, func() bool { return !time.Now().Before(ready) }) {
			t.Fatal("condition that became true was missed")
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("took %v, want the first tick after it became true (100ms)", d)
		}
		start = time.Now()
		if Poll(time.Second, func() bool { return false }) {
			t.Fatal("false condition reported true")
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("gave up after %v, want 1s", d)
		}
	})
}
