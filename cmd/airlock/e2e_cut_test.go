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

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

const cutPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true, prompt: "ticket?"}
rules:
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
  - name: devs-prod-web
    who: {groups: [devs]}
    resources: {names: [prod-web]}
    access: [LOGIN]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// cutLimit is the requirement (invariant 3: revoke, disable and kill cut
// live sessions within 1 s). The tests below assert the cut before a
// generous deadline and log the measured latency against it, as timing
// on a loaded CI machine is no test of the code.
const cutLimit = time.Second

// liveSessions is alice's live psql and ssh sessions through one server.
type liveSessions struct {
	psql, ssh     *cliProc
	psqlIn        *io.PipeWriter
	psqlID, sshID string
}

// openLive starts a psql (waiting for its first result) and an ssh running
// sleep (waiting for the gateway to audit the exec) as alice.
func openLive(t *testing.T, h *harness, tm *team, dbGrant, sshGrant, login string) *liveSessions {
	t.Helper()
	l := &liveSessions{}
	before := map[string]bool{}
	for _, s := range h.sessions(tm.admin, false) {
		before[s.ID] = true
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	l.psqlIn = pw
	l.psql = h.startProc(tm.alice, pr, nil, "psql", "prod-db", "--access", "write", "--", "-X", "-A", "-t")
	l.ssh = h.startProc(tm.alice, nil, nil, "ssh", "prod-web", "-l", login, "--", "sleep", "60")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("psql output:\n%s\nssh output:\n%s\nserver log:\n%s", l.psql.out.String(), l.ssh.out.String(), h.logs.String())
		}
	})
	pw.Write([]byte("select 'alive';\n"))
	waitFor(t, func() bool { return strings.Contains(l.psql.out.String(), "alive") })
	waitFor(t, func() bool {
		for _, s := range h.sessions(tm.admin, true) {
			switch {
			case before[s.ID]:
			case s.GrantID == dbGrant:
				l.psqlID = s.ID
			case s.GrantID == sshGrant:
				l.sshID = s.ID
			}
		}
		return l.psqlID != "" && l.sshID != ""
	})
	h.waitExecStarted(tm, l.sshID)
	return l
}

// cut runs action, then measures how long until both sessions are ended
// with reason in the store and the ssh client has exited, and checks what
// each client was told.
func (l *liveSessions) cut(t *testing.T, h *harness, tm *team, reason airlock.EndReason, action func()) {
	t.Helper()
	start := time.Now()
	action()
	acted := time.Since(start)
	var sshGone time.Duration
	sshDone := make(chan struct{})
	go func() {
		<-l.ssh.done
		sshGone = time.Since(start)
		close(sshDone)
	}()
	var recorded time.Duration
	deadline := time.Now().Add(15 * time.Second)
	for recorded == 0 {
		ended := 0
		for _, s := range h.sessions(tm.admin, false) {
			if (s.ID == l.psqlID || s.ID == l.sshID) && !s.Active() {
				if s.EndReason != string(reason) {
					t.Fatalf("session %s (%s) ended as %q, want %q", s.ID, s.Kind, s.EndReason, reason)
				}
				ended++
			}
		}
		if ended == 2 {
			recorded = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions not both ended as %s within 15 s", reason)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's store: the test measures how soon it ends them
	}
	select {
	case <-sshDone:
	case <-time.After(15 * time.Second):
		t.Fatal("ssh still running 15 s after the cut")
	}
	t.Logf("%s: command returned after %v; ssh client gone after %v; both sessions recorded ended after %v (requirement: cut within %v)",
		reason, acted.Round(time.Millisecond), sshGone.Round(time.Millisecond), recorded.Round(time.Millisecond), cutLimit)
	if !strings.Contains(l.ssh.out.String(), "airlock: "+reason.Text()+" — session closed") {
		t.Fatalf("ssh client was not told %q:\n%s", reason.Text(), l.ssh.out.String())
	}
	// psql notices the closed connection at its next statement.
	go func() { l.psqlIn.Write([]byte("select 'after';\n")); l.psqlIn.Close() }()
	if !l.psql.exited() {
		t.Fatalf("psql still running after the cut:\n%s", l.psql.out.String())
	}
	want := map[airlock.EndReason]string{airlock.EndSessionKilled: "FATAL:  airlock: session killed by an administrator",
		airlock.EndUserDisabled: "FATAL:  airlock: user disabled — session closed"}[reason]
	if out := l.psql.out.String(); !strings.Contains(out, want) || strings.Contains(out, "after") {
		t.Fatalf("psql after the cut: want %q and no result after it:\n%s", want, out)
	}
}

// TestE2EKillAndDisableCutLiveSessions: `airlock sessions kill` cuts a live
// psql and a live ssh session, and `airlock admin users disable` cuts the
// next pair, each on the wire with the FATAL or notice the gateways
// document, recorded as session_killed and user_disabled (RevokeUser and
// KillSession through live sessions, invariant 3).
func TestE2EKillAndDisableCutLiveSessions(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	testenv.RequireSSHClient(t)
	login := sshLogin(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE items (id int); GRANT SELECT, INSERT ON items TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t); c.SSHAddr = freeAddr(t) })
	pemBytes, err := os.ReadFile(filepath.Join(h.dataDir, "ssh_user_ca"))
	if err != nil {
		t.Fatal(err)
	}
	userCA, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{UserCA: userCA.PublicKey()})

	tm := setupTeam(t, h, strings.ReplaceAll(cutPolicy, "LOGIN", login))
	t.Setenv("CUT_RW_PW", pgRWPassword)
	h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres",
		"--addr", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), "--database", db, "--credential", "write=app_rw:env:CUT_RW_PW")
	h.must(tm.admin, "", "admin", "resources", "add", "prod-web", "--kind", "ssh", "--addr", sshd.Addr, "--login", login,
		"--host-key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))))
	dbGrant := h.grant(tm, "prod-db", "write")
	sshGrant := h.grant(tm, "prod-web", login)

	t.Run("sessions-kill", func(t *testing.T) {
		h.fresh(tm.alice, tm.aliceSecret)
		l := openLive(t, h, tm, dbGrant.ID, sshGrant.ID, login)
		h.fresh(tm.admin, tm.adminSecret)
		l.cut(t, h, tm, airlock.EndSessionKilled, func() {
			for _, id := range []string{l.psqlID, l.sshID} {
				if out := h.must(tm.admin, "", "sessions", "kill", id); !strings.Contains(out, "Session "+id+" killed.") {
					t.Fatalf("sessions kill %s: %s", id, out)
				}
			}
		})
		// Killing it again is refused: it has ended.
		if _, err := h.run(tm.admin, "", "sessions", "kill", l.psqlID); err == nil || !strings.Contains(err.Error(), "already ended") {
			t.Fatalf("second kill: %v", err)
		}
	})
	t.Run("users-disable", func(t *testing.T) {
		h.fresh(tm.alice, tm.aliceSecret)
		l := openLive(t, h, tm, dbGrant.ID, sshGrant.ID, login)
		h.fresh(tm.admin, tm.adminSecret)
		l.cut(t, h, tm, airlock.EndUserDisabled, func() { h.must(tm.admin, "", "admin", "users", "disable", "alice") })
	})
}
