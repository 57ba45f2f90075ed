package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
	"github.com/jackc/pgx/v5"
)

// execMainEnv, when set to 1, makes the test binary run the airlock CLI's
// main instead of the tests: the end-to-end tests re-execute themselves to
// run commands that must be their own process (`airlock psql` replaces the
// process with psql; `airlock ssh` and `airlock connect` run until killed).
const execMainEnv = "AIRLOCK_TEST_EXEC_MAIN"

// fileLimitEnv, "SOFT:HARD", makes the re-executed main run under that
// RLIMIT_NOFILE (set after the Go runtime's own start-up raise, as a
// process started under a low limit would see it).
const fileLimitEnv = "AIRLOCK_TEST_RLIMIT_NOFILE"

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		if v := os.Getenv(fileLimitEnv); v != "" {
			var lim syscall.Rlimit
			if _, err := fmt.Sscanf(v, "%d:%d", &lim.Cur, &lim.Max); err != nil {
				fmt.Fprintf(os.Stderr, "%s=%q: want SOFT:HARD\n", fileLimitEnv, v)
				os.Exit(2)
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				fmt.Fprintf(os.Stderr, "set RLIMIT_NOFILE %s: %v\n", v, err)
				os.Exit(2)
			}
		}
		main()
		os.Exit(0)
	}
	testenv.RunMain(m)
}

// cliProc is a CLI command running as a separate process.
type cliProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr, interleaved
	done chan struct{}
	err  error
}

// command returns the real airlock binary (this test binary re-executing
// main) for the user whose client state is in home, talking to h. The
// child gets HOME=home so nothing touches the real ~/.ssh, and no PG*
// variables from the test's environment.
func (h *harness) command(home string, extraEnv []string, args ...string) *exec.Cmd {
	h.t.Helper()
	self, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"--server", h.url}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "AIRLOCK_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, append([]string{execMainEnv + "=1", "AIRLOCK_HOME=" + home, "HOME=" + home}, extraEnv...)...)
	return cmd
}

// runProc runs the CLI as a process to completion (at most 30 s) and
// returns its combined output.
func (h *harness) runProc(home string, extraEnv []string, args ...string) (string, error) {
	h.t.Helper()
	p := h.startProc(home, nil, extraEnv, args...)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		h.t.Fatalf("airlock %s did not finish within 30 s:\n%s", strings.Join(args, " "), p.out.String())
	}
	return p.out.String(), p.err
}

// startProc starts the CLI as a background process; it is killed when the
// test ends if still running.
func (h *harness) startProc(home string, in io.Reader, extraEnv []string, args ...string) *cliProc {
	h.t.Helper()
	p := &cliProc{cmd: h.command(home, extraEnv, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Stdin = p.out, p.out, in
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill also reaches the ssh it runs
	if err := p.cmd.Start(); err != nil {
		h.t.Fatalf("start airlock %s: %v", strings.Join(args, " "), err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	h.t.Cleanup(p.kill)
	return p
}

// kill ends the process group started by this test and waits for it.
func (p *cliProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exited waits up to 15 s for the process to end and reports whether it did.
func (p *cliProc) exited() bool {
	select {
	case <-p.done:
		return true
	case <-time.After(15 * time.Second):
		return false
	}
}

// team is an admin, a developer (alice, group devs) and a lead (bob,
// group leads), all logged in with TOTP, and a policy applied.
type team struct {
	admin, alice, bob                   string // client homes
	adminSecret, aliceSecret, bobSecret string
}

func setupTeam(t *testing.T, h *harness, policy string) *team {
	t.Helper()
	tm := &team{admin: t.TempDir(), alice: t.TempDir(), bob: t.TempDir()}
	// runServer answers /healthz before it writes the bootstrap token.
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(h.dataDir, "bootstrap.token")); return err == nil })
	tm.adminSecret = h.bootstrapAdmin(tm.admin, "admin", "admin password 1")
	h.must(tm.admin, "alice password 1\nalice password 1\n", "admin", "users", "add", "alice", "--group", "devs", "--password-stdin")
	h.must(tm.admin, "bob password 123\nbob password 123\n", "admin", "users", "add", "bob", "--group", "leads", "--password-stdin")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(tm.admin, "", "policy", "apply", "-f", pol)
	h.must(tm.alice, "alice password 1\n", "login", "--user", "alice", "--password-stdin")
	tm.aliceSecret = h.enrollTOTP(tm.alice)
	h.must(tm.bob, "bob password 123\n", "login", "--user", "bob", "--password-stdin")
	tm.bobSecret = h.enrollTOTP(tm.bob)
	return tm
}

// fresh gives home's session a fresh second factor.
func (h *harness) fresh(home, secret string) {
	h.t.Helper()
	h.step()
	h.must(home, "", "mfa", "verify", "--otp", totp(h.t, secret, h.clock.Now()))
}

// grant has alice request access on resource and bob approve it, and
// returns the active grant.
func (h *harness) grant(tm *team, resource, access string) airlock.Grant {
	h.t.Helper()
	out := h.must(tm.alice, "", "--output", "json", "request", resource, "--access", access, "--for", "1h", "--reason", "INC-7 "+access)
	var res struct {
		Request airlock.AccessRequest `json:"request"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Request.ID == "" {
		h.t.Fatalf("request %s %s: %v\n%s", resource, access, err, out)
	}
	h.step()
	h.must(tm.bob, "", "approve", res.Request.ID, "--comment", "ok", "--otp", totp(h.t, tm.bobSecret, h.clock.Now()))
	var gs []airlock.Grant
	out = h.must(tm.alice, "", "--output", "json", "grants")
	if err := json.Unmarshal([]byte(out), &gs); err != nil {
		h.t.Fatalf("grants: %v\n%s", err, out)
	}
	for _, g := range gs {
		if g.RequestID == res.Request.ID && g.State == airlock.GrantActive {
			return g
		}
	}
	h.t.Fatalf("no active grant for request %s:\n%s", res.Request.ID, out)
	return airlock.Grant{}
}

// sessions returns home's gateway sessions.
func (h *harness) sessions(home string, active bool) []airlock.Session {
	h.t.Helper()
	args := []string{"--output", "json", "sessions"}
	if active {
		args = append(args, "--active")
	}
	out := h.must(home, "", args...)
	var ss []airlock.Session
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		h.t.Fatalf("sessions: %v\n%s", err, out)
	}
	return ss
}

// auditEvents returns the latest 200 audit events with action, read by
// home (an admin) with `airlock audit tail --output json`.
func (h *harness) auditEvents(home, action string) []airlock.Event {
	h.t.Helper()
	out := h.must(home, "", "--output", "json", "audit", "tail", "-n", "200", "--action", action)
	var evs []airlock.Event
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		h.t.Fatalf("audit tail output is not one JSON array: %v\n%s", err, out)
	}
	return evs
}

// awaitEvents polls auditEvents(home, action) until done accepts them
// (10 s) and returns them. An event that records a change is written
// after the change, so a test that saw the change polls for its event.
func (h *harness) awaitEvents(home, action string, done func([]airlock.Event) bool) []airlock.Event {
	h.t.Helper()
	var evs []airlock.Event
	if !testenv.Poll(10*time.Second, func() bool { evs = h.auditEvents(home, action); return done(evs) }) {
		h.t.Fatalf("the %s events wanted are not in the audit 10 s on; they are %v; server log:\n%s", action, evs, h.logs.String())
	}
	return evs
}

// ensureAppRW makes the login role app_rw on pg's cluster (once per
// cluster: the clusters are shared between tests) with pgRWPassword: the
// brokered credential of the write level in the database tests.
func ensureAppRW(t *testing.T, pg *testenv.PG) {
	t.Helper()
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_rw') THEN CREATE ROLE app_rw LOGIN; END IF;
END $$;
ALTER ROLE app_rw PASSWORD '`+pgRWPassword+`';`)
}

// addPGWrite adds resource prod-db on pg's database db with one level,
// write, whose brokered credential is app_rw (ensureAppRW) read from the
// admin's environment.
func (h *harness) addPGWrite(tm *team, pg *testenv.PG, db string) {
	h.t.Helper()
	h.t.Setenv("PROD_DB_RW_PW", pgRWPassword)
	h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", db,
		"--credential", "write=app_rw:env:PROD_DB_RW_PW")
}

// countRows counts table's rows in pg's database db, directly (not
// through the gateway).
func countRows(t *testing.T, pg *testenv.PG, db, table string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "select count(*) from "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
