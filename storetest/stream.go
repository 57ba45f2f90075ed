package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// lease is LeaseStream that fails the test on an error.
func lease(t *testing.T, s airlock.Store, sink, holder string, now, until time.Time) (airlock.StreamCursor, bool) {
	t.Helper()
	c, ok, err := s.LeaseStream(t.Context(), sink, holder, now, until)
	must(t, err)
	return c, ok
}

// testStreams: a stream's lease goes to one holder until it ends or is
// released; only the holder moves the cursor, only up; the cursor
// survives a change of holder.
func testStreams(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	if _, _, err := s.LeaseStream(ctx, "", "a", at(0), at(time.Second)); err == nil {
		t.Fatal("LeaseStream with no sink succeeded")
	}
	c, ok := lease(t, s, "siem", "a", at(0), at(10*time.Second))
	if !ok || c.Sink != "siem" || c.Seq != 0 || c.Holder != "a" || !c.LeaseUntil.Equal(at(10*time.Second)) {
		t.Fatalf("first LeaseStream = %+v, %v; want siem/0/a until +10s, true", c, ok)
	}
	// Another holder is refused while the lease holds, and sees who holds it.
	if c, ok := lease(t, s, "siem", "b", at(5*time.Second), at(15*time.Second)); ok || c.Holder != "a" {
		t.Fatalf("LeaseStream(b) during a's lease = %+v, %v; want held by a, false", c, ok)
	}
	// The holder renews.
	if _, ok := lease(t, s, "siem", "a", at(5*time.Second), at(20*time.Second)); !ok {
		t.Fatal("renewal by the holder refused")
	}
	// Only the holder advances, only up.
	for _, tc := range []struct {
		holder string
		seq    int64
		ok     bool
		want   int64
	}{{"a", 10, true, 10}, {"b", 50, false, 10}, {"a", 5, true, 10}, {"a", 12, true, 12}} {
		ok, err := s.AdvanceStream(ctx, "siem", tc.holder, tc.seq, at(6*time.Second))
		must(t, err)
		cs, err := s.StreamCursors(ctx)
		must(t, err)
		if ok != tc.ok || len(cs) != 1 || cs[0].Seq != tc.want {
			t.Fatalf("AdvanceStream(%s, %d) = %v, cursors %+v; want %v at seq %d", tc.holder, tc.seq, ok, cs, tc.ok, tc.want)
		}
	}
	// An expired lease fences its holder out and goes to the next taker,
	// with the cursor where it was.
	if ok, err := s.AdvanceStream(ctx, "siem", "a", 30, at(20*time.Second)); err != nil || ok {
		t.Fatalf("AdvanceStream after the lease ended = %v, %v; want false", ok, err)
	}
	c, ok = lease(t, s, "siem", "b", at(20*time.Second), at(30*time.Second))
	if !ok || c.Holder != "b" || c.Seq != 12 {
		t.Fatalf("LeaseStream(b) after a's lease ended = %+v, %v; want b at seq 12", c, ok)
	}
	// Release lets a take it back at once; a release by a non-holder does nothing.
	must(t, s.ReleaseStream(ctx, "siem", "a"))
	if _, ok := lease(t, s, "siem", "a", at(21*time.Second), at(31*time.Second)); ok {
		t.Fatal("a release by a non-holder freed the lease")
	}
	must(t, s.ReleaseStream(ctx, "siem", "b"))
	if c, ok := lease(t, s, "siem", "a", at(21*time.Second), at(31*time.Second)); !ok || c.Seq != 12 {
		t.Fatalf("LeaseStream after release = %+v, %v; want a at seq 12", c, ok)
	}
	// Sinks are independent and listed by name.
	lease(t, s, "archive", "b", at(0), at(time.Second))
	cs, err := s.StreamCursors(ctx)
	must(t, err)
	if len(cs) != 2 || cs[0].Sink != "archive" || cs[1].Sink != "siem" || cs[0].Seq != 0 {
		t.Fatalf("StreamCursors = %+v; want archive (seq 0), siem", cs)
	}
}

// testStreamsConcurrent: of many servers racing for a free lease, exactly
// one gets it.
func testStreamsConcurrent(t *testing.T, s airlock.Store) {
	const n = 16
	var wg sync.WaitGroup
	wins := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := fmt.Sprintf("node-%d", i)
			_, ok, err := s.LeaseStream(t.Context(), "siem", h, at(0), at(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				wins <- h
			}
		}()
	}
	wg.Wait()
	close(wins)
	var got []string
	for h := range wins {
		got = append(got, h)
	}
	if len(got) != 1 {
		t.Fatalf("%d holders got the lease (%v); want exactly 1", len(got), got)
	}
}
