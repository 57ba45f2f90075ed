package netguard

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func tcp(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestPendingBounds(t *testing.T) {
	t.Run("fail/per-source", func(t *testing.T) {
		p := NewPending("pg", Limits{MaxPending: 10, MaxPendingPerSource: 2}, nil)
		r1, err1 := p.Admit(tcp("192.0.2.1", 1))
		_, err2 := p.Admit(tcp("192.0.2.1", 2))
		_, err3 := p.Admit(tcp("192.0.2.1", 3))
		if err1 != nil || err2 != nil || !errors.Is(err3, ErrTooManyPendingFromSource) {
			t.Fatalf("third from one source: %v %v %v", err1, err2, err3)
		}
		// Another source is unaffected.
		if _, err := p.Admit(tcp("192.0.2.2", 1)); err != nil {
			t.Fatalf("other source: %v", err)
		}
		// A released slot is free again; releasing twice frees one.
		r1()
		r1()
		if _, err := p.Admit(tcp("192.0.2.1", 4)); err != nil {
			t.Fatalf("after release: %v", err)
		}
		if _, err := p.Admit(tcp("192.0.2.1", 5)); !errors.Is(err, ErrTooManyPendingFromSource) {
			t.Fatalf("double release freed two slots: %v", err)
		}
		if s := p.Stats(); s.Pending != 3 || s.Sources != 2 || s.RefusedPerSource != 2 || s.RefusedListener != 0 {
			t.Fatalf("stats: %+v", s)
		}
	})
	t.Run("fail/per-listener", func(t *testing.T) {
		p := NewPending("pg", Limits{MaxPending: 3, MaxPendingPerSource: 3}, nil)
		var rel []func()
		for i := range 3 {
			r, err := p.Admit(tcp("198.51.100.1", i))
			if err != nil {
				t.Fatal(err)
			}
			rel = append(rel, r)
		}
		if _, err := p.Admit(tcp("203.0.113.9", 1)); !errors.Is(err, ErrTooManyPending) {
			t.Fatalf("over the listener bound from a new source: %v", err)
		}
		for _, r := range rel {
			r()
		}
		if s := p.Stats(); s.Pending != 0 || s.Sources != 0 || s.RefusedListener != 1 {
			t.Fatalf("stats after releasing all: %+v", s)
		}
		if _, err := p.Admit(tcp("203.0.113.9", 2)); err != nil {
			t.Fatalf("after releasing all: %v", err)
		}
	})
	t.Run("ok/ipv6-counts-per-64", func(t *testing.T) {
		p := NewPending("ssh", Limits{MaxPending: 10, MaxPendingPerSource: 1}, nil)
		if _, err := p.Admit(tcp("2001:db8:1:2::1", 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Admit(tcp("2001:db8:1:2:ffff::7", 1)); !errors.Is(err, ErrTooManyPendingFromSource) {
			t.Fatalf("same /64: %v", err)
		}
		if _, err := p.Admit(tcp("2001:db8:1:3::1", 1)); err != nil {
			t.Fatalf("other /64: %v", err)
		}
	})
	t.Run("ok/ipv4-mapped-is-ipv4", func(t *testing.T) {
		p := NewPending("pg", Limits{MaxPending: 10, MaxPendingPerSource: 1}, nil)
		if _, err := p.Admit(tcp("192.0.2.7", 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Admit(tcp("::ffff:192.0.2.7", 2)); !errors.Is(err, ErrTooManyPendingFromSource) {
			t.Fatalf("mapped address counted apart: %v", err)
		}
	})
	t.Run("ok/defaults", func(t *testing.T) {
		l := NewPending("pg", Limits{}, nil).Limits()
		if l.MaxPending != DefaultMaxPending || l.MaxPendingPerSource != DefaultMaxPendingPerSource {
			t.Fatalf("defaults: %+v", l)
		}
	})
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("127.0.0.1", 5), "127.0.0.1"},
		{tcp("::ffff:10.1.2.3", 5), "10.1.2.3"},
		{tcp("2001:db8::1", 5), "2001:db8::/64"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "/run/x.sock"},
		{nil, ""},
	} {
		if got := SourceKey(tc.addr); got != tc.want {
			t.Errorf("SourceKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestPendingRefusalLogIsRateLimited: a flood of refusals at one instant
// gives one line; the next line, a RefusalLogInterval later (the bubble's
// fake clock), counts the refusals in between.
func TestPendingRefusalLogIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		p := NewPending("pg", Limits{MaxPending: 2, MaxPendingPerSource: 1}, slog.New(slog.NewJSONHandler(&logs, nil)))
		if _, err := p.Admit(tcp("192.0.2.1", 1)); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			p.Admit(tcp("192.0.2.1", 2+i))
		}
		if n := len(logLines(t, &logs)); n != 1 {
			t.Fatalf("%d log lines for a burst of refusals, want 1:\n%s", n, logs.String())
		}
		time.Sleep(RefusalLogInterval) // fake time: the bubble's clock
		if _, err := p.Admit(tcp("198.51.100.1", 1)); err != nil {
			t.Fatal(err)
		}
		p.Admit(tcp("203.0.113.5", 1)) // over the listener bound
		lines := logLines(t, &logs)
		if len(lines) != 2 {
			t.Fatalf("%d log lines after the interval, want 2:\n%s", len(lines), logs.String())
		}
		if l := lines[1]; l["over_source_limit"].(float64) != 999 || l["over_listener_limit"].(float64) != 1 || l["last_source"] != "203.0.113.5" {
			t.Fatalf("second line: %v", l)
		}
		if s := p.Stats(); s.RefusedPerSource != 1000 || s.RefusedListener != 1 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

// TestPendingConcurrent admits and releases from many goroutines (run with
// -race); the bounds hold throughout and everything is given back.
func TestPendingConcurrent(t *testing.T) {
	const maxTotal, maxSource = 20, 5
	p := NewPending("pg", Limits{MaxPending: maxTotal, MaxPendingPerSource: maxSource}, nil)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r, err := p.Admit(tcp("10.0.0."+string(rune('1'+g%4)), i))
				if s := p.Stats(); s.Pending > maxTotal {
					t.Errorf("pending %d over %d", s.Pending, maxTotal)
				}
				if err == nil {
					r()
					r()
				}
			}
		}()
	}
	wg.Wait()
	if s := p.Stats(); s.Pending != 0 || s.Sources != 0 {
		t.Fatalf("after all released: %+v", s)
	}
}

func TestMaxPendingFor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lim     Limits
		fl      FileLimit
		want    Limits
		lowered bool
	}{
		{"ok/plenty", Limits{}, FileLimit{Soft: 1 << 20, Hard: 1 << 20}, Limits{DefaultMaxPending, DefaultMaxPendingPerSource}, false},
		{"ok/unknown", Limits{MaxPending: 9000}, FileLimit{}, Limits{9000, DefaultMaxPendingPerSource}, false},
		{"lowered/small-limit", Limits{}, FileLimit{Soft: 256, Hard: 256}, Limits{64, 32}, true},
		{"lowered/per-source-follows", Limits{}, FileLimit{Soft: 64, Hard: 64}, Limits{16, 16}, true},
		{"lowered/tiny", Limits{}, FileLimit{Soft: 2, Hard: 2}, Limits{1, 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, lowered := MaxPendingFor(tc.lim, tc.fl)
			if got != tc.want || lowered != tc.lowered {
				t.Fatalf("MaxPendingFor(%+v, %+v) = %+v, %v; want %+v, %v", tc.lim, tc.fl, got, lowered, tc.want, tc.lowered)
			}
		})
	}
}

func TestRaiseFileLimit(t *testing.T) {
	fl, err := RaiseFileLimit()
	if err != nil {
		t.Fatalf("RaiseFileLimit: %v (%+v)", err, fl)
	}
	if fl.Hard != 0 && fl.Soft != fl.Hard {
		t.Fatalf("soft limit %d not raised to hard %d", fl.Soft, fl.Hard)
	}
}
