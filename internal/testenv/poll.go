package testenv

import (
	"testing"
	"time"
)

// PollInterval is how often Poll checks its condition.
const PollInterval = 10 * time.Millisecond

// Poll checks cond now and then every PollInterval until it reports true,
// and reports whether it did within timeout. It is for state a test cannot
// be told about (a real server's, a counter a gateway keeps); a test that
// can wait on a channel does that instead.
func Poll(timeout time.Duration, cond func() bool) bool {
	return PollEvery(PollInterval, timeout, cond)
}

// PollEvery is Poll checking every interval: for a test whose checks are
// requests to a server it measures, and which must not add traffic.
func PollEvery(interval, timeout time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}

// Eventually fails t, with the message, unless cond holds within timeout
// (see Poll).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf(format, args...)
	}
}
