package postgres_test

import (
	"context"
	"testing"
	"time"

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

// TestPublishSubscribe: a payload published through one pool reaches a
// subscriber on another (as between two replicas).
func TestPublishSubscribe(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 4)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, "airlock_revocations", func(p string) { got <- p }, ready) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber not listening")
	}
	if err := a.Publish(ctx, "airlock_revocations", `{"grant_id":"gr_1"}`); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != `{"grant_id":"gr_1"}` {
			t.Fatalf("payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("notification not delivered")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
}
