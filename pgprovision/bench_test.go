package pgprovision

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/testenv"
)

// BenchmarkCreate measures making one grant's role (connect as the
// provisioning role, CREATE ROLE … IN ROLE template, GRANT): what grant
// activation adds on an ephemeral resource, less a seal and a store row.
// Run with -benchtime 200x for the 200 grants.
func BenchmarkCreate(b *testing.B) {
	_, db, p := setup(b)
	tmpl := "app_read_" + strings.TrimPrefix(db, "t_")
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := p.Create(ctx, Role{Name: RoleName("alice", fmt.Sprintf("gr_bench_%d", i)), Template: tmpl, ValidTo: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	testenv.ReportLatencies(b, ds)
}

// BenchmarkTerminate100 measures revoke → every backend of a role gone:
// 100 sessions logged in as the role, then Terminate, until
// pg_stat_activity shows none of them.
func BenchmarkTerminate100(b *testing.B) {
	pg, db, p := setup(b)
	tmpl := "app_read_" + strings.TrimPrefix(db, "t_")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		role := RoleName("alice", fmt.Sprintf("gr_term_%d", i))
		pw, err := p.Create(ctx, Role{Name: role, Template: tmpl, ValidTo: time.Now().Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		conns := make([]*pgx.Conn, 100)
		var wg sync.WaitGroup
		for j := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := login(ctx, pg, db, role, pw.Reveal(), "bench")
				if err != nil {
					b.Error(err)
					return
				}
				conns[j] = c
			}()
		}
		wg.Wait()
		b.StartTimer()
		t0 := time.Now()
		if _, err := p.Terminate(ctx, role); err != nil {
			b.Fatal(err)
		}
		for {
			var n int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		ds = append(ds, time.Since(t0))
		b.StopTimer()
		for _, c := range conns {
			if c != nil {
				c.Close(ctx)
			}
		}
		if err := p.Drop(ctx, role, "", []string{db}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	testenv.ReportLatencies(b, ds)
}
