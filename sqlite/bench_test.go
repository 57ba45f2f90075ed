package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sqlite"
)

// BenchmarkAppendEvents appends batches of 64 events (what 64 synchronous
// writers give one group commit) and of 1,000 (a pipelined stream) and
// reports events/s.
func BenchmarkAppendEvents(b *testing.B) {
	for _, batch := range []int{64, 1000} {
		b.Run(strconv.Itoa(batch), func(b *testing.B) { benchAppendEvents(b, batch) })
	}
}

func benchAppendEvents(b *testing.B, batch int) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	details := []byte(`{"query":"SELECT * FROM accounts WHERE id = $1","rows":1}`)
	cpu0 := cpuTime()
	for b.Loop() {
		err := db.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
			evs := make([]airlock.Event, batch)
			prev := h.Hash
			for i := range evs {
				seq := h.Seq + 1 + int64(i)
				hash := strconv.FormatInt(seq, 16) + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
				evs[i] = airlock.Event{Seq: seq, Time: now, Actor: airlock.Actor{ID: "us_x", Name: "alice"}, Action: "pg.query",
					Resource: "prod-db", GrantID: "gr_abc", SessionID: "se_abc", SourceAddr: "10.0.0.1:5555", Outcome: airlock.OutcomeSuccess,
					Details: details, PrevHash: prev, Hash: hash}
				prev = hash
			}
			return evs, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	// CPU time per row is the machine-load-independent figure: on a busy
	// shared machine wall-clock rows/s mostly measures the neighbours.
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
