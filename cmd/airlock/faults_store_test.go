package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

// The TestFaults… tests break what Airlock stands on — the store, a
// replica — and check that it recovers by itself: /readyz turns 200 again
// with no traffic, no session is left "active" without a live node holding
// it (and each has exactly one session.ended event), and `airlock audit
// verify` exits 0. `go test -run TestFaults ./cmd/airlock` runs the group.
//
// Replicas run as processes of their own (this test binary re-executing
// main), on the real clock, so that they can be killed with SIGKILL.

// Fast liveness for the fault tests: a replica silent for 2 s is lost.
const (
	faultHeartbeat = 250 * time.Millisecond
	faultLostAfter = 2 * time.Second
	// readyBound is the bound for /readyz to recover after the
	// store returns; faultSlack is what a loaded 2-core CI machine gets on
	// top before the test fails (the measured figure is logged).
	readyBound = 5 * time.Second
	faultSlack = 10 * time.Second
)

// faultEnv is a team, a postgres resource and an active write grant for
// alice, in a PostgreSQL store on a cluster of the test's own (so it can
// be crashed), with a data dir whose keys the replicas share.
type faultEnv struct {
	store   *testenv.PG
	dsn     string
	dataDir string // set-up data dir; replicas copy it
	tm      *team
	grant   airlock.Grant
}

// setupFaults prepares a faultEnv with an in-process server whose clock
// runs 10 minutes behind, then stops it: the TOTP steps the set-up uses
// are all in the past, so each user can prove a fresh code on the real
// clock of the replica processes once.
func setupFaults(t *testing.T) *faultEnv {
	t.Helper()
	needOathtool(t)
	needPsql(t)
	store := testenv.PrivatePostgres(t)
	store.Exec(t, "postgres", "CREATE DATABASE airlock")
	target := testenv.Postgres(t)
	db := target.NewDatabase(t)
	ensureAppRW(t, target)
	target.Exec(t, db, `CREATE TABLE items (id int); GRANT SELECT, INSERT ON items TO app_rw;`)

	e := &faultEnv{store: store, dsn: store.DSN("airlock"), dataDir: filepath.Join(t.TempDir(), "setup")}
	clk := &fakeClock{t: time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)}
	h := startHarness(t, e.dataDir, clk, func(c *serverConfig) { c.Store = e.dsn })
	e.tm = setupTeam(t, h, pgPolicy)
	t.Setenv("FAULT_RW_PW", pgRWPassword)
	h.must(e.tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(target.Host, strconv.Itoa(target.Port)), "--database", db, "--credential", "write=app_rw:env:FAULT_RW_PW")
	e.grant = h.grant(e.tm, "prod-db", "write")
	h.stop()
	return e
}

// replica is an airlock server process on the fault env's store.
type replica struct {
	t      *testing.T
	name   string
	dir    string
	url    string
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{}
	waited error
}

// startReplica starts a replica with its own copy of the set-up data dir
// (dir, created on first use) and waits until it answers /healthz.
func (e *faultEnv) startReplica(t *testing.T, name, dir string) *replica {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		copyDir(t, e.dataDir, dir)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	r := &replica{t: t, name: name, dir: dir, url: "http://" + httpAddr, out: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(self, "server", "--data-dir", dir, "--store", e.dsn, "--http-addr", httpAddr, "--pg-addr", freeAddr(t),
		"--ssh-addr", "", "--http-apps-addr", "", "--kube-addr", "", "--mysql-addr", "", "--node-heartbeat", faultHeartbeat.String(), "--node-lost-after", faultLostAfter.String())
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "AIRLOCK_") {
			env = append(env, kv)
		}
	}
	r.cmd.Env = append(env, execMainEnv+"=1")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start replica %s: %v", name, err)
	}
	go func() { r.waited = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, r.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(r.url + "/healthz"); err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("replica %s exited: %v\n%s", name, r.waited, r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not start within 30 s:\n%s", name, r.out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling another process
	}
}

// kill sends SIGKILL to the replica's process group and waits for it.
func (r *replica) kill() {
	select {
	case <-r.done:
		return
	default:
	}
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// cli drives the real CLI against this replica.
func (r *replica) cli() *harness {
	return &harness{t: r.t, url: r.url, dataDir: r.dir, clock: &fakeClock{t: time.Now()}}
}

// readyz returns /readyz's status code and body.
func (r *replica) readyz() (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(r.url + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitReady polls /readyz (and nothing else) until it answers 200 and
// returns how long that took; it fails the test after limit.
func (r *replica) waitReady(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	if took := r.pollReady(limit); took >= 0 {
		return took
	}
	code, body := r.readyz()
	t.Fatalf("replica %s: /readyz still %d %q after %v", r.name, code, body, limit)
	return 0
}

// home returns a client home for the user of home talking to this
// replica: a copy of its login state naming the replica's URL (the login
// session lives in the shared store, as behind a load balancer).
func (r *replica) home(t *testing.T, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st["server"] = r.url
	b, _ = json.Marshal(st)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "session.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pollReady polls /readyz (and nothing else) every 100 ms until it
// answers 200 and returns how long that took, or -1 after limit.
func (r *replica) pollReady(limit time.Duration) time.Duration {
	start := time.Now()
	if testenv.PollEvery(100*time.Millisecond, limit, func() bool { code, _ := r.readyz(); return code == http.StatusOK }) {
		return time.Since(start)
	}
	return -1
}

// verifyMFA gives home's login session a fresh second factor, on the real
// clock, through this replica.
func (r *replica) verifyMFA(t *testing.T, home, secret string) {
	t.Helper()
	r.cli().must(r.home(t, home), "", "mfa", "verify", "--otp", totp(t, secret, time.Now()))
}

// openStore opens the env's store directly, to look at what the replicas
// left in it.
func (e *faultEnv) openStore(t *testing.T) airlock.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitNoGhosts waits until no session is active in the store and returns
// how long that took; then it checks that every session.started has
// exactly one session.ended event, whose end_reason is the session's.
func (e *faultEnv) waitNoGhosts(t *testing.T, s airlock.Store, limit time.Duration) time.Duration {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	for {
		act, err := s.ListSessions(ctx, airlock.SessionFilter{Active: true})
		if err == nil && len(act) == 0 {
			break
		}
		if time.Since(start) > limit {
			t.Fatalf("%d sessions still active %v after the fault (err %v): %s", len(act), limit, err, sessionSummary(act))
		}
		time.Sleep(100 * time.Millisecond) // polling what other processes (the replicas) do
	}
	took := time.Since(start)
	all, err := s.ListSessions(ctx, airlock.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// session.ended may be retried after the row: give it the same time.
	deadline := time.Now().Add(limit)
	for {
		missing := checkEndEvents(t, s, all)
		if missing == "" {
			return took
		}
		if time.Now().After(deadline) {
			t.Fatal(missing)
		}
		time.Sleep(100 * time.Millisecond) // polling what other processes (the replicas) do
	}
}

// checkEndEvents fails the test on a duplicate or wrong session.ended and
// returns a description of missing ones ("" when none is missing).
func checkEndEvents(t *testing.T, s airlock.Store, sessions []*airlock.Session) string {
	t.Helper()
	ended := map[string][]airlock.Event{}
	evs, err := s.ListEvents(t.Context(), airlock.EventFilter{Action: "session.ended"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		ended[e.SessionID] = append(ended[e.SessionID], e)
	}
	var missing []string
	for _, x := range sessions {
		switch got := ended[x.ID]; len(got) {
		case 0:
			missing = append(missing, x.ID+" ("+x.EndReason+")")
		case 1:
			var d struct {
				EndReason string `json:"end_reason"`
			}
			json.Unmarshal(got[0].Details, &d)
			if d.EndReason != x.EndReason {
				t.Fatalf("session %s ended as %q but its session.ended says %q: %s", x.ID, x.EndReason, d.EndReason, got[0].Details)
			}
		default:
			t.Fatalf("session %s has %d session.ended events", x.ID, len(got))
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("sessions without a session.ended event: %v", missing)
	}
	return ""
}

func sessionSummary(ss []*airlock.Session) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %s node=%s started=%s ended=%v reason=%q", s.ID, s.Node, s.StartedAt.Format(time.RFC3339), s.EndedAt, s.EndReason)
	}
	return b.String()
}

// auditVerify runs `airlock audit verify` as a process and requires exit 0.
func auditVerify(t *testing.T, r *replica, admin string) {
	t.Helper()
	out, err := r.cli().runProc(r.home(t, admin), nil, "audit", "verify")
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("airlock audit verify: %v\n%s", err, out)
	}
}

// livePsql starts `airlock psql` through replica r as alice and waits for
// its first result.
func livePsql(t *testing.T, r *replica, alice string) (*cliProc, *io.PipeWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	p := r.cli().startProc(r.home(t, alice), pr, nil, "psql", "prod-db", "--access", "write", "--", "-X", "-A", "-t")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("psql through %s:\n%s", r.name, p.out.String())
		}
	})
	pw.Write([]byte("select 'alive';\n"))
	waitFor(t, func() bool { return strings.Contains(p.out.String(), "alive") })
	return p, pw
}

// TestFaultsStoreCrash: two replicas on one PostgreSQL store, each holding
// a live psql session, when the store crashes (pg_ctl stop -m immediate).
// The sessions close (their statements cannot be audited: fail closed) and
// the ends that could not be written are retried; once the store is back,
// /readyz of both replicas turns 200 by itself — nothing but /readyz
// reaches them — every session is ended with its session.ended event, and
// the audit log verifies.
func TestFaultsStoreCrash(t *testing.T) {
	e := setupFaults(t)
	base := t.TempDir()
	a := e.startReplica(t, "A", filepath.Join(base, "a"))
	b := e.startReplica(t, "B", filepath.Join(base, "b"))
	a.waitReady(t, 15*time.Second)
	b.waitReady(t, 15*time.Second)
	a.verifyMFA(t, e.tm.admin, e.tm.adminSecret)
	a.verifyMFA(t, e.tm.alice, e.tm.aliceSecret)
	psqlA, inA := livePsql(t, a, e.tm.alice)
	psqlB, inB := livePsql(t, b, e.tm.alice)

	e.store.Crash(t)
	// A statement on each session: its event cannot be written, so the
	// session closes and the replica's audit log turns unhealthy.
	for _, in := range []*io.PipeWriter{inA, inB} {
		go func() { in.Write([]byte("select 'during';\n")); in.Close() }()
	}
	for _, p := range []*cliProc{psqlA, psqlB} {
		if !p.exited() {
			t.Fatalf("psql still running with the store down:\n%s", p.out.String())
		}
	}
	for _, r := range []*replica{a, b} {
		waitFor(t, func() bool { return strings.Contains(r.out.String(), "audit: write failed") })
		if code, body := r.readyz(); code == http.StatusOK {
			t.Fatalf("replica %s ready with the store down: %s", r.name, body)
		}
	}

	e.store.Start(t)
	restarted := time.Now()
	readyA := make(chan time.Duration, 1)
	go func() { readyA <- a.pollReady(readyBound + faultSlack) }()
	tookB := b.pollReady(readyBound + faultSlack)
	tookA := <-readyA
	for _, x := range []struct {
		r    *replica
		took time.Duration
	}{{a, tookA}, {b, tookB}} {
		if x.took < 0 {
			code, body := x.r.readyz()
			t.Fatalf("replica %s: /readyz still %d %q %v after the store came back", x.r.name, code, body, readyBound+faultSlack)
		}
		t.Logf("replica %s: /readyz 200 %v after the store accepted connections again (bound %v), with no other traffic",
			x.r.name, x.took.Round(10*time.Millisecond), readyBound)
	}
	s := e.openStore(t)
	e.waitNoGhosts(t, s, 15*time.Second)
	t.Logf("no active session, each with its session.ended, %v after the store came back", time.Since(restarted).Round(10*time.Millisecond))
	ss, err := s.ListSessions(t.Context(), airlock.SessionFilter{})
	if err != nil || len(ss) != 2 {
		t.Fatalf("sessions: %v %s", err, sessionSummary(ss))
	}
	for _, x := range ss {
		// Both nodes lived through the outage: each ended its own
		// session (retrying the write); neither may call the other lost.
		if x.EndReason == string(airlock.EndNodeLost) || !airlock.EndReason(x.EndReason).Valid() {
			t.Errorf("session %s on %s ended as %q; its own, live node must end it", x.ID, x.Node, x.EndReason)
		}
	}
	if rec, err := s.ListEvents(t.Context(), airlock.EventFilter{Action: "audit.recovered"}); err == nil {
		t.Logf("%d audit.recovered events (the readiness probe's write; a retried session end may restore the log first)", len(rec))
	}
	auditVerify(t, a, e.tm.admin)
}

// TestFaultsReplicaKill: replica B is killed with SIGKILL while pgbench
// runs three sessions through it. Replica A ends B's sessions as node_lost
// once B has been silent for --node-lost-after (each with one
// session.ended event, actor system, naming B), A stays ready throughout,
// B starts again on its data dir, and the audit log verifies.
func TestFaultsReplicaKill(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pgbench is not installed (apt-get install postgresql: pgbench ships with the server package)")
		}
		t.Skip("pgbench not installed; skipping")
	}
	e := setupFaults(t)
	base := t.TempDir()
	a := e.startReplica(t, "A", filepath.Join(base, "a"))
	b := e.startReplica(t, "B", filepath.Join(base, "b"))
	a.waitReady(t, 15*time.Second)
	b.waitReady(t, 15*time.Second)
	a.verifyMFA(t, e.tm.admin, e.tm.adminSecret)
	a.verifyMFA(t, e.tm.alice, e.tm.aliceSecret)

	// pgbench → airlock connect (alice's local listener) → B's gateway.
	port := freeAddr(t)[len("127.0.0.1:"):]
	conn := b.cli().startProc(b.home(t, e.tm.alice), nil, nil, "connect", "prod-db", "--access", "write", "--port", port)
	waitFor(t, func() bool { return strings.Contains(conn.out.String(), "Listening on") })
	script := filepath.Join(t.TempDir(), "bench.sql")
	os.WriteFile(script, []byte("SELECT count(*) FROM items;\nINSERT INTO items VALUES (1);\n"), 0o600)
	const clients = 3 // the default max_concurrent sessions of a grant
	bench := exec.Command("pgbench", "-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", "60", "-f", script,
		"-h", "127.0.0.1", "-p", port, "-U", "alice", "prod-db")
	var benchEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			benchEnv = append(benchEnv, kv)
		}
	}
	bench.Env = benchEnv
	benchOut := &syncBuffer{}
	bench.Stdout, bench.Stderr = benchOut, benchOut
	bench.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan struct{})
	go func() { bench.Wait(); close(benchDone) }()
	t.Cleanup(func() {
		syscall.Kill(-bench.Process.Pid, syscall.SIGKILL)
		<-benchDone
		if t.Failed() {
			t.Logf("pgbench:\n%s\nairlock connect:\n%s", benchOut.String(), conn.out.String())
		}
	})

	s := e.openStore(t)
	ctx := t.Context()
	var onB []*airlock.Session
	waitFor(t, func() bool {
		act, err := s.ListSessions(ctx, airlock.SessionFilter{Active: true})
		onB = act
		return err == nil && len(act) == clients
	})
	// Load is flowing: statements are being audited.
	before, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { h, err := s.AuditHead(ctx); return err == nil && h.Seq > before.Seq+20 })

	b.kill()
	killed := time.Now()
	e.waitNoGhosts(t, s, faultLostAfter+faultSlack)
	t.Logf("all %d sessions of the killed replica ended %v after SIGKILL (lost after %v, heartbeat %v)",
		clients, time.Since(killed).Round(10*time.Millisecond), faultLostAfter, faultHeartbeat)
	for _, x := range onB {
		got, err := s.SessionByID(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.EndReason != string(airlock.EndNodeLost) || got.Node != x.Node {
			t.Fatalf("session %s of the killed replica: %+v, want ended as node_lost", x.ID, got)
		}
	}
	evs, err := s.ListEvents(ctx, airlock.EventFilter{Action: "session.ended"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		var d struct {
			EndReason string `json:"end_reason"`
			Node      string `json:"node"`
			EndedBy   string `json:"ended_by"`
		}
		json.Unmarshal(ev.Details, &d)
		if d.EndReason == string(airlock.EndNodeLost) && (ev.Actor != airlock.SystemActor || d.Node == "" || d.EndedBy == "" || d.EndedBy == d.Node) {
			t.Fatalf("node_lost event not by system on another node: actor %+v details %s", ev.Actor, ev.Details)
		}
	}
	if code, body := a.readyz(); code != http.StatusOK {
		t.Fatalf("replica A not ready after B was killed: %d %s", code, body)
	}
	// B starts again on its data dir and is ready.
	b2 := e.startReplica(t, "B again", b.dir)
	b2.waitReady(t, 15*time.Second)
	auditVerify(t, a, e.tm.admin)
}
