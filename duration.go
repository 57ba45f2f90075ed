package airlock

import (
	"fmt"
	"strconv"
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

// ParseDuration is time.ParseDuration plus a whole-days form, "7d" (at
// most 3650 days), as policy files and the CLI's --since flags write them.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && !strings.ContainsAny(days, "hmsun.µ") {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
