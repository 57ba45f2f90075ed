package netguard

import (
	"net"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	b := &Budget{Interval: 10 * time.Second, MaxSources: 2, Now: func() time.Time { return now }}
	a := &net.TCPAddr{IP: net.ParseIP("203.0.113.1"), Port: 1}
	a2 := &net.TCPAddr{IP: net.ParseIP("203.0.113.1"), Port: 2}
	c := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 1}
	if !b.Allow(a) || b.Allow(a2) {
		t.Fatal("a second event from one address within the interval was allowed, or the first was not")
	}
	if !b.Allow(c) {
		t.Fatal("another address was refused")
	}
	now = now.Add(10 * time.Second)
	if !b.Allow(a) {
		t.Fatal("the address was not allowed again after the interval")
	}
	for i := range 1000 {
		b.Allow(&net.TCPAddr{IP: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 1})
	}
	if n := len(b.last); n > 2 {
		t.Fatalf("budget tracks %d sources, want at most MaxSources", n)
	}
}
