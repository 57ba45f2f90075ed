package access

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sqlite"
)

// downAuditor is an audit log that cannot be written.
type downAuditor struct{}

func (downAuditor) Record(context.Context, airlock.Event) (int64, error) {
	return 0, errors.New("disk full")
}

// TestAuditDownRefusesExpiryRecord pins invariant 7 for the sweeper: when
// the audit log cannot take grant.expired, no grant changes state and no
// revocation is published (the grant is still inactive by ends_at).
func TestAuditDownRefusesExpiryRecord(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0.Add(2 * time.Hour)}
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := New(ctx, Deps{Store: store, Audit: downAuditor{}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	seedGrants(t, store, 3, t0, t0.Add(time.Hour))
	published := 0
	svc.Bus().Subscribe(func(airlock.Revocation) { published++ })
	if n, _ := svc.Sweep(ctx); n != 0 {
		t.Fatalf("sweep expired %d grants with the audit log down", n)
	}
	if published != 0 {
		t.Fatalf("%d revocations published with the audit log down", published)
	}
	g, err := store.GrantByID(ctx, "gr_0000001")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != airlock.GrantActive || g.ActiveAt(clk.now()) {
		t.Fatalf("grant state %s, active %v: want stored active but inactive by ends_at", g.State, g.ActiveAt(clk.now()))
	}
}
