package airlock

import (
	"strings"
	"time"
)

// FormatDuration prints d compactly, dropping zero trailing units:
// 1h, 1h30m, 30m, 45s; 90s prints as 1m30s and 2h0m5s keeps its inner
// zero. The result parses back with time.ParseDuration. Zero prints as
// "0s"; a negative d keeps its sign.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
