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

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d": 90 * 24 * time.Hour, "0d": 0, "3650d": 3650 * 24 * time.Hour, "1h30m": 90 * time.Minute, "45s": 45 * time.Second,
	} {
		if got, err := airlock.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "3651d", "1.5d", "xd", "90", "1w"} {
		if got, err := airlock.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "1h30m", "3651d", "-1d", "d", "1.5d", "9223372036854775807d", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := airlock.ParseDuration(s)
		if err != nil {
			return
		}
		// Whatever is accepted is what time.ParseDuration reads, or a day
		// count in range.
		if want, err := time.ParseDuration(s); err == nil {
			if d != want {
				t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration %v", s, d, want)
			}
			return
		}
		if d < 0 || d > 3650*24*time.Hour || d%(24*time.Hour) != 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}
