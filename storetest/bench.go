package storetest

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// BenchAppendEvents appends batches of 64 events (what 64 synchronous
// writers give one group commit) and of 1,000 (a pipelined stream) to s,
// reporting events/s and this process's CPU per event (for a server
// store, the client side only).
func BenchAppendEvents(b *testing.B, s airlock.AuditStore) {
	for _, batch := range []int{64, 1000} {
		b.Run(strconv.Itoa(batch), func(b *testing.B) { benchAppendEvents(b, s, batch) })
	}
}

func benchAppendEvents(b *testing.B, s airlock.AuditStore, batch int) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	details := []byte(`{"kind":"query","stmt":12,"text":"SELECT abalance FROM pgbench_accounts WHERE aid = $1"}`)
	cpu0 := cpuTime()
	for b.Loop() {
		err := s.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
			evs := make([]airlock.Event, batch)
			prev := h.Hash
			for i := range evs {
				seq := h.Seq + 1 + int64(i)
				hash := fmt.Sprintf("%064x", seq)
				evs[i] = airlock.Event{Seq: seq, Time: now, Actor: airlock.Actor{ID: "us_x", Name: "alice"}, Action: "db.query",
					Resource: "prod-db", GrantID: "gr_abc", SessionID: "se_abc", SourceAddr: "10.0.0.1:5555", Outcome: airlock.OutcomeSuccess,
					Details: details, PrevHash: prev, Hash: hash}
				prev = evs[i].Hash
			}
			return evs, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/event")
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
