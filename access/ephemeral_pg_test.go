package access

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/secrets"
)

// TestReconcileBatchPG: ReconcileDBRoles on a real PostgreSQL drops stray
// roles in batches — one whose name has quotes and unicode, one that owns a
// table (kept, reassigned to the owner) — and leaves one it cannot drop (it
// owns a table in a database outside the resource's), with events per
// role: terminated for all four, dropped for the three, and for the fourth
// one drop_failed and no dropped.
func TestReconcileBatchPG(t *testing.T) {
	svc, store, r, sfx, _, asProv := benchEphemeral(t)
	ctx := context.Background()
	pg := testenv.Postgres(t)
	db, owner := Options(r).Database, Options(r).Owner
	quoted := `airlock_o"brien'; DROP ROLE postgres; -- zoë 日本`
	owning, plain, stuck := "airlock_owning_"+sfx, "airlock_plain_"+sfx, "airlock_stuck_"+sfx
	for _, n := range []string{quoted, owning, plain, stuck} {
		q := pgx.Identifier{n}.Sanitize()
		asProv("CREATE ROLE " + q + " LOGIN; GRANT " + q + " TO CURRENT_USER")
	}
	pg.Exec(t, db, "CREATE TABLE owned_by_stray (x int); ALTER TABLE owned_by_stray OWNER TO "+pgx.Identifier{owning}.Sanitize())
	other := pg.NewDatabase(t)
	pg.Exec(t, other, "CREATE TABLE elsewhere (x int); ALTER TABLE elsewhere OWNER TO "+pgx.Identifier{stuck}.Sanitize())

	n, err := svc.ReconcileDBRoles(ctx)
	if err != nil || n != 3 {
		t.Fatalf("reconcile: %d, %v; want 3", n, err)
	}
	su, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	var left []string
	rows, err := su.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, 'airlock_') ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != fmt.Sprint([]string{stuck}) {
		t.Fatalf("roles left %q; want only %s", left, stuck)
	}
	var tableOwner string
	if err := su.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_stray'").Scan(&tableOwner); err != nil || tableOwner != owner {
		t.Fatalf("owned_by_stray: owner %q, %v; want %s", tableOwner, err, owner)
	}
	byAction := func(action string) map[string]int {
		evs, err := store.ListEvents(ctx, airlock.EventFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, e := range evs {
			var d struct{ Role string }
			if err := json.Unmarshal(e.Details, &d); err != nil {
				t.Fatal(err)
			}
			out[d.Role]++
		}
		return out
	}
	want := func(action string, m map[string]int) {
		t.Helper()
		if got := byAction(action); fmt.Sprint(got) != fmt.Sprint(m) {
			t.Fatalf("%s events per role %v; want %v", action, got, m)
		}
	}
	want("db.role.terminated", map[string]int{quoted: 1, owning: 1, plain: 1, stuck: 1})
	want("db.role.dropped", map[string]int{quoted: 1, owning: 1, plain: 1})
	want("db.role.drop_failed", map[string]int{stuck: 1})

	// Again: the stuck role fails again, without a second alert; once
	// what blocked it is gone it is dropped.
	if n, err := svc.ReconcileDBRoles(ctx); err != nil || n != 0 {
		t.Fatalf("reconcile again: %d, %v; want 0", n, err)
	}
	want("db.role.drop_failed", map[string]int{stuck: 1})
	pg.Exec(t, other, "DROP TABLE elsewhere")
	if n, err := svc.ReconcileDBRoles(ctx); err != nil || n != 1 {
		t.Fatalf("reconcile after the fix: %d, %v; want 1", n, err)
	}
	want("db.role.dropped", map[string]int{quoted: 1, owning: 1, plain: 1, stuck: 1})
}

// TestPooledProvisionerRotationPG: with the provisioning connection kept
// (pgprovision.Pools), a rotated credential is what the next Create logs
// in with: the connection kept with the old one is closed, and a new one
// made, whether the rotation is announced (Forget, this server) or only
// seen in the store (another replica rotated).
func TestPooledProvisionerRotationPG(t *testing.T) {
	for _, announced := range []bool{false, true} {
		t.Run(fmt.Sprintf("announced=%v", announced), func(t *testing.T) {
			svc, store, r, sfx, clk, _ := benchEphemeral(t)
			pools := usePools(t, svc)
			ctx := context.Background()
			pg := testenv.Postgres(t)
			su, err := pgx.Connect(ctx, pg.DSN(Options(r).Database))
			if err != nil {
				t.Fatal(err)
			}
			defer su.Close(context.Background())
			prov := "bprov_" + sfx
			backends := func() []int {
				rows, err := su.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE usename = $1 ORDER BY 1", prov)
				if err != nil {
					t.Fatal(err)
				}
				pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
				if err != nil {
					t.Fatal(err)
				}
				return pids
			}
			grant := func(i int) {
				t.Helper()
				now := clk.now()
				g := &airlock.Grant{ID: fmt.Sprintf("gr_rot%s_%d", sfx, i), RequestID: fmt.Sprintf("req_rot%d", i), UserID: "usr_a", UserName: "alice",
					Resource: r.Name, Access: "read", StartsAt: now, EndsAt: now.Add(time.Hour), State: airlock.GrantActive, CreatedAt: now}
				if err := store.CreateGrant(ctx, g); err != nil {
					t.Fatal(err)
				}
				if _, err := svc.ensureDBRole(ctx, g, r); err != nil {
					t.Fatalf("grant %d: %v", i, err)
				}
			}
			grant(1)
			old := backends()
			if len(old) != 1 {
				t.Fatalf("backends of %s after a Create: %v; want the one kept", prov, old)
			}
			grant(2)
			if again := backends(); fmt.Sprint(again) != fmt.Sprint(old) {
				t.Fatalf("backends after a second Create %v; want the kept one %v", again, old)
			}

			// Rotate as RotateProvisioner does: the new password set through
			// the provisioner, then sealed in the stored resource.
			p, err := svc.provisioner(r)
			if err != nil {
				t.Fatal(err)
			}
			newPW := secrets.Secret(strings.Repeat("n", 40))
			if err := p.SetPassword(ctx, newPW); err != nil {
				t.Fatal(err)
			}
			plain, _ := json.Marshal(sealedCredential{User: prov, Password: newPW.Reveal()})
			if r.Credentials[airlock.ProvisionerCredential], err = svc.sealer.Seal(plain, credAAD(r.Name, airlock.ProvisionerCredential)); err != nil {
				t.Fatal(err)
			}
			if err := store.UpdateResource(ctx, r); err != nil {
				t.Fatal(err)
			}
			if announced {
				pools.Forget(r.Name)
			}
			grant(3)
			gone := testenv.Poll(10*time.Second, func() bool {
				for _, pid := range backends() {
					if pid == old[0] {
						return false
					}
				}
				return true
			})
			if !gone {
				t.Fatalf("the connection kept with the old password (pid %d) is still open after the rotation and a Create: %v", old[0], backends())
			}
			if now := backends(); len(now) != 1 {
				t.Fatalf("backends after the rotation's Create: %v; want one new", now)
			}
		})
	}
}
