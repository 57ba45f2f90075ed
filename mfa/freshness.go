package mfa

import (
	"time"

	"github.com/airlockhq/airlock"
)

// Fresh reports whether login session s carries a second factor verified
// less than window before now (policy sets the window per action: login,
// approve, connect, factor change). A session without MFA is never fresh.
func Fresh(s *airlock.LoginSession, window time.Duration, now time.Time) bool {
	if s == nil || s.MFAAt.IsZero() || window <= 0 {
		return false
	}
	return now.Sub(s.MFAAt) < window
}
