package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// benchKubeEnv turns TestBenchKube on; bench/kube.sh sets it with the
// others below. Without it the test is skipped, so `make test` never runs
// the benchmark.
const benchKubeEnv = "AIRLOCK_BENCH_KUBE"

// TestBenchKube is the Kubernetes gateway benchmark bench/kube.sh runs:
// kubectl latency, API requests/s and latency at 1 and 16 clients, and
// memory per idle watch, each directly against the real apiserver,
// through a plain reverse proxy (bench/cmd/plainproxy: TLS on the
// listener, HTTP/2 to the apiserver, the same impersonation headers set,
// 8 KiB pooled copy buffers — the gateway's transport without the
// gateway) and through Airlock. It prints figures and asserts nothing about timing; it
// fails only when a request does not do what it should (an error status,
// kubectl not listing the pod).
//
// The users, the resource and alice's grant are made as in TestE2EKube
// (setupKube, an in-process server whose fake clock starts 30 minutes
// back, so that what it issues is already valid under a real clock). That
// server is then stopped and the built airlock binary ($AIRLOCK_BENCH_BIN,
// CGO_ENABLED=0, no race detector) serves the same data directory as a
// process of its own: its RSS is the gateway's alone, and kubectl's exec
// plugin is that binary too.
//
// Settings (bench/kube.sh passes them on): AIRLOCK_BENCH_HTTPLOAD (the
// bench/cmd/httpload binary), AIRLOCK_BENCH_PLAINPROXY (bench/cmd/plainproxy), ROUNDS, DURATION, WARMUP, RUNS (kubectl runs
// per leg), WATCHES, and AIRLOCK_BENCH_LOGS (a directory the server's log
// is written to).
func TestBenchKube(t *testing.T) {
	if os.Getenv(benchKubeEnv) != "1" {
		t.Skipf("a benchmark: run bench/kube.sh (sets %s=1)", benchKubeEnv)
	}
	b := &kubeBench{t: t, bin: os.Getenv("AIRLOCK_BENCH_BIN"), load: os.Getenv("AIRLOCK_BENCH_HTTPLOAD"), plainBin: os.Getenv("AIRLOCK_BENCH_PLAINPROXY"),
		rounds: envInt(t, "ROUNDS", 1), runs: envInt(t, "RUNS", 50), watches: envInt(t, "WATCHES", 200),
		duration: envDuration(t, "DURATION", 5*time.Second), warmup: envDuration(t, "WARMUP", time.Second),
		legs: os.Getenv("LEGS"), profile: os.Getenv("PROFILE")}
	if b.legs == "" {
		b.legs = "watches,kubectl,load"
	}
	if b.bin == "" || b.load == "" || b.plainBin == "" {
		t.Fatal("AIRLOCK_BENCH_BIN, AIRLOCK_BENCH_HTTPLOAD and AIRLOCK_BENCH_PLAINPROXY must name the built airlock, httpload and plainproxy binaries (bench/kube.sh builds them)")
	}
	loadBefore := loadAvg()
	b.setup()
	b.report = append(b.report, fmt.Sprintf("load average before: %s", loadBefore))

	b.warmUp()
	if b.leg("watches") {
		b.benchWatches() // first, while the server's heap has not yet grown under load
	}
	if b.leg("kubectl") {
		b.benchKubectl()
	}
	if b.leg("load") {
		b.benchLoad()
	}
	b.report = append(b.report, fmt.Sprintf("load average after: %s", loadAvg()))
	fmt.Println()
	for _, l := range b.report {
		fmt.Println(l)
	}
}

// benchKubePolicy is TestE2EKube's policy with room for the benchmark's
// concurrency: the gateway refuses a session's requests in flight beyond
// max_concurrent (429), and the default, 3, would refuse the 16 clients
// and the idle watches.
var benchKubePolicy = strings.Replace(kubePolicy, "defaults:\n", "defaults:\n  session: {max_concurrent: 1000}\n", 1)

// kubeBench holds one run of TestBenchKube.
type kubeBench struct {
	t                     *testing.T
	bin, load, plainBin   string
	rounds, runs, watches int
	duration, warmup      time.Duration
	k                     *kubeSetup
	dir                   string // files of this run
	serverURL, kubeBase   string // the API; the gateway's URL of the cluster
	pid                   int    // the airlock server process
	plainURL              string // the plain proxy's base URL
	plainPID              int
	airlockCA, clusterCA  string // PEM files
	directKubeconfig      string
	impersonator, grantID string
	kubectlEnv            []string
	report                []string
	legs                  string // LEGS: which of watches, kubectl, load run
	profile, pprofAddr    string // PROFILE: where the server's profiles go
}

// leg reports whether LEGS names leg.
func (b *kubeBench) leg(name string) bool {
	for l := range strings.SplitSeq(b.legs, ",") {
		if strings.TrimSpace(l) == name {
			return true
		}
	}
	return false
}

// fetchProfile writes the server's pprof profile kind (a path under
// /debug/pprof/, with its query) to PROFILE/file; without PROFILE it does
// nothing.
func (b *kubeBench) fetchProfile(kind, file string) {
	if b.pprofAddr == "" {
		return
	}
	resp, err := http.Get("http://" + b.pprofAddr + "/debug/pprof/" + kind)
	if err != nil {
		fmt.Println("  profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(b.profile, file))
	if err != nil {
		fmt.Println("  profile:", err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

func (b *kubeBench) setup() {
	t := b.t
	b.k = setupKubeWith(t, time.Now().Add(-30*time.Minute), benchKubePolicy)
	k := b.k
	g := k.h.grant(k.tm, "prod-k8s", "view")
	b.grantID = g.ID
	b.impersonator = k.token
	cfg := k.h.cfg
	k.h.stop()

	b.dir = t.TempDir()
	logDir := os.Getenv("AIRLOCK_BENCH_LOGS")
	if logDir == "" {
		logDir = b.dir
	}
	logf, err := os.Create(filepath.Join(logDir, "airlock-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	// The same addresses and data directory as the harness had.
	cmd := exec.Command(b.bin, "server", "--data-dir", cfg.DataDir, "--http-addr", cfg.HTTPAddr, "--public-url", cfg.PublicURL,
		"--pg-addr=", "--ssh-addr=", "--http-apps-addr=", "--mysql-addr=", "--kube-addr", cfg.KubeAddr, "--session-idle-timeout", "8h")
	var extra []string
	if b.profile != "" {
		// The binary is built with -tags benchpprof (bench/kube.sh does
		// with PROFILE): pprof on a port of its own.
		b.pprofAddr = freeAddr(t)
		extra = append(extra, "BENCH_PPROF_ADDR="+b.pprofAddr)
	}
	cmd.Env = benchEnv(extra)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s server: %v", b.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	b.pid = cmd.Process.Pid
	b.serverURL = k.h.url
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(b.serverURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the airlock server process did not answer /healthz (log: %s)", logf.Name())

	info, err := api.NewClient(b.serverURL, "").Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.kubeBase = info.KubeURL + "/k8s/prod-k8s"
	b.airlockCA = b.file("airlock-ca.pem", []byte(info.TLSCA))
	b.clusterCA = b.file("cluster-ca.pem", k.kc.CAPEM)
	// alice's kubeconfig again, by the built binary: its exec plugin is
	// then that binary, not this test's.
	b.kubectlEnv = benchEnv([]string{"HOME=" + k.tm.alice, "AIRLOCK_HOME=" + k.tm.alice})
	if out, err := b.airlock("kubeconfig", "prod-k8s", "--kubeconfig", k.kubeconfig, "--use"); err != nil {
		t.Fatalf("airlock kubeconfig: %v\n%s", err, out)
	}
	// alice's last second factor was on the fake clock, 30 minutes back:
	// one now (on the real clock) lets the warm-up mint the gateway token
	// that kubectl's plugin and the load generator then share.
	if out, err := b.airlock("mfa", "verify", "--otp", totp(t, k.tm.aliceSecret, time.Now())); err != nil {
		t.Fatalf("airlock mfa verify: %v\n%s", err, out)
	}
	b.startPlainProxy(logDir)
	b.directKubeconfig = b.file("direct.kubeconfig", []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: direct
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: impersonator
  user: {token: %q}
contexts:
- name: direct
  context: {cluster: direct, user: impersonator}
current-context: direct
`, k.kc.URL, base64.StdEncoding.EncodeToString(k.kc.CAPEM), b.impersonator)))
}

// startPlainProxy starts bench/cmd/plainproxy in front of the apiserver
// with the impersonation the gateway would add for alice's grant.
func (b *kubeBench) startPlainProxy(logDir string) {
	t := b.t
	out := filepath.Join(logDir, "plainproxy.log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command(b.plainBin, "-tls", "-upstream", b.k.kc.URL, "-upstream-ca", b.clusterCA,
		"-bufpool", "-bufsize", "8192", "-no-compression",
		"-set", "Authorization: Bearer "+b.impersonator, "-set", "Impersonate-User: alice",
		"-set", "Impersonate-Group: airlock-view", "-set", "Impersonate-Extra-Airlock-Grant: "+b.grantID)
	cmd.Stdout, cmd.Stderr = f, f
	b.plainPID = startBenchProc(t, cmd)
	testenv.Eventually(t, 10*time.Second, func() bool {
		o, _ := os.ReadFile(out)
		if a, ok := strings.CutPrefix(string(o), "LISTENING "); ok {
			if a, _, ok = strings.Cut(a, "\n"); ok {
				b.plainURL = "https://" + a
				return true
			}
		}
		return false
	}, "plainproxy did not start (%s)", out)
}

// warmUp checks both paths list the pod once (and fills kubectl's
// discovery caches and the plugin's token cache).
func (b *kubeBench) warmUp() {
	for _, leg := range []string{"direct", "airlock"} {
		if out, err := b.kubectl(leg); err != nil || !strings.Contains(out, "web-1") {
			b.t.Fatalf("kubectl get pods (%s): %v\n%s", leg, err, out)
		}
	}
}

// kubectl runs `kubectl get pods -n payments` on one leg: direct (the
// impersonator's token, impersonating alice in group airlock-view, as the
// gateway does) or airlock (alice's kubeconfig).
func (b *kubeBench) kubectl(leg string) (string, error) {
	args := []string{"--kubeconfig", b.k.kubeconfig, "get", "pods", "-n", "payments"}
	if leg == "direct" {
		args = []string{"--kubeconfig", b.directKubeconfig, "--as", "alice", "--as-group", "airlock-view", "get", "pods", "-n", "payments"}
	}
	cmd := exec.Command(b.k.kc.Kubectl, args...)
	cmd.Env = b.kubectlEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// airlock runs the built airlock CLI as alice.
func (b *kubeBench) airlock(args ...string) (string, error) {
	cmd := exec.Command(b.bin, append([]string{"--server", b.serverURL}, args...)...)
	cmd.Env = b.kubectlEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gatewayToken is alice's gateway token for prod-k8s: the one
// kube-credential caches (minted at the warm-up, valid ten minutes), as
// kubectl's plugin uses it. A run longer than that would need a new second
// factor to mint another (the policy's freshness window is five minutes),
// and fails saying so.
func (b *kubeBench) gatewayToken() string {
	out, err := b.airlock("kube-credential", "prod-k8s")
	if err != nil {
		b.t.Fatalf("kube-credential: %v\n%s", err, out)
	}
	var cred struct {
		Status struct{ Token string } `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Status.Token == "" {
		b.t.Fatalf("kube-credential: %v\n%s", err, out)
	}
	return cred.Status.Token
}

func (b *kubeBench) benchKubectl() {
	t := b.t
	var direct, through, plugin []time.Duration
	for i := range b.runs {
		for _, leg := range []string{"direct", "airlock"} {
			t0 := time.Now()
			out, err := b.kubectl(leg)
			el := time.Since(t0)
			if err != nil || !strings.Contains(out, "web-1") {
				t.Fatalf("run %d: kubectl get pods (%s): %v\n%s", i, leg, err, out)
			}
			if leg == "direct" {
				direct = append(direct, el)
			} else {
				through = append(through, el)
			}
		}
		// What kubectl runs for a credential, alone: the cached token.
		t0 := time.Now()
		out, err := b.airlock("kube-credential", "prod-k8s")
		el := time.Since(t0)
		if err != nil || !strings.Contains(out, `"token":"alh_`) {
			t.Fatalf("run %d: kube-credential: %v\n%s", i, err, out)
		}
		plugin = append(plugin, el)
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1e3, 'f', 1, 64) }
	b.report = append(b.report,
		fmt.Sprintf("### kubectl get pods -n payments (%d runs per leg, interleaved)", b.runs), "",
		"| path | median (ms) | p90 (ms) |", "|---|---|---|",
		fmt.Sprintf("| direct (impersonator token, --as alice --as-group airlock-view) | %s | %s |", ms(pct(direct, .5)), ms(pct(direct, .9))),
		fmt.Sprintf("| through Airlock (alice's kubeconfig, exec plugin, cached token) | %s | %s |", ms(pct(through, .5)), ms(pct(through, .9))),
		fmt.Sprintf("| of which the plugin alone (`airlock kube-credential`, cached token) | %s | %s |", ms(pct(plugin, .5)), ms(pct(plugin, .9))),
		fmt.Sprintf("| added by Airlock (median difference) | %+.1f | |", float64((pct(through, .5)-pct(direct, .5)).Microseconds())/1e3),
		"")
}

// loadResult is httpload's JSON line.
type loadResult struct {
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P90us    float64 `json:"p90_us"`
}

func (b *kubeBench) benchLoad() {
	t := b.t
	const path = "/api/v1/namespaces/payments/pods"
	direct := []string{"-url", b.k.kc.URL + path, "-cacert", b.clusterCA,
		"-H", "Authorization: Bearer " + b.impersonator, "-H", "Impersonate-User: alice", "-H", "Impersonate-Group: airlock-view",
		"-H", "Impersonate-Extra-Airlock-Grant: " + b.grantID}
	plain := []string{"-url", b.plainURL + path, "-insecure"}
	clients := []int{1, 16}
	res := map[string][]loadResult{}
	for round := 1; round <= b.rounds; round++ {
		gw := []string{"-url", b.kubeBase + path, "-cacert", b.airlockCA, "-H", "Authorization: Bearer " + b.gatewayToken()}
		for _, c := range clients {
			for _, leg := range []string{"direct", "plain", "airlock"} {
				args := direct
				switch leg {
				case "plain":
					args = plain
				case "airlock":
					args = gw
				}
				var profiled chan struct{}
				if round == 1 && leg == "airlock" && b.pprofAddr != "" {
					profiled = make(chan struct{})
					go func() {
						defer close(profiled)
						b.fetchProfile(fmt.Sprintf("profile?seconds=%d", max(1, int(b.duration.Seconds()))), fmt.Sprintf("load-c%d-cpu.pprof", c))
					}()
				}
				r := b.httpload(append(args, "-c", strconv.Itoa(c), "-d", b.duration.String(), "-warmup", b.warmup.String())...)
				if profiled != nil {
					<-profiled
				}
				fmt.Printf("round %d c=%d %-7s %.0f req/s, p50 %.0f µs, p90 %.0f µs, %d requests\n", round, c, leg, r.RPS, r.P50us, r.P90us, r.Requests)
				if r.Errors != 0 {
					t.Errorf("round %d c=%d %s: %d errors", round, c, leg, r.Errors)
				}
				key := leg + ":" + strconv.Itoa(c)
				res[key] = append(res[key], r)
			}
		}
	}
	med := func(key string, f func(loadResult) float64) float64 {
		v := make([]float64, 0, len(res[key]))
		for _, r := range res[key] {
			v = append(v, f(r))
		}
		return medianFloat(v)
	}
	rps := func(r loadResult) float64 { return r.RPS }
	p50 := func(r loadResult) float64 { return r.P50us }
	b.report = append(b.report,
		fmt.Sprintf("### GET %s, keep-alive, %s per run after %s warm-up, %d round(s), medians over rounds", path, b.duration, b.warmup, b.rounds), "",
		"| path | req/s @1 | p50 @1 (µs) | req/s @16 | p50 @16 (µs) |", "|---|---|---|---|---|")
	for _, leg := range []string{"direct", "plain", "airlock"} {
		label := "direct (impersonator token + Impersonate-* headers)"
		switch leg {
		case "plain":
			label = "through a plain reverse proxy (plainproxy: TLS, HTTP/2 upstream, the same headers)"
		case "airlock":
			label = "through the Airlock gateway (gateway token)"
		}
		b.report = append(b.report, fmt.Sprintf("| %s | %.0f | %.0f | %.0f | %.0f |", label,
			med(leg+":1", rps), med(leg+":1", p50), med(leg+":16", rps), med(leg+":16", p50)))
	}
	ratio := func(a, b string) string {
		return fmt.Sprintf("| %s vs %s | %.2f× | %+.0f | %.2f× | %+.0f |", a, b,
			med(a+":1", rps)/med(b+":1", rps), med(a+":1", p50)-med(b+":1", p50),
			med(a+":16", rps)/med(b+":16", rps), med(a+":16", p50)-med(b+":16", p50))
	}
	b.report = append(b.report, ratio("plain", "direct"), ratio("airlock", "direct"), ratio("airlock", "plain"), "")
}

// httpload runs one measured load and returns its figures.
func (b *kubeBench) httpload(args ...string) loadResult {
	b.t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(b.load, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("httpload: %v\n%s%s", err, out, stderr.String())
	}
	line, _, _ := strings.Cut(string(out), "\n")
	var r loadResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		b.t.Fatalf("httpload: %v\n%s", err, out)
	}
	if r.Errors != 0 {
		fmt.Printf("httpload: %s", stderr.String())
	}
	return r
}

// benchWatches holds b.watches idle watches through the gateway, then as
// many through the plain proxy, and reads each process's RSS growth.
func (b *kubeBench) benchWatches() {
	const path = "/api/v1/namespaces/payments/pods?watch=1"
	gw := b.idleWatches(b.pid, true, b.kubeBase+path, "-cacert", b.airlockCA, "-H", "Authorization: Bearer "+b.gatewayToken())
	plain := b.idleWatches(b.plainPID, false, b.plainURL+path, "-insecure")
	b.report = append(b.report,
		fmt.Sprintf("### %d idle watches (GET %s)", b.watches, path), "",
		"airlock server: "+gw, "",
		"plain reverse proxy (plainproxy): "+plain, "")
}

// idleWatches holds b.watches idle watches of url open and returns the
// RSS growth of process pid they cause; profiled fetches the server's
// profiles (PROFILE) while they are held.
func (b *kubeBench) idleWatches(pid int, profiled bool, url string, args ...string) string {
	t := b.t
	before := rss(t, pid)
	cmd := exec.Command(b.load, append([]string{"-url", url, "-idle", strconv.Itoa(b.watches), "-stream"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ready ") {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("idle watches: %q %s", sc.Text(), stderr.String())
	}
	// Settled: two readings a second apart within 1 %, the server's
	// goroutines for the watches parked.
	after, last := rss(t, pid), int64(0)
	testenv.PollEvery(time.Second, 20*time.Second, func() bool {
		last, after = after, rss(t, pid)
		return abs(after-last)*100 <= after
	})
	if profiled {
		b.fetchProfile("heap?gc=1", "watches-heap.pprof")
		b.fetchProfile("goroutine", "watches-goroutine.pprof")
		b.fetchProfile("heap?debug=1", "watches-memstats.txt") // runtime.MemStats at its end: stacks, heap
	}
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("idle watches: %v %s", err, stderr.String())
	}
	closing := strings.TrimSpace(string(rest))
	if !strings.Contains(closing, fmt.Sprintf("(%d still open", b.watches)) {
		t.Errorf("idle watches: some closed before the end: %s", closing)
	}
	return fmt.Sprintf("RSS %d KiB → %d KiB: %.1f KiB per idle watch (%s)", before>>10, after>>10,
		float64(after-before)/1024/float64(b.watches), closing)
}

// rss is process pid's resident set size in bytes.
func rss(t *testing.T, pid int) int64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("RSS: %v", err)
	}
	for line := range strings.Lines(string(st)) {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	t.Fatal("RSS: no VmRSS in /proc/PID/status")
	return 0
}

func (b *kubeBench) file(name string, data []byte) string {
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// benchEnv is this process's environment without AIRLOCK_* (the server
// would read them as settings), HOME and KUBECONFIG, plus extra.
func benchEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AIRLOCK_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: want a duration", name, v)
	}
	return d
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// pct is the p-quantile of d (nearest rank).
func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func medianFloat(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
