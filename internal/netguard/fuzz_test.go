package netguard

import (
	"errors"
	"net"
	"testing"
)

// FuzzPending drives a Pending through admit/release sequences read from
// the input and checks its state machine against a model: a refusal
// happens exactly when a bound is reached, the counts match the model,
// double releases change nothing, and releasing everything leaves it empty.
func FuzzPending(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x02, 0x80, 0x81, 0x00, 0x00, 0x00, 0x00})
	f.Add([]byte{0x03, 0x03, 0x03, 0x03, 0x83, 0xc3, 0x03})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const maxTotal, maxSource = 6, 3
		p := NewPending("fuzz", Limits{MaxPending: maxTotal, MaxPendingPerSource: maxSource}, nil)
		type slot struct {
			src     int
			release func()
		}
		var held []slot
		perSource := map[int]int{}
		for i, op := range ops {
			if op&0x80 != 0 { // release a held slot (twice when 0x40 is set)
				if len(held) == 0 {
					continue
				}
				k := int(op&0x3f) % len(held)
				s := held[k]
				s.release()
				if op&0x40 != 0 {
					s.release()
				}
				perSource[s.src]--
				held = append(held[:k], held[k+1:]...)
			} else {
				src := int(op & 0x07)
				release, err := p.Admit(&net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(src)), Port: i})
				var want error
				switch {
				case len(held) >= maxTotal:
					want = ErrTooManyPending
				case perSource[src] >= maxSource:
					want = ErrTooManyPendingFromSource
				}
				if !errors.Is(err, want) || (err == nil) != (release != nil) {
					t.Fatalf("op %d: Admit from %d with %d held (%d from it): %v, want %v", i, src, len(held), perSource[src], err, want)
				}
				if err == nil {
					held = append(held, slot{src, release})
					perSource[src]++
				}
			}
			sources := 0
			for _, n := range perSource {
				if n > 0 {
					sources++
				}
			}
			if s := p.Stats(); s.Pending != len(held) || s.Sources != sources {
				t.Fatalf("op %d: stats %+v, model %d held from %d sources", i, s, len(held), sources)
			}
		}
		for _, s := range held {
			s.release()
		}
		if s := p.Stats(); s.Pending != 0 || s.Sources != 0 {
			t.Fatalf("after releasing all: %+v", s)
		}
	})
}
