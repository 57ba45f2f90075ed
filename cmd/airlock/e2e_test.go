package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/notify"
)

// fakeClock is the server clock in end-to-end tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	// A port below the kernel's ephemeral range: one from port 0 is free
	// now, but any outgoing connection of the parallel test binaries may
	// take it before the server binds it ("address already in use").
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + mathrand.IntN(low-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return ln.Addr().String()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// harness runs an in-process airlock server and drives the real CLI
// commands against it over HTTP.
type harness struct {
	t       *testing.T
	dataDir string
	clock   *fakeClock
	url     string
	cfg     serverConfig
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHarness(t *testing.T, dataDir string, clk *fakeClock, tweak func(*serverConfig)) *harness {
	t.Helper()
	cfg := defaultServerConfig()
	cfg.DataDir = dataDir
	cfg.HTTPAddr = freeAddr(t)
	cfg.PGAddr = ""
	cfg.SSHAddr = ""
	cfg.HTTPAppsAddr = ""
	cfg.KubeAddr = ""
	cfg.MySQLAddr = ""
	cfg.PublicURL = "http://localhost:" + cfg.HTTPAddr[strings.LastIndex(cfg.HTTPAddr, ":")+1:]
	cfg.SweepInterval = 50 * time.Millisecond
	cfg.SessionIdle = 8 * time.Hour
	cfg.now = clk.Now
	if tweak != nil {
		tweak(&cfg)
	}
	h := &harness{t: t, dataDir: dataDir, clock: clk, url: "http://" + cfg.HTTPAddr, cfg: cfg, done: make(chan error, 1), logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- runServer(ctx, cfg, h.logs) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(h.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-h.done:
			t.Fatalf("server exited: %v\n%s", err, h.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v\n%s", err, h.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the server, which says nothing when it is up
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("server: %v", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Error("server did not stop within 15 s")
	}
}

var cliMu sync.Mutex

// run executes one airlock CLI command as the user whose client state is in home.
func (h *harness) run(home, in string, args ...string) (string, error) {
	h.t.Helper()
	cliMu.Lock()
	defer cliMu.Unlock()
	os.Setenv("AIRLOCK_HOME", home)
	global = globalOpts{}
	stdin = strings.NewReader(in)
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--server", h.url}, args...))
	err := root.ExecuteContext(context.Background())
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", userMessage(err), err)
	}
	return out.String(), nil
}

func (h *harness) must(home, in string, args ...string) string {
	h.t.Helper()
	out, err := h.run(home, in, args...)
	if err != nil {
		h.t.Fatalf("airlock %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func needOathtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("oathtool"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("oathtool is not installed; run `make test` as root or apt-get install oathtool")
		}
		t.Skip("oathtool not installed (apt-get install oathtool); skipping")
	}
}

// totp computes a code with Debian's oathtool, an independent RFC 6238 implementation.
func totp(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	out, err := exec.Command("oathtool", "--totp", "-b", "-N", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// enrollTOTP enrolls and confirms TOTP for the logged-in user and returns the secret.
func (h *harness) enrollTOTP(home string) string {
	h.t.Helper()
	out := h.must(home, "", "--output", "json", "mfa", "add", "totp")
	var res api.TOTPEnrollResponse
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		h.t.Fatalf("enroll output: %v\n%s", err, out)
	}
	u, err := url.Parse(res.URI)
	if err != nil || u.Scheme != "otpauth" {
		h.t.Fatalf("bad otpauth URI %q", res.URI)
	}
	secret := u.Query().Get("secret")
	h.must(home, "", "mfa", "confirm", res.Factor.ID, "--otp", totp(h.t, secret, h.clock.Now()))
	return secret
}

// step moves the clock to the next TOTP step so a fresh code exists.
func (h *harness) step() { h.clock.Advance(30 * time.Second) }

func (h *harness) bootstrapAdmin(home, name, password string) string {
	h.t.Helper()
	h.must(home, password+"\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", name, "--password-stdin")
	h.must(home, password+"\n", "login", "--user", name, "--password-stdin")
	secret := h.enrollTOTP(home)
	adminSecrets[h.dataDir] = secret
	return secret
}

func TestE2EIdentityTOTPFlow(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin := t.TempDir()

	// The bootstrap token exists and is used up by bootstrap.
	if _, err := os.Stat(filepath.Join(h.dataDir, "bootstrap.token")); err != nil {
		t.Fatalf("bootstrap token missing: %v", err)
	}
	h.must(admin, "correct horse battery\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", "admin", "--password-stdin")
	if _, err := os.Stat(filepath.Join(h.dataDir, "bootstrap.token")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bootstrap token not removed: %v", err)
	}
	// Before a factor is enrolled, nothing but enrollment is allowed.
	h.must(admin, "correct horse battery\n", "login", "--user", "admin", "--password-stdin")
	if out, err := h.run(admin, "", "requests"); err == nil || !strings.Contains(err.Error(), "enroll a second factor") {
		t.Fatalf("action before enrollment: err=%v out=%s", err, out)
	}
	secret := h.enrollTOTP(admin)
	fi, err := os.Stat(filepath.Join(admin, "session.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client state file: %v mode %v", err, fi.Mode())
	}
	h.must(admin, "", "logout")
	if _, err := h.run(admin, "", "whoami"); err == nil {
		t.Fatal("whoami after logout succeeded")
	}

	h.step()
	code := totp(t, secret, clk.Now())
	h.must(admin, "correct horse battery\n", "login", "--user", "admin", "--password-stdin", "--otp", code)
	out := h.must(admin, "", "whoami")
	if !strings.Contains(out, "admin") || !strings.Contains(out, "totp") {
		t.Fatalf("whoami: %s", out)
	}
	// The same code is refused a second time.
	h.must(admin, "", "logout")
	if _, err := h.run(admin, "correct horse battery\n", "login", "--user", "admin", "--password-stdin", "--otp", code); err == nil {
		t.Fatal("a TOTP code was accepted twice")
	}
	// A wrong password and an unknown user get the same answer.
	_, e1 := h.run(admin, "wrong password here\n", "login", "--user", "admin", "--password-stdin", "--otp", "000000")
	_, e2 := h.run(admin, "wrong password here\n", "login", "--user", "nobody", "--password-stdin", "--otp", "000000")
	if e1 == nil || e2 == nil || userMessage(errors.Unwrap(e1)) != userMessage(errors.Unwrap(e2)) {
		t.Fatalf("login errors differ: %v / %v", e1, e2)
	}
}

func TestE2ELockout(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.LockoutFailures = 3 })
	home := t.TempDir()
	h.must(home, "correct horse battery\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", "admin", "--password-stdin")
	var last error
	for i := 0; i < 4; i++ {
		_, last = h.run(home, "not the password!\n", "login", "--user", "admin", "--password-stdin")
	}
	if last == nil || !strings.Contains(last.Error(), "too many failed attempts") {
		t.Fatalf("after 4 failures: %v", last)
	}
	// Even the right password is refused while locked.
	if _, err := h.run(home, "correct horse battery\n", "login", "--user", "admin", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("locked login: %v", err)
	}
	clk.Advance(16 * time.Minute)
	h.must(home, "correct horse battery\n", "login", "--user", "admin", "--password-stdin")
}

const teamPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true, prompt: "ticket?"}
rules:
  - name: devs-read-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 2h
    approval:
      required: 1
      groups: [leads]
  - name: sre-break-glass
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 1h
    approval: {required: 1, groups: [leads]}
    break_glass: {allowed: true, max_duration: 30m, factors: any}
`

func TestE2EJITAccessFlow(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	dataDir := filepath.Join(t.TempDir(), "data")
	h := startHarness(t, dataDir, clk, nil)
	admin, alice, bob := t.TempDir(), t.TempDir(), t.TempDir()
	h.bootstrapAdmin(admin, "admin", "admin password 1")
	h.must(admin, "alice password 1\nalice password 1\n", "admin", "users", "add", "alice", "--group", "devs", "--password-stdin")
	h.must(admin, "bob password 123\nbob password 123\n", "admin", "users", "add", "bob", "--group", "leads", "--password-stdin")
	t.Setenv("PROD_DB_READ", "s3cret-read-password")
	t.Setenv("PROD_DB_WRITE", "s3cret-write-password")
	h.must(admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", "127.0.0.1:5432",
		"--credential", "read=app_ro:env:PROD_DB_READ", "--credential", "write=app_rw:env:PROD_DB_WRITE")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte(teamPolicy), 0o600)
	h.must(admin, "", "policy", "apply", "-f", pol)

	h.must(alice, "alice password 1\n", "login", "--user", "alice", "--password-stdin")
	aliceSecret := h.enrollTOTP(alice)
	h.must(bob, "bob password 123\n", "login", "--user", "bob", "--password-stdin")
	bobSecret := h.enrollTOTP(bob)

	// Bad input: over the max, unknown resource, missing reason.
	if _, err := h.run(alice, "", "request", "prod-db", "--access", "read", "--for", "3h", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "2h") {
		t.Fatalf("over max: %v", err)
	}
	if _, err := h.run(alice, "", "request", "prod-dbb", "--access", "read", "--for", "1h", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "prod-db") {
		t.Fatalf("unknown resource: %v", err)
	}
	if _, err := h.run(alice, "", "request", "prod-db", "--access", "read", "--for", "1h"); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("missing reason: %v", err)
	}
	out := h.must(alice, "", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "INC-42", "--dry-run")
	if !strings.Contains(out, "devs-read-prod") || !strings.Contains(out, "bob") {
		t.Fatalf("dry run: %s", out)
	}

	out = h.must(alice, "", "--output", "json", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "INC-42 investigate")
	var res struct {
		Request airlock.AccessRequest `json:"request"`
	}
	json.Unmarshal([]byte(out), &res)
	reqID := res.Request.ID
	if reqID == "" || res.Request.State != airlock.RequestPending {
		t.Fatalf("request: %s", out)
	}
	// alice cannot approve her own request.
	if _, err := h.run(alice, "", "approve", reqID); err == nil || !strings.Contains(err.Error(), "own request") {
		t.Fatalf("self-approval: %v", err)
	}
	// bob's MFA is stale after 5 minutes; approving then needs a fresh TOTP.
	clk.Advance(6 * time.Minute)
	if _, err := h.run(bob, "", "approve", reqID); err == nil || !strings.Contains(err.Error(), "fresh second factor") {
		t.Fatalf("approve with stale MFA: %v", err)
	}
	out = h.must(bob, "", "approve", reqID, "--comment", "ok", "--otp", totp(t, bobSecret, clk.Now()))
	if !strings.Contains(out, "Approved") {
		t.Fatalf("approve: %s", out)
	}
	var grants []struct {
		ID          string `json:"id"`
		Active      bool   `json:"active"`
		SecondsLeft int64  `json:"seconds_left"`
		State       string `json:"state"`
	}
	json.Unmarshal([]byte(h.must(alice, "", "--output", "json", "grants")), &grants)
	if len(grants) != 1 || !grants[0].Active || grants[0].SecondsLeft < 3590 || grants[0].SecondsLeft > 3600 {
		t.Fatalf("grant after approval: %+v", grants)
	}
	grantID := grants[0].ID
	// Approving again is refused: already granted.
	h.step()
	if _, err := h.run(bob, "", "approve", reqID, "--otp", totp(t, bobSecret, clk.Now())); err == nil || !strings.Contains(err.Error(), "not pending") {
		t.Fatalf("double approval: %v", err)
	}

	// The clock passes ends_at: the grant expires and grant.expired is audited.
	clk.Advance(time.Hour)
	waitFor(t, func() bool {
		json.Unmarshal([]byte(h.must(alice, "", "--output", "json", "grants")), &grants)
		return len(grants) == 1 && !grants[0].Active && grants[0].State == airlock.GrantExpired
	})
	h.step()
	h.must(admin, "", "mfa", "verify", "--otp", totp(t, h.adminSecret(), clk.Now()))
	waitFor(t, func() bool {
		return strings.Contains(h.must(admin, "", "audit", "tail", "--action", "grant.expired"), grantID)
	})

	// Break-glass: immediate, flagged until an approver acknowledges it.
	h.step()
	h.must(alice, "", "mfa", "verify", "--otp", totp(t, aliceSecret, clk.Now()))
	out = h.must(alice, "", "--output", "json", "break-glass", "prod-db", "--access", "write", "--for", "20m", "--reason", "prod down")
	var bg struct {
		Grant airlock.Grant `json:"grant"`
	}
	json.Unmarshal([]byte(out), &bg)
	if bg.Grant.ID == "" || !bg.Grant.BreakGlass {
		t.Fatalf("break-glass: %s", out)
	}
	if out := h.must(bob, "", "requests", "--review-needed"); !strings.Contains(out, "prod-db") {
		t.Fatalf("review-needed: %s", out)
	}
	h.step()
	h.must(bob, "", "acknowledge", bg.Grant.ID, "--otp", totp(t, bobSecret, clk.Now()))
	if out := h.must(bob, "", "requests", "--review-needed"); strings.Contains(out, "prod-db") {
		t.Fatalf("still review-needed after ack: %s", out)
	}

	// A grant whose end passes while the server is down is expired at restart.
	h.step()
	h.must(alice, "", "mfa", "verify", "--otp", totp(t, aliceSecret, clk.Now()))
	out = h.must(alice, "", "--output", "json", "request", "prod-db", "--access", "read", "--for", "30m", "--reason", "INC-43")
	json.Unmarshal([]byte(out), &res)
	h.step()
	h.must(bob, "", "approve", res.Request.ID, "--otp", totp(t, bobSecret, clk.Now()))
	h.stop()
	clk.Advance(31 * time.Minute)
	h2 := startHarness(t, dataDir, clk, func(c *serverConfig) { c.HTTPAddr = strings.TrimPrefix(h.url, "http://") })
	json.Unmarshal([]byte(h2.must(alice, "", "--output", "json", "grants")), &grants)
	for _, g := range grants {
		if g.Active {
			t.Fatalf("grant active after restart past ends_at: %+v", g)
		}
	}
	h2.step()
	h2.must(admin, "", "mfa", "verify", "--otp", totp(t, h.adminSecret(), clk.Now()))
	waitFor(t, func() bool {
		return strings.Count(h2.must(admin, "", "audit", "tail", "-n", "200", "--action", "grant.expired"), "grant.expired") >= 2
	})
	// The whole log verifies.
	out = h2.must(admin, "", "audit", "verify")
	if !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
	// No upstream password anywhere in the audit export or server logs.
	export := h2.must(admin, "", "audit", "export")
	for _, secret := range []string{"s3cret-read-password", "s3cret-write-password"} {
		if strings.Contains(export, secret) || strings.Contains(h.logs.String(), secret) || strings.Contains(h2.logs.String(), secret) {
			t.Fatalf("upstream credential leaked")
		}
	}
}

// adminSecret is the admin TOTP secret, kept by bootstrapAdmin.
func (h *harness) adminSecret() string { return adminSecrets[h.dataDir] }

var adminSecrets = map[string]string{}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, cond, "condition not met within 10 s")
}

func TestE2ERecoveryCodes(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	home := t.TempDir()
	h.bootstrapAdmin(home, "admin", "admin password 1")
	var res struct {
		Codes []string `json:"codes"`
	}
	if err := json.Unmarshal([]byte(h.must(home, "", "--output", "json", "mfa", "recovery-codes")), &res); err != nil || len(res.Codes) != 10 {
		t.Fatalf("recovery codes: %v %v", err, res.Codes)
	}
	h.must(home, "", "logout")
	// A recovery code works once, with or without its dash.
	h.must(home, "admin password 1\n", "login", "--user", "admin", "--password-stdin", "--otp", strings.ReplaceAll(res.Codes[0], "-", ""))
	h.must(home, "", "logout")
	if _, err := h.run(home, "admin password 1\n", "login", "--user", "admin", "--password-stdin", "--otp", res.Codes[0]); err == nil {
		t.Fatal("a recovery code was accepted twice")
	}
	h.must(home, "admin password 1\n", "login", "--user", "admin", "--password-stdin", "--otp", res.Codes[1])
	out := h.must(home, "", "audit", "tail", "--action", "mfa.recovery_used")
	if strings.Count(out, "mfa.recovery_used") != 2 || !strings.Contains(out, `"flagged":true`) {
		t.Fatalf("recovery use not audited and flagged:\n%s", out)
	}
}

// TestE2EBreakGlassWebhook: break-glass self-activates at once, the alert
// reaches a webhook receiver with a valid signature, and the grant stays
// flagged until an approver acknowledges it.
func TestE2EBreakGlassWebhook(t *testing.T) {
	needOathtool(t)
	const secret = "webhook-signing-secret-0123456789"
	t.Setenv("AIRLOCK_CRED_E2E_WEBHOOK_SECRET", secret)
	type delivery struct {
		body  []byte
		valid bool
	}
	got := make(chan delivery, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{body: body, valid: notify.VerifySignature(secret, r.Header.Get("X-Airlock-Timestamp"), body, r.Header.Get("X-Airlock-Signature"))}
	}))
	defer recv.Close()

	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin, alice, bob := t.TempDir(), t.TempDir(), t.TempDir()
	h.bootstrapAdmin(admin, "admin", "admin password 1")
	h.must(admin, "alice password 1\n", "admin", "users", "add", "alice", "--group", "sre", "--password-stdin")
	h.must(admin, "bob password 123\n", "admin", "users", "add", "bob", "--group", "leads", "--password-stdin")
	t.Setenv("E2E_DB_PW", "pw-not-used-here")
	h.must(admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", "127.0.0.1:5432", "--credential", "write=app_rw:env:E2E_DB_PW")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte(`version: 1
notify:
  - name: sec
    type: webhook
    url: `+recv.URL+`/hook
    secret_env: AIRLOCK_CRED_E2E_WEBHOOK_SECRET
rules:
  - name: sre-emergency
    who: {groups: [sre]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 1h
    approval: {required: 1, groups: [leads]}
    break_glass: {allowed: true, max_duration: 30m, alert: [sec]}
`), 0o600)
	h.must(admin, "", "policy", "apply", "-f", pol)
	h.must(alice, "alice password 1\n", "login", "--user", "alice", "--password-stdin")
	h.enrollTOTP(alice)
	h.must(bob, "bob password 123\n", "login", "--user", "bob", "--password-stdin")
	bobSecret := h.enrollTOTP(bob)

	if _, err := h.run(alice, "", "break-glass", "prod-db", "--access", "write", "--for", "45m", "--reason", "db down"); err == nil || !strings.Contains(err.Error(), "30m") {
		t.Fatalf("break-glass over its max: %v", err)
	}
	out := h.must(alice, "", "--output", "json", "break-glass", "prod-db", "--access", "write", "--for", "20m", "--reason", "INC-7 db down")
	var res struct {
		Grant airlock.Grant `json:"grant"`
	}
	json.Unmarshal([]byte(out), &res)
	if !res.Grant.BreakGlass || !res.Grant.ActiveAt(clk.Now()) {
		t.Fatalf("break-glass grant not active at once: %s", out)
	}
	select {
	case d := <-got:
		if !d.valid {
			t.Fatalf("webhook signature invalid: %s", d.body)
		}
		if !strings.Contains(string(d.body), "breakglass.activated") || !strings.Contains(string(d.body), "INC-7 db down") {
			t.Fatalf("webhook body: %s", d.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery within 10 s")
	}
	if out := h.must(bob, "", "requests", "--review-needed"); !strings.Contains(out, "break-glass") {
		t.Fatalf("not flagged for review: %s", out)
	}
	h.step()
	h.must(bob, "", "acknowledge", res.Grant.ID, "--comment", "checked", "--otp", totp(t, bobSecret, clk.Now()))
	if out := h.must(bob, "", "requests", "--review-needed"); strings.Contains(out, "prod-db") {
		t.Fatalf("still flagged after acknowledgement: %s", out)
	}
	h.step()
	h.must(admin, "", "mfa", "verify", "--otp", totp(t, h.adminSecret(), clk.Now()))
	waitFor(t, func() bool {
		return strings.Contains(h.must(admin, "", "audit", "tail", "--action", "notify.delivered"), "success")
	})
}

// TestE2EPolicyTestCommand runs `airlock policy check` and `policy test`
// on the documented example policy and on a failing cases file.
func TestE2EPolicyTestCommand(t *testing.T) {
	h := &harness{t: t, url: "http://127.0.0.1:1"}
	home := t.TempDir()
	repo, _ := filepath.Abs("../..")
	pol := filepath.Join(repo, "docs/examples/policy/team.yaml")
	out := h.must(home, "", "policy", "check", "-f", pol)
	if !strings.Contains(out, "policy OK") {
		t.Fatalf("check: %s", out)
	}
	out = h.must(home, "", "policy", "test", "-f", filepath.Join(repo, "docs/examples/policy/cases.yaml"), "--policy", pol)
	if !strings.Contains(out, " 0 failed") {
		t.Fatalf("example cases: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "cases.yaml")
	os.WriteFile(bad, []byte(`cases:
  - name: contractors may write prod (wrong on purpose)
    who: {user: carol, groups: [contractors]}
    resource: prod-db
    access: write
    duration: 1h
    expect: allow
`), 0o600)
	out, err := h.run(home, "", "policy", "test", "-f", bad, "--policy", pol)
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, "1 failed") {
		t.Fatalf("failing case: err=%v\n%s", err, out)
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(broken, []byte("version: 1\nrules:\n  - name: x\n    maxduration: 1h\n"), 0o600)
	out, err = h.run(home, "", "policy", "check", "-f", broken)
	if err == nil || !strings.Contains(out, "broken.yaml:4:") {
		t.Fatalf("broken policy: err=%v\n%s", err, out)
	}
}

// TestE2EOutputJSONShapes pins the CLI contract: with --output json a list
// is one JSON array and a stream (-f) is JSON Lines, one object a line.
func TestE2EOutputJSONShapes(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin := t.TempDir()
	h.bootstrapAdmin(admin, "admin", "correct horse battery")

	out := h.must(admin, "", "--output", "json", "audit", "tail", "-n", "5")
	var list []airlock.Event
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) == 0 {
		t.Fatalf("audit tail --output json: want one non-empty JSON array, got %v:\n%s", err, out)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Seq <= list[i-1].Seq {
			t.Fatalf("audit tail lists seq %d after %d; want oldest first", list[i].Seq, list[i-1].Seq)
		}
	}

	p := h.startProc(admin, nil, nil, "--output", "json", "audit", "tail", "-f", "-n", "3")
	var lines []string
	waitFor(t, func() bool {
		lines = strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
		return len(lines) >= 3
	})
	p.kill()
	for _, l := range lines {
		var e airlock.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq == 0 {
			t.Fatalf("audit tail -f --output json: line %q is not one event object (%v):\n%s", l, err, p.out.String())
		}
	}
}

// TestE2ELockoutBehindProxy: behind a trusted load balancer every
// connection comes from the balancer, so the source of a login attempt is
// the client it names in X-Forwarded-For. An attacker's failures then
// throttle the attacker's address, not the owner's; from an untrusted
// peer the header is ignored.
func TestE2ELockoutBehindProxy(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) {
		c.LockoutFailures = 3
		c.TrustedProxies = "127.0.0.0/8"
	})
	home := t.TempDir()
	h.must(home, "correct horse battery\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", "admin", "--password-stdin")
	login := func(password, client string) int {
		t.Helper()
		b, _ := json.Marshal(api.LoginRequest{User: "admin", Password: password})
		req, _ := http.NewRequest("POST", h.url+"/api/v1/login", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 6 {
		login("not the password!", "203.0.113.66")
	}
	if code := login("not the password!", "203.0.113.66"); code != http.StatusTooManyRequests {
		t.Fatalf("attacker's address after 7 failures: %d, want 429", code)
	}
	if code := login("correct horse battery", "198.51.100.20"); code != http.StatusOK {
		t.Fatalf("owner from another address behind the same balancer: %d, want 200 (locked out by the attacker)", code)
	}
}
