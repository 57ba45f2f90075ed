package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestE2EReplicasRevocation runs two airlock servers on one PostgreSQL
// store (replicas sharing a data dir's keys, as a team would deploy them).
// alice holds a live psql session through replica B's gateway; revoking her
// grant on replica A cuts it through LISTEN/NOTIFY (invariant 3 across
// replicas), with the FATAL message.
func TestE2EReplicasRevocation(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	target := pg.NewDatabase(t)
	storeDSN := pg.DSN(pg.NewDatabase(t))
	ensureAppRW(t, pg)
	pg.Exec(t, target, `CREATE TABLE items (id int); GRANT SELECT, INSERT ON items TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	dirA := filepath.Join(t.TempDir(), "a")
	a := startHarness(t, dirA, clk, func(c *serverConfig) { c.Store = storeDSN; c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, a, pgPolicy)
	t.Setenv("REPL_RW_PW", pgRWPassword)
	a.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", target,
		"--credential", "write=app_rw:env:REPL_RW_PW")
	g := a.grant(tm, "prod-db", "write")

	// Replica B: same store, same keys (a copy of A's data dir).
	dirB := filepath.Join(t.TempDir(), "b")
	copyDir(t, dirA, dirB)
	b := startHarness(t, dirB, clk, func(c *serverConfig) { c.Store = storeDSN; c.PGAddr = freeAddr(t) })
	aliceB := t.TempDir()
	b.step()
	b.must(aliceB, "alice password 1\n", "login", "--user", "alice", "--password-stdin", "--otp", totp(t, tm.aliceSecret, clk.Now()))

	pr, pw := io.Pipe()
	defer pw.Close()
	live := b.startProc(aliceB, pr, nil, "psql", "prod-db", "--access", "write", "--", "-X", "-A", "-t")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("live psql output:\n%s", live.out.String())
		}
	})
	pw.Write([]byte("select 'alive';\n"))
	waitFor(t, func() bool { return strings.Contains(live.out.String(), "alive") })

	out := a.must(tm.alice, "", "revoke", g.ID, "--reason", "replica test")
	if !strings.Contains(out, "Revoked") {
		t.Fatalf("revoke on replica A: %s", out)
	}
	// The revocation crosses replicas asynchronously: wait until B has
	// ended the session (recorded in the shared store), then try to use it.
	waitFor(t, func() bool {
		for _, s := range a.sessions(tm.alice, false) {
			if s.GrantID == g.ID && !s.Active() && s.EndReason == string(airlock.EndGrantRevoked) {
				return true
			}
		}
		return false
	})
	go func() { pw.Write([]byte("select 'after';\n")); pw.Close() }()
	if !live.exited() {
		t.Fatal("psql through replica B still running after revoke on replica A")
	}
	if !strings.Contains(live.out.String(), airlock.EndGrantRevoked.Text()) || strings.Contains(live.out.String(), "after") {
		t.Fatalf("psql through replica B after revoke:\n%s", live.out.String())
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(to, "recordings"), 0o700)
}
