package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// The open-file limit of the flooded server process: it starts with soft
// floodSoftLimit (below the hard limit, as under many init systems) and
// must raise it to floodHardLimit itself.
const (
	floodSoftLimit = 128
	floodHardLimit = 256
)

// serverProc is an `airlock server` running as its own process.
type serverProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (p *serverProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startServerProc runs `airlock server` (this test binary re-executing
// main) under RLIMIT_NOFILE soft:hard and waits for /healthz.
func startServerProc(t *testing.T, soft, hard int, args ...string) *serverProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"server"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "AIRLOCK_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, execMainEnv+"=1", fmt.Sprintf("%s=%d:%d", fileLimitEnv, soft, hard))
	p := &serverProc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.alive() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("server log (last 8 KiB):\n%s", tail(p.out.String(), 8<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// flood holds idle TCP connections to a server (never sending a byte).
type flood struct {
	mu    sync.Mutex
	conns []net.Conn
}

// open dials n connections to addr from the loopback address src.
func (f *flood) open(t *testing.T, src, addr string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return // the backlog may be full: that is the flood too
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
		}()
	}
	wg.Wait()
}

func (f *flood) close() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.conns)
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	return n
}

// TestE2EConnectionFlood is hardening item 2: idle TCP connections to the
// gateways, more than the server's open-file limit, do not stop the
// server. An attacker's flood from one address is cut to the per-source
// share while /healthz, a logged-in API call and a real psql session
// through the gateway keep working; a flood from many addresses fills
// the per-listener share, which is fitted to the open-file limit, so the
// HTTP API still has descriptors; a flood of the HTTP port that does
// exhaust them (EMFILE) makes the listeners back off, not stop; and once
// each flood ends everything works again, in the same process, which
// raised its soft RLIMIT_NOFILE to the hard limit at start.
func TestE2EConnectionFlood(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not a loopback address here (need 127/8 on lo for flood sources): %v", err)
	} else {
		ln.Close()
	}
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE items (id int); GRANT SELECT, INSERT ON items TO app_rw;`)

	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, pgAddr, sshAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	srv := startServerProc(t, floodSoftLimit, floodHardLimit, "--data-dir", dataDir, "--http-addr", httpAddr,
		"--pg-addr", pgAddr, "--ssh-addr", sshAddr, "--http-apps-addr", "", "--kube-addr", "", "--mysql-addr", "", "--grant-sweep-interval", "200ms")
	// The CLI runs in this process against the server process; the test
	// clock only picks TOTP codes (the server uses real time, which
	// accepts one step either side).
	h := &harness{t: t, dataDir: dataDir, clock: &fakeClock{t: time.Now().UTC()}, url: "http://" + httpAddr, logs: srv.out}
	healthz := func() error {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(h.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	}
	waitFor(t, func() bool { return healthz() == nil || !srv.alive() })
	if !srv.alive() {
		t.Fatal("server exited at start")
	}

	tm := setupTeam(t, h, pgPolicy)
	t.Setenv("FLOOD_RW_PW", pgRWPassword)
	h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", db,
		"--credential", "write=app_rw:env:FLOOD_RW_PW")
	h.grant(tm, "prod-db", "write")

	psql := func(what string) (string, error) {
		return h.runProc(tm.alice, nil, "psql", "prod-db", "--access", "write", "--",
			"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select 'psql "+strings.ReplaceAll(what, "'", "''")+" ok'")
	}
	// everythingWorks checks the three doors a flood must not close.
	everythingWorks := func(when string) {
		t.Helper()
		if !srv.alive() {
			t.Fatalf("%s: the server process exited", when)
		}
		if err := healthz(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if out, err := h.run(tm.alice, "", "--output", "json", "grants"); err != nil || !strings.Contains(out, "prod-db") {
			t.Fatalf("%s: logged-in API call (grants): %v\n%s", when, err, out)
		}
		out, err := psql(when)
		if err != nil || !strings.Contains(out, "psql "+when+" ok") {
			t.Fatalf("%s: psql through the gateway: %v\n%s", when, err, out)
		}
	}
	everythingWorks("before the flood")

	// 1. One attacker (127.0.0.2) opens more idle connections to each
	// gateway than the server has descriptors in all.
	var attacker flood
	t.Cleanup(func() { attacker.close() })
	attacker.open(t, "127.0.0.2", pgAddr, floodHardLimit+50)
	attacker.open(t, "127.0.0.2", sshAddr, floodHardLimit+50)
	waitFor(t, func() bool {
		return !srv.alive() || strings.Count(srv.out.String(), "refused unauthenticated connections") >= 2
	})
	everythingWorks("during one source's flood")

	// 2. Many sources: each gateway's pending share fills, the server
	// keeps descriptors for the rest.
	var many flood
	t.Cleanup(func() { many.close() })
	for i := 3; i < 3+40; i++ {
		src := "127.0.0." + strconv.Itoa(i)
		many.open(t, src, pgAddr, 10)
		many.open(t, src, sshAddr, 10)
	}
	if !srv.alive() {
		t.Fatal("server exited during a flood from many sources")
	}
	if err := healthz(); err != nil {
		t.Fatalf("during a flood from many sources: %v", err)
	}
	if out, err := h.run(tm.alice, "", "whoami"); err != nil {
		t.Fatalf("during a flood from many sources: whoami: %v\n%s", err, out)
	}
	t.Logf("flood closed: %d connections", attacker.close()+many.close())
	retry(t, func() error { _, err := psql("after the flood"); return err })
	everythingWorks("after the flood")

	// 3. Exhaust the descriptors through the HTTP port (which has no
	// per-source share): accept fails with EMFILE, the listeners back off
	// and serve on, and recover when the flood ends.
	var httpFlood flood
	t.Cleanup(func() { httpFlood.close() })
	httpFlood.open(t, "127.0.0.2", httpAddr, floodHardLimit+50)
	pgProbe := dialQuiet(pgAddr) // queued behind EMFILE
	waitFor(t, func() bool {
		return !srv.alive() || strings.Contains(srv.out.String(), "accept failed; backing off and serving on")
	})
	if !srv.alive() {
		t.Fatal("server exited when out of file descriptors")
	}
	httpFlood.close()
	if pgProbe != nil {
		pgProbe.Close()
	}
	retry(t, healthz)
	retry(t, func() error { _, err := psql("after descriptors ran out"); return err })
	everythingWorks("after descriptors ran out")
	if !strings.Contains(srv.out.String(), "accepting connections again") {
		t.Error("no log line saying accept recovered")
	}

	// The server raised its soft open-file limit to the hard limit, and
	// fitted the pending shares to it (a quarter of 256).
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", srv.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Max open files\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(limits))
	if m == nil || m[1] != strconv.Itoa(floodHardLimit) || m[2] != strconv.Itoa(floodHardLimit) {
		t.Errorf("server's open-file limit: %q, want soft = hard = %d", m, floodHardLimit)
	}
	if !strings.Contains(srv.out.String(), `"max_pending":64`) {
		t.Error("no log line with the pending-handshake bound fitted to the open-file limit (max_pending 64)")
	}
}

// dialQuiet opens a connection or returns nil.
func dialQuiet(addr string) net.Conn {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil
	}
	return c
}

// retry calls f until it succeeds, at most 20 times a second apart.
func retry(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for range 20 {
		if err = f(); err == nil {
			return
		}
		time.Sleep(time.Second) // real time must pass: the server's per-second budgets refill on its clock
	}
	t.Fatalf("still failing after 20 tries: %v", err)
}
