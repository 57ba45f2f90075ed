package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/testenv"
)

const sshPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true, prompt: "ticket?"}
rules:
  - name: devs-prod-web
    who: {groups: [devs]}
    resources: {names: [prod-web]}
    access: [LOGIN]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
    session: {max_concurrent: 1}
`

// sshLogin is the real local account the target sshd logs in: root (the
// testenv sshd allows root with keys only; service accounts such as
// postgres are usually locked, which sshd refuses without PAM).
func sshLogin(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// TestE2ESSHThroughGateway runs `airlock ssh` (the real CLI as a process,
// which runs the system ssh with a 5-minute certificate) through the SSH
// gateway to a real sshd that trusts the server's user CA.
func TestE2ESSHThroughGateway(t *testing.T) {
	needOathtool(t)
	testenv.RequireSSHClient(t)
	login := sshLogin(t)
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.SSHAddr = freeAddr(t) })

	// The target trusts the server's user CA (DATA_DIR/ssh_user_ca).
	pemBytes, err := os.ReadFile(filepath.Join(h.dataDir, "ssh_user_ca"))
	if err != nil {
		t.Fatal(err)
	}
	userCA, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{UserCA: userCA.PublicKey()})

	tm := setupTeam(t, h, strings.ReplaceAll(sshPolicy, "LOGIN", login))
	h.must(tm.admin, "", "admin", "resources", "add", "prod-web", "--kind", "ssh", "--addr", sshd.Addr, "--login", login,
		"--host-key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))))

	// Without a grant no certificate is issued.
	out, err := h.runProc(tm.alice, nil, "ssh", "prod-web", "-l", login, "--", "echo", "hello")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("ssh without a grant: err=%v\n%s", err, out)
	}

	g := h.grant(tm, "prod-web", login)
	out, err = h.runProc(tm.alice, nil, "ssh", "prod-web", "-l", login, "--", "echo", "hello", "from", "$(whoami)")
	if err != nil || !strings.Contains(out, "hello from "+login) {
		t.Fatalf("airlock ssh: err=%v\n%s\nsshd log:\n%s", err, out, sshd.Log())
	}
	// sshd accepted the gateway's upstream certificate for this session.
	if !strings.Contains(sshd.Log(), "airlock session=") {
		t.Fatalf("sshd log lacks the gateway certificate:\n%s", sshd.Log())
	}
	// The exit status travels back.
	out, err = h.runProc(tm.alice, nil, "ssh", "prod-web", "-l", login, "--", "exit", "3")
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit status through the gateway: err=%v\n%s", err, out)
	}

	// Plain OpenSSH with the block `airlock ssh-config` prints: its Match
	// exec (`airlock ssh --fetch-cert`) stores a fresh certificate before
	// OpenSSH loads its identity files, and the host block points at the
	// gateway.
	cfgFile := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfgFile, []byte(h.must(tm.alice, "", "ssh-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := exec.Command("ssh", "-F", cfgFile, "-o", "BatchMode=yes", "-l", login+"@prod-web", "prod-web.airlock", "echo", "plain", "ssh", "as", "$(whoami)")
	plain.Env = h.command(tm.alice, nil).Env // the ProxyCommand runs this airlock binary for alice
	if b, err := plain.CombinedOutput(); err != nil || !strings.Contains(string(b), "plain ssh as "+login) {
		t.Fatalf("ssh via ssh-config ProxyCommand: err=%v\n%s\nconfig:\n%s", err, b, h.must(tm.alice, "", "ssh-config"))
	}

	// The command is audited as ssh.exec with its session and exit status.
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "ssh.exec") {
			var d struct {
				Command    string `json:"command"`
				ExitStatus *int   `json:"exit_status"`
			}
			json.Unmarshal(e.Details, &d)
			if e.GrantID == g.ID && e.SessionID != "" && e.Actor.Name == "alice" && strings.Contains(d.Command, "echo hello from") &&
				d.ExitStatus != nil && *d.ExitStatus == 0 {
				return true
			}
		}
		return false
	})

	// Revoking the grant cuts a live session. (The sessions above have
	// ended: the policy allows one at a time.)
	waitFor(t, func() bool { return len(h.sessions(tm.alice, true)) == 0 })
	live := h.startProc(tm.alice, nil, nil, "ssh", "prod-web", "-l", login, "--", "sleep", "30")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("live ssh output:\n%s", live.out.String())
		}
	})
	var liveID string
	waitFor(t, func() bool {
		for _, s := range h.sessions(tm.alice, true) {
			if s.GrantID == g.ID {
				liveID = s.ID
				return true
			}
		}
		return false
	})
	h.waitExecStarted(tm, liveID)
	// The policy's max_concurrent (1) holds on the wire: a second session
	// under the grant is refused and audited.
	out, err = h.runProc(tm.alice, nil, "ssh", "prod-web", "-l", login, "--", "echo", "second")
	if err == nil || !strings.Contains(out, "too many concurrent sessions under this grant (limit 1)") {
		t.Fatalf("second ssh session at max_concurrent 1: err=%v\n%s", err, out)
	}
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "session.denied") {
			var d struct {
				Reason string `json:"reason"`
			}
			json.Unmarshal(e.Details, &d)
			if e.GrantID == g.ID && d.Reason == "max_concurrent" && e.Outcome == airlock.OutcomeDenied {
				return true
			}
		}
		return false
	})
	h.step()
	h.must(tm.alice, "", "revoke", g.ID, "--reason", "done with INC-7")
	if !live.exited() {
		t.Fatalf("ssh still running after revoke:\n%s", live.out.String())
	}
	if live.err == nil || !strings.Contains(live.out.String(), "airlock: "+airlock.EndGrantRevoked.Text()+" — session closed") {
		t.Fatalf("ssh after revoke: err=%v\n%s", live.err, live.out.String())
	}
	waitFor(t, func() bool {
		for _, s := range h.sessions(tm.alice, false) {
			if s.ID == liveID {
				return !s.Active() && s.EndReason == string(airlock.EndGrantRevoked)
			}
		}
		return false
	})
	// No new certificate for a revoked grant.
	out, err = h.runProc(tm.alice, nil, "ssh", "prod-web", "-l", login, "--", "true")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("ssh after revoke: err=%v\n%s", err, out)
	}
}

// waitExecStarted waits until the gateway has audited the start of a
// command in session id (the channel is open to the target).
func (h *harness) waitExecStarted(tm *team, id string) {
	h.t.Helper()
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(h.t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "ssh.exec.start") {
			if e.SessionID == id {
				return true
			}
		}
		return false
	})
}
