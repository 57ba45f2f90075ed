package access

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// TestBusAcrossReplicas pins invariant 3 across replicas: a revocation
// published on one server's bus reaches the gateways subscribed on another
// through PostgreSQL LISTEN/NOTIFY, and a replica ignores its own echo.
func TestBusAcrossReplicas(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var buses [2]*Bus
	got := [2]chan airlock.Revocation{make(chan airlock.Revocation, 4), make(chan airlock.Revocation, 4)}
	for i := range buses {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		b := &Bus{}
		i := i
		b.Subscribe(func(r airlock.Revocation) { got[i] <- r })
		ready := make(chan struct{})
		stopped := b.replicate(ctx, []string{"node-a", "node-b"}[i], db, slog.New(slog.DiscardHandler), ready)
		// The listener holds a pooled connection: stop it before Close.
		t.Cleanup(func() { cancel(); <-stopped; db.Close() })
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("subscriber not listening")
		}
		buses[i] = b
	}
	buses[0].Publish(airlock.Revocation{GrantID: "gr_1", Reason: airlock.EndGrantRevoked})
	for i, want := range []int{1, 1} {
		for n := 0; n < want; n++ {
			select {
			case r := <-got[i]:
				if r.GrantID != "gr_1" || r.Reason != airlock.EndGrantRevoked {
					t.Fatalf("node %d got %+v", i, r)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("node %d: revocation not delivered", i)
			}
		}
	}
	// node-a must not see its own revocation a second time.
	select {
	case r := <-got[0]:
		t.Fatalf("node-a received its own echo: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	buses[0].receive([]byte("not json"))
	buses[0].receive([]byte(`{"reason":"empty"}`))
	// The end reason is a closed set: another replica cannot make a
	// session end with a word of its choosing.
	buses[0].receive([]byte(`{"grant_id":"gr_1","reason":"anything at all","origin":"node-x"}`))
	select {
	case r := <-got[0]:
		t.Fatalf("bad payload delivered: %+v", r)
	default:
	}
}
