package mfa

import (
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func TestFresh(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		s     *airlock.LoginSession
		win   time.Duration
		fresh bool
	}{
		{"nil", nil, time.Hour, false},
		{"no-mfa", &airlock.LoginSession{}, time.Hour, false},
		{"recent", &airlock.LoginSession{MFAAt: now.Add(-time.Minute)}, 5 * time.Minute, true},
		{"at-edge", &airlock.LoginSession{MFAAt: now.Add(-5 * time.Minute)}, 5 * time.Minute, false},
		{"stale", &airlock.LoginSession{MFAAt: now.Add(-time.Hour)}, 5 * time.Minute, false},
		{"zero-window", &airlock.LoginSession{MFAAt: now}, 0, false},
	} {
		if got := Fresh(tc.s, tc.win, now); got != tc.fresh {
			t.Errorf("%s: Fresh = %v, want %v", tc.name, got, tc.fresh)
		}
	}
}
