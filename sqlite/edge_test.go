package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
	"github.com/airlockhq/airlock/sqlite"
)

// TestEdgeConcurrentCancelTwoHandles: several goroutines append through
// two handles (two replicas) on one file, some with contexts that expire
// mid-append; the stored tiles must give the root of the stored events and
// no append may hang on the Edge.
func TestEdgeConcurrentCancelTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	var dbs [2]*sqlite.DB
	for i := range dbs {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	errs := map[string]int{}
	defer func() { t.Logf("errors: %v", errs) }()
	done := make(chan struct{})
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			db := dbs[w%2]
			if w == 5 {
				db = dbs[1]
			}
			for i := 0; i < 60; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(3) == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(4000))*time.Microsecond)
				}
				k := 1 + rng.IntN(20)
				if rng.IntN(5) == 0 {
					k = 1 + rng.IntN(400)
				}
				err := db.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
					evs := make([]airlock.Event, k)
					prev := h.Hash
					for j := range evs {
						seq := h.Seq + 1 + int64(j)
						evs[j] = airlock.Event{Seq: seq, Time: time.Unix(seq, 0), Action: "x", Outcome: airlock.OutcomeSuccess,
							PrevHash: prev, Hash: fmt.Sprintf("%064x", rng.Uint64())}
						prev = evs[j].Hash
					}
					return evs, nil
				}) // errors (cancellation, busy) are expected
				cancel()
				if err != nil {
					errMu.Lock()
					errs[err.Error()[:min(60, len(err.Error()))]]++
					errMu.Unlock()
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("appends hung")
	}
	db := dbs[0]
	var c tlog.Compact
	if err := db.ScanEvents(t.Context(), 0, func(e airlock.Event) error { c.Append(tlog.EventLeaf(e.Hash)); return nil }); err != nil {
		t.Fatal(err)
	}
	h, _ := db.AuditHead(t.Context())
	t.Logf("%d events", h.Seq)
	root, err := tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return db.MerkleTile(t.Context(), id.Level, id.Index) }).Root(c.Size())
	if err != nil || !bytes.Equal(root, c.Root()) {
		t.Fatalf("root %x %v, want %x", root, err, c.Root())
	}
}
