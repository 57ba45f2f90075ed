package airlock_test

import (
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Minute: "30m", time.Hour: "1h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s",
		90 * time.Second: "1m30s", 2*time.Hour + 5*time.Second: "2h0m5s", 20 * time.Hour: "20h",
		0: "0s", -time.Hour: "-1h", 1500 * time.Millisecond: "1.5s",
	} {
		got := airlock.FormatDuration(d)
		if got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, d)
		}
	}
}
