package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/sqlite"
	"github.com/airlockhq/airlock/storetest"
)

// BenchmarkAppendEvents measures the store alone (no audit pipeline):
// batches of 64 and 1,000 events, one transaction (one fsync) each.
func BenchmarkAppendEvents(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchAppendEvents(b, db)
}
