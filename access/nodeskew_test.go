package access

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

// TestNodeClockSkewAcrossReplicas: two replicas on one PostgreSQL whose
// wall clocks disagree by more than LostAfter. The replica whose clock runs
// ahead must not take the other, beating all along, for a lost node and end
// its live sessions as node_lost: liveness is judged on the store's clock.
func TestNodeClockSkewAcrossReplicas(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	ctx := t.Context()
	open := func(node string, wall func() time.Time) (*Service, *postgres.DB) {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		al, err := audit.Open(ctx, db, audit.Options{Signer: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { al.Close(context.Background()) })
		svc, err := New(ctx, Deps{Store: db, Audit: al})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.StartNode(ctx, Liveness{Node: node, Identity: node + ":/data", Interval: 100 * time.Millisecond,
			LostAfter: time.Second, Wall: wall}); err != nil {
			t.Fatal(err)
		}
		return svc, db
	}
	ahead, _ := open("ahead", func() time.Time { return time.Now().Add(10 * time.Second) })
	behind, db := open("behind", time.Now)
	x := mkSession(t, db, "behind")
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, s := range []*Service{ahead, behind} {
			if s.beat(ctx) == nil {
				s.reapLost(ctx)
			}
		}
		time.Sleep(100 * time.Millisecond) // real time must pass: staleness is judged on PostgreSQL's clock
	}
	wantEnded(t, db, x, false)
}
