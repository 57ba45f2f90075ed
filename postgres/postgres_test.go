package postgres_test

import (
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/storetest"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// openFresh opens a store on a new, empty database of the test cluster.
func openFresh(t testing.TB) (*postgres.DB, *testenv.PG, string) {
	t.Helper()
	pg := testenv.Postgres(t)
	name := pg.NewDatabase(t)
	db, err := postgres.Open(t.Context(), pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, pg, name
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) airlock.Store {
		db, _, _ := openFresh(t)
		return db
	})
}
