package postgres_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

// BenchmarkAppendEvents appends batches of 1,000 events (the audit
// pipeline's group-commit size) to the throwaway cluster (fsync on) and
// reports rows/s.
func BenchmarkAppendEvents(b *testing.B) {
	ctx := context.Background()
	pg := testenv.Postgres(b)
	db, err := postgres.Open(ctx, pg.DSN(pg.NewDatabase(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const batch = 1000
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
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	// Client-side CPU only (the server is another process).
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*batch), "client-cpu-ns/row")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
