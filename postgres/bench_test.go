package postgres_test

import (
	"context"
	"testing"

	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/storetest"
)

// BenchmarkAppendEvents measures the store alone (no audit pipeline) on
// the throwaway cluster (fsync on): batches of 64 and 1,000 events, one
// transaction each. CPU is the client side only.
func BenchmarkAppendEvents(b *testing.B) {
	pg := testenv.Postgres(b)
	db, err := postgres.Open(context.Background(), pg.DSN(pg.NewDatabase(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchAppendEvents(b, db)
}
