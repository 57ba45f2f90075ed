package access

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/secrets"
)

// BenchmarkGrantRole measures what grant activation adds on a resource
// with ephemeral credentials, on a real PostgreSQL and the SQLite store:
// the db.role.created audit event, the role (pgprovision.Create), its
// sealed password and its db_roles row (ensureDBRole). Run with
// -benchtime 200x for the 200 grants; p50 and p99 are reported.
// The provisioning connection is kept (pgprovision.Pools), as the server
// keeps it; BenchmarkGrantRoleNoPool dials it anew for every Create, as
// before.
func BenchmarkGrantRole(b *testing.B) { benchGrantRole(b, true) }

// BenchmarkGrantRoleNoPool is BenchmarkGrantRole with a new provisioning
// connection for every Create: the figure before the pool, to compare.
func BenchmarkGrantRoleNoPool(b *testing.B) { benchGrantRole(b, false) }

func benchGrantRole(b *testing.B, pooled bool) {
	svc, store, r, sfx, clk, _ := benchEphemeral(b)
	if pooled {
		usePools(b, svc)
	}
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		now := clk.now()
		g := &airlock.Grant{ID: fmt.Sprintf("gr_b%s_%07d", sfx, i), RequestID: fmt.Sprintf("req_b%07d", i), UserID: "usr_a", UserName: "alice",
			Resource: r.Name, Access: "read", StartsAt: now, EndsAt: now.Add(time.Hour), State: airlock.GrantActive, CreatedAt: now}
		if err := store.CreateGrant(ctx, g); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := svc.ensureDBRole(ctx, g, r); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkReconcile500 measures ReconcileDBRoles dropping 500 stray
// airlock_ roles (made in bulk as the provisioning role would, recorded
// nowhere): terminate, drop and two audit events each.
func BenchmarkReconcile500(b *testing.B) { benchReconcile(b, 500) }

// BenchmarkReconcile10k is the figure: 10,000 stray roles.
func BenchmarkReconcile10k(b *testing.B) { benchReconcile(b, 10000) }

func benchReconcile(b *testing.B, n int) {
	svc, _, _, sfx, _, asProv := benchEphemeral(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		prefix := fmt.Sprintf("airlock_stray_%s_%d_", sfx, i)
		asProv(fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%[2]d LOOP
  EXECUTE format('CREATE ROLE %%I LOGIN', '%[1]s' || i);
  EXECUTE format('GRANT %%I TO CURRENT_USER', '%[1]s' || i);
END LOOP; END $$;`, prefix, n))
		b.StartTimer()
		got, err := svc.ReconcileDBRoles(ctx)
		if err != nil || got != n {
			b.Fatalf("reconcile: %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*n), "ms/role")
}

// usePools makes svc keep its provisioning connections in a
// pgprovision.Pools (closed at the end of tb), told of rotations.
func usePools(tb testing.TB, svc *Service) *pgprovision.Pools {
	pools := &pgprovision.Pools{}
	tb.Cleanup(pools.Close)
	dial := svc.provision
	svc.provision = func(r *airlock.Resource, c *Credential) DBProvisioner {
		p := dial(r, c).(*pgprovision.Provisioner)
		cfg, err := pgx.ParseConfig(provURL(c, r))
		if err != nil {
			tb.Fatal(err)
		}
		_, pending := r.Credentials[airlock.NextProvisionerCredential]
		p.Acquire = pools.Acquirer(r.Name, cfg, "", !pending)
		return p
	}
	svc.provChange = pools.Forget
	return pools
}

// provURL is the provisioning connection's URL for c on r.
func provURL(c *Credential, r *airlock.Resource) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", c.User, c.Password.Reveal(), r.Addr, Databases(r)[0])
}

// benchEphemeral is a service with an ephemeral resource on a real
// PostgreSQL, and a function that runs SQL there as its provisioning role.
func benchEphemeral(b testing.TB) (*Service, airlock.Store, *airlock.Resource, string, *clock, func(sql string)) {
	pg := testenv.Postgres(b)
	db := pg.NewDatabase(b)
	sfx := strings.TrimPrefix(db, "t_")
	prov, read, owner := "bprov_"+sfx, "bread_"+sfx, "bowner_"+sfx
	pg.Exec(b, db, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN CREATEROLE PASSWORD 'provpw';
		CREATE ROLE %[2]s NOLOGIN; CREATE ROLE %[3]s NOLOGIN;
		GRANT %[2]s, %[3]s TO %[1]s WITH ADMIN OPTION;`, prov, read, owner))
	clk := &clock{t: time.Now()}
	svc, store, _ := newTestService(b, clk)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	svc.sealer = kr
	svc.provision = func(_ *airlock.Resource, c *Credential) DBProvisioner {
		return &pgprovision.Provisioner{Connect: func(ctx context.Context, d string) (*pgx.Conn, error) {
			if d == "" {
				d = db
			}
			return pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", c.User, c.Password.Reveal(), pg.Host, pg.Port, d))
		}}
	}
	r, err := svc.build(ResourceInput{Name: "bench-db", Kind: airlock.KindPostgres, Addr: fmt.Sprintf("%s:%d", pg.Host, pg.Port),
		Options:     ResourceOptions{Database: db, Credentials: "ephemeral", Owner: owner, Templates: map[string]string{"read": read}},
		Provisioner: &CredentialInput{User: prov, Password: "provpw"}}, "api")
	if err != nil {
		b.Fatal(err)
	}
	if err := store.CreateResource(context.Background(), r); err != nil {
		b.Fatal(err)
	}
	asProv := func(sql string) {
		c, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://%s:provpw@%s:%d/%s?sslmode=disable", prov, pg.Host, pg.Port, db))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
	return svc, store, r, sfx, clk, asProv
}
