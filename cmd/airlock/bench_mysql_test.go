package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// benchMySQLEnv turns TestBenchMySQL on; bench/mysql.sh sets it with the
// others below. Without it the test is skipped, so `make test` never runs
// the benchmark.
const benchMySQLEnv = "AIRLOCK_BENCH_MYSQL"

// benchMySQLPolicy is TestE2EMySQL's policy with room for sysbench: one
// connect token opens all of a run's connections (token_uses), the
// session's concurrent connections are not capped at the default 3, and
// the second factor of the setup (on a clock 30 minutes back) stays fresh
// enough to mint tokens through the whole run.
var benchMySQLPolicy = strings.Replace(mysqlPolicy, "defaults:\n",
	"defaults:\n  freshness: {connect: 2h}\n  session: {token_uses: 64, max_concurrent: 1000}\n", 1)

// TestBenchMySQL is the MySQL gateway benchmark bench/mysql.sh runs:
// sysbench oltp_point_select and oltp_read_only at each of THREADS for
// DURATION, ROUNDS times with the targets interleaved, against MariaDB
// directly, through a plain TCP relay (bench/cmd/tcprelay), through the
// same relay ending TLS on both sides as the gateway does (tcprelay
// -mysql-tls: the like-for-like baseline, the gateway's TLS work without
// the gateway) and through Airlock's MySQL gateway (every statement audited into the real
// hash-chained log). It prints TPS, latency p50/p95 and the proxy's CPU
// per transaction, and asserts nothing about timing; it fails only when a
// sysbench run fails.
//
// sysbench (MariaDB Connector/C) reaches the gateway over TLS
// (--mysql-ssl=on: the gateway requires it, and sends the token as
// mysql_clear_password inside it), and MariaDB directly and through the
// relay in plaintext: sysbench 1.0 always presents a client certificate
// when it uses TLS, and the throwaway MariaDB, which has no CA to check
// one against, drops the connection. The gateway's figures therefore
// carry the client-side TLS the others do not. The gateway reaches
// MariaDB with UPSTREAM_SSLMODE (default verify-full, as deployed). The setup is TestE2EMySQL's (a write grant for alice on
// prod-mysql), on an in-process server whose fake clock starts 30 minutes
// back; that server is then stopped and the built airlock binary
// ($AIRLOCK_BENCH_BIN) serves the same data directory as a process of its
// own, so its CPU time is the gateway's and its audit pipeline's alone.
// Each gateway run uses a connect token minted through the API just
// before it (tokens live 60 s; token_uses lets one open all of a run's
// connections).
//
// Settings: AIRLOCK_BENCH_TCPRELAY (the bench/cmd/tcprelay binary),
// ROUNDS, DURATION, THREADS, TESTS, TABLE_SIZE, UPSTREAM_SSLMODE,
// AIRLOCK_BENCH_LOGS (where the server's log and sysbench outputs go),
// CLK_TCK, PROFILE (a directory: the server, built with -tags benchpprof,
// is profiled during each gateway run of round 1).
func TestBenchMySQL(t *testing.T) {
	if os.Getenv(benchMySQLEnv) != "1" {
		t.Skipf("a benchmark: run bench/mysql.sh (sets %s=1)", benchMySQLEnv)
	}
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Fatal("sysbench not found: apt-get install sysbench")
	}
	b := &mysqlBench{t: t, bin: os.Getenv("AIRLOCK_BENCH_BIN"), relayBin: os.Getenv("AIRLOCK_BENCH_TCPRELAY"),
		rounds: envInt(t, "ROUNDS", 3), duration: envDuration(t, "DURATION", 10*time.Second),
		tableSize: envInt(t, "TABLE_SIZE", 10000), hz: envInt(t, "CLK_TCK", 100),
		threads: strings.Fields(envString("THREADS", "1 8")), tests: strings.Fields(envString("TESTS", "oltp_point_select oltp_read_only")),
		sslmode: envString("UPSTREAM_SSLMODE", "verify-full"), logs: os.Getenv("AIRLOCK_BENCH_LOGS"), profile: os.Getenv("PROFILE")}
	if b.bin == "" || b.relayBin == "" {
		t.Fatal("AIRLOCK_BENCH_BIN and AIRLOCK_BENCH_TCPRELAY must name the built airlock and tcprelay binaries (bench/mysql.sh builds them)")
	}
	if b.logs == "" {
		b.logs = t.TempDir()
	}
	loadBefore := loadAvg()
	b.setup()
	b.run()
	b.print(loadBefore, loadAvg())
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// mysqlBench holds one run of TestBenchMySQL.
type mysqlBench struct {
	t                   *testing.T
	bin, relayBin, logs string
	rounds, tableSize   int
	hz                  int
	duration            time.Duration
	threads, tests      []string
	sslmode             string
	profile, pprofAddr  string // PROFILE: where round 1's gateway CPU profiles go

	m              *testenv.MariaDBServer
	db, user, pass string
	serverURL      string
	mysqlAddr      string
	serverPID      int
	relayAddr      string
	relayPID       int
	tlsRelayAddr   string
	tlsRelayPID    int
	aliceToken     string            // alice's API session
	dirs           map[string]string // target → sysbench working directory (its TLS files)
	results        map[string][]sysbenchResult
}

// sysbenchResult is one sysbench run's figures.
type sysbenchResult struct {
	tps, p50, p95 float64 // transactions/s; latency in ms
	cpuUS         float64 // proxy CPU µs per transaction (-1: no proxy)
	reads, writes float64 // the proxy's read and write system calls per transaction
}

var mysqlTargets = []string{"direct", "tcprelay", "tlsrelay", "gateway"}

func (b *mysqlBench) setup() {
	t := b.t
	b.m = testenv.MariaDB(t)
	m := b.m
	b.db = m.NewDatabase(t)
	b.user, b.pass = fmt.Sprintf("sb%d", time.Now().UnixNano()%1e9), "sysbench-brokered-pw"
	m.CreateUser(t, b.user, b.pass, "ALL ON `"+b.db+"`.*")

	caFile := filepath.Join(t.TempDir(), "mariadb-ca.pem")
	os.WriteFile(caFile, m.CAPEM, 0o600)
	clk := &fakeClock{t: time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)}
	mysqlAddr := freeAddr(t)
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.MySQLAddr = mysqlAddr })
	tm := setupTeam(t, h, benchMySQLPolicy)
	h.fresh(tm.admin, tm.adminSecret)
	args := []string{"admin", "resources", "add", "prod-mysql", "--kind", "mysql", "--addr", m.Addr, "--database", b.db,
		"--sslmode", b.sslmode, "--credential", "write=" + b.user + ":env:SBPW"}
	if b.sslmode != "disable" {
		args = append(args, "--sslrootcert", caFile)
	}
	if out, err := h.runProc(tm.admin, []string{"SBPW=" + b.pass}, args...); err != nil {
		t.Fatalf("add mysql resource: %v\n%s", err, out)
	}
	h.grant(tm, "prod-mysql", "write")
	h.fresh(tm.alice, tm.aliceSecret)
	b.aliceToken = sessionToken(t, tm.alice)
	cfg := h.cfg
	h.stop()

	logf, err := os.Create(filepath.Join(b.logs, "airlock-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(b.bin, "server", "--data-dir", cfg.DataDir, "--http-addr", cfg.HTTPAddr, "--public-url", cfg.PublicURL,
		"--pg-addr=", "--ssh-addr=", "--http-apps-addr=", "--kube-addr=", "--mysql-addr", mysqlAddr, "--session-idle-timeout", "8h")
	var extra []string
	if b.profile != "" {
		b.pprofAddr = freeAddr(t)
		extra = append(extra, "BENCH_PPROF_ADDR="+b.pprofAddr)
	}
	cmd.Env = benchEnv(extra)
	cmd.Stdout, cmd.Stderr = logf, logf
	b.serverPID = startBenchProc(t, cmd)
	b.serverURL = h.url
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
	b.mysqlAddr = info.MySQLAddr

	// The plain relay, to MariaDB.
	b.relayAddr, b.relayPID = b.startRelay("tcprelay", m.Addr)

	// The relay that ends TLS on both sides, with a throwaway certificate
	// of its own, checking MariaDB's as the gateway does (verify-full).
	relayCert, relayKey := selfSignedPEM(t, true)
	relayDir := t.TempDir()
	for name, data := range map[string][]byte{"cert.pem": relayCert, "key.pem": relayKey, "ca.pem": m.CAPEM} {
		os.WriteFile(filepath.Join(relayDir, name), data, 0o600)
	}
	upHost, _, _ := strings.Cut(m.Addr, ":")
	b.tlsRelayAddr, b.tlsRelayPID = b.startRelay("tlsrelay", m.Addr, "-mysql-tls",
		"-tls-cert", filepath.Join(relayDir, "cert.pem"), "-tls-key", filepath.Join(relayDir, "key.pem"),
		"-upstream-ca", filepath.Join(relayDir, "ca.pem"), "-upstream-name", upHost)

	// sysbench's --mysql-ssl=on loads cacert.pem, client-cert.pem and
	// client-key.pem from its working directory: one directory per target.
	// It always presents the client certificate: MariaDB's own (from the
	// CA it trusts) directly and through the relay, a throwaway
	// self-signed one to the gateway (which does not ask for one).
	certPEM, keyPEM := selfSignedPEM(t, false)
	b.dirs = map[string]string{}
	for target, files := range map[string][3][]byte{
		"direct":   {m.CAPEM, m.ClientCertPEM, m.ClientKeyPEM},
		"tcprelay": {m.CAPEM, m.ClientCertPEM, m.ClientKeyPEM},
		"tlsrelay": {relayCert, certPEM, keyPEM},
		"gateway":  {[]byte(info.TLSCA), certPEM, keyPEM},
	} {
		d := filepath.Join(t.TempDir(), target)
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, "cacert.pem"), files[0], 0o600)
		os.WriteFile(filepath.Join(d, "client-cert.pem"), files[1], 0o600)
		os.WriteFile(filepath.Join(d, "client-key.pem"), files[2], 0o600)
		b.dirs[target] = d
	}

	// The tables, directly.
	if out, err := b.sysbench("direct", "prepare", b.tests[0], "1", b.user, b.pass, b.db); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}
}

// startRelay starts bench/cmd/tcprelay to upstream with args on a free
// address, its output in LOGS/name.log, and returns the address and pid
// once it is ready.
func (b *mysqlBench) startRelay(name, upstream string, args ...string) (string, int) {
	t := b.t
	addr := freeAddr(t)
	out := filepath.Join(b.logs, name+".log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command(b.relayBin, append([]string{"-listen", addr, "-upstream", upstream}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	pid := startBenchProc(t, cmd)
	testenv.Eventually(t, 10*time.Second, func() bool {
		o, _ := os.ReadFile(out)
		return strings.Contains(string(o), "ready")
	}, "%s did not start (%s)", name, out)
	return addr, pid
}

// startBenchProc starts cmd and stops it (SIGTERM, then SIGKILL) when the
// test ends; it returns its process id.
func startBenchProc(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
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
	return cmd.Process.Pid
}

// sessionToken is the API session the CLI keeps in home.
func sessionToken(t *testing.T, home string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(home, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st clientState
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.Token
}

// selfSignedPEM is a throwaway P-256 certificate and key: a client's, or
// with server a server's for 127.0.0.1 (Connector/C checks the purpose).
func selfSignedPEM(t *testing.T, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sysbench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.Subject.CommonName, tmpl.ExtKeyUsage = "tlsrelay", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses, tmpl.KeyUsage = []net.IP{net.ParseIP("127.0.0.1")}, x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// sysbench runs one sysbench command (prepare or run) for target.
func (b *mysqlBench) sysbench(target, command, test, threads, user, pass, db string) (string, error) {
	host, port := b.m.Addr, ""
	switch target {
	case "tcprelay":
		host = b.relayAddr
	case "tlsrelay":
		host = b.tlsRelayAddr
	case "gateway":
		host = b.mysqlAddr
	}
	host, port, _ = strings.Cut(host, ":")
	args := []string{test, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=" + user,
		"--mysql-password=" + pass, "--mysql-db=" + db, "--mysql-ssl=" + b.ssl(target), "--tables=1", "--table-size=" + strconv.Itoa(b.tableSize),
		"--threads=" + threads, "--time=" + strconv.Itoa(int(b.duration.Seconds())), "--histogram=on", "--report-interval=0", command}
	cmd := exec.Command("sysbench", args...)
	cmd.Dir = b.dirs[target]
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ssl is sysbench's --mysql-ssl for target: TLS for every target, so
// that the gateway's figures carry no cost the others do not
// (AIRLOCK_BENCH_DIRECT_SSL=off: the earlier plaintext baselines).
func (b *mysqlBench) ssl(target string) string {
	if (target == "direct" || target == "tcprelay") && os.Getenv("AIRLOCK_BENCH_DIRECT_SSL") == "off" {
		return "off"
	}
	return "on"
}

// mintToken is a connect token for alice on prod-mysql, minted through
// the API as `airlock mysql` does.
func (b *mysqlBench) mintToken() access.ConnectToken {
	var tok access.ConnectToken
	cl := api.NewClient(b.serverURL, b.aliceToken)
	if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-mysql"}, &tok); err != nil {
		b.t.Fatalf("mint a connect token: %v", err)
	}
	return tok
}

// startProfile fetches a CPU profile of the server over most of the
// coming run into file; the channel is closed when it is written.
func (b *mysqlBench) startProfile(file string) chan struct{} {
	done := make(chan struct{})
	secs := max(1, int(b.duration.Seconds())-2)
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, secs))
		if err != nil {
			fmt.Println("  profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			fmt.Println("  profile:", err)
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}()
	return done
}

// sysCalls is process pid's read and write system calls so far
// (/proc/PID/io syscr, syscw).
func sysCalls(t *testing.T, pid int) (reads, writes int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			reads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			writes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return reads, writes
}

// cpuTicks is the user+system CPU time of process pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name (which may hold spaces), from
	// field 3 on: utime and stime are fields 14 and 15.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

var (
	sbTransactions = regexp.MustCompile(`transactions:\s+(\d+)\s+\(([0-9.]+) per sec`)
	sbHistogram    = regexp.MustCompile(`^\s*([0-9.]+)\s+\|\**\s+(\d+)\s*$`)
)

// parseSysbench reads the transactions, TPS and the latency histogram's
// p50 and p95 (ms) from a sysbench run's output.
func parseSysbench(out string) (txns int64, r sysbenchResult, ok bool) {
	mt := sbTransactions.FindStringSubmatch(out)
	if mt == nil {
		return 0, r, false
	}
	txns, _ = strconv.ParseInt(mt[1], 10, 64)
	r.tps, _ = strconv.ParseFloat(mt[2], 64)
	var vals []float64
	var counts []int64
	var total int64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := sbHistogram.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			c, _ := strconv.ParseInt(m[2], 10, 64)
			vals, counts, total = append(vals, v), append(counts, c), total+c
		}
	}
	quantile := func(p float64) float64 {
		var seen int64
		for i, c := range counts {
			seen += c
			if float64(seen) >= p*float64(total) {
				return vals[i]
			}
		}
		return 0
	}
	if total > 0 {
		r.p50, r.p95 = quantile(0.5), quantile(0.95)
	}
	return txns, r, true
}

// runOnce runs sysbench once for target; profile asks for a CPU profile
// of the gateway over the run (with PROFILE).
func (b *mysqlBench) runOnce(name, target, test, th string, profile bool) (string, sysbenchResult, error) {
	t := b.t
	user, pass, db, pid := b.user, b.pass, b.db, 0
	switch target {
	case "tcprelay":
		pid = b.relayPID
	case "tlsrelay":
		pid = b.tlsRelayPID
	case "gateway":
		tok := b.mintToken()
		user, pass, db, pid = tok.User, tok.Token, "prod-mysql", b.serverPID
	}
	var t0, r0, w0 int64
	if pid != 0 {
		t0 = cpuTicks(t, pid)
		r0, w0 = sysCalls(t, pid)
	}
	var profiled chan struct{}
	if target == "gateway" && profile && b.pprofAddr != "" {
		profiled = b.startProfile(filepath.Join(b.profile, name+".pprof"))
	}
	out, err := b.sysbench(target, "run", test, th, user, pass, db)
	if profiled != nil {
		<-profiled
	}
	os.WriteFile(filepath.Join(b.logs, "sysbench-"+name+".log"), []byte(out), 0o600)
	txns, r, ok := parseSysbench(out)
	if err == nil && !ok {
		err = errors.New("no transactions line in the output")
	}
	if err != nil {
		return out, r, err
	}
	r.cpuUS = -1
	if pid != 0 && txns > 0 {
		r.cpuUS = float64(cpuTicks(t, pid)-t0) / float64(b.hz) * 1e6 / float64(txns)
		r1, w1 := sysCalls(t, pid)
		r.reads, r.writes = float64(r1-r0)/float64(txns), float64(w1-w0)/float64(txns)
	}
	return out, r, nil
}

func (b *mysqlBench) run() {
	t := b.t
	b.results = map[string][]sysbenchResult{}
	for round := 1; round <= b.rounds; round++ {
		for _, test := range b.tests {
			for _, th := range b.threads {
				for _, target := range mysqlTargets {
					name := fmt.Sprintf("%s-%s-t%s-r%d", test, target, th, round)
					var r sysbenchResult
					for attempt := 1; ; attempt++ {
						out, res, err := b.runOnce(name, target, test, th, round == 1 && attempt == 1)
						if err == nil {
							r = res
							break
						}
						// MariaDB Connector/C loads mysql_clear_password on
						// first use, and threads that connect at once can race
						// on it ("Plugin mysql_clear_password could not be
						// loaded: it is already loaded"): a client-library
						// race, not the gateway's; such a run is started again.
						if !strings.Contains(out, "could not be loaded: it is already loaded") || attempt == 3 {
							t.Fatalf("sysbench %s: %v\n%s", name, err, out)
						}
						fmt.Printf("  %s: Connector/C's clear-password plugin race at connect, run again\n", name)
					}
					key := test + " t=" + th + " " + target
					b.results[key] = append(b.results[key], r)
					cpu := ""
					if r.cpuUS >= 0 {
						cpu = fmt.Sprintf("  proxy CPU %.0f µs/txn, %.1f reads, %.1f writes/txn", r.cpuUS, r.reads, r.writes)
					}
					fmt.Printf("  round %d %-18s t=%-2s %-9s %9.1f tps  p50 %.2f ms  p95 %.2f ms%s\n", round, test, th, target, r.tps, r.p50, r.p95, cpu)
				}
			}
		}
	}
}

func (b *mysqlBench) print(loadBefore, loadAfter string) {
	fmt.Println()
	fmt.Printf("### sysbench through the MySQL gateway: %s per run, median of %d interleaved rounds, %d CPUs, sysbench→gateway and →tlsrelay over TLS, →direct and →tcprelay --mysql-ssl=%s, gateway→MariaDB sslmode %s, table size %d\n\n",
		b.duration, b.rounds, runtime.NumCPU(), b.ssl("direct"), b.sslmode, b.tableSize)
	fmt.Println("| test | threads | target | TPS (× direct) | p50 ms | p95 ms | proxy CPU µs/txn |")
	fmt.Println("|---|---|---|---|---|---|---|")
	med := func(key string, f func(sysbenchResult) float64) float64 {
		var v []float64
		for _, r := range b.results[key] {
			v = append(v, f(r))
		}
		return medianFloat(v)
	}
	tps := func(r sysbenchResult) float64 { return r.tps }
	for _, test := range b.tests {
		for _, th := range b.threads {
			direct := med(test+" t="+th+" direct", tps)
			for _, target := range mysqlTargets {
				key := test + " t=" + th + " " + target
				cpu := "–"
				if c := med(key, func(r sysbenchResult) float64 { return r.cpuUS }); c >= 0 {
					cpu = fmt.Sprintf("%.0f", c)
				}
				v := med(key, tps)
				fmt.Printf("| %s | %s | %s | %.0f (%.2f) | %.2f | %.2f | %s |\n", test, th, target, v, v/direct, med(key, func(r sysbenchResult) float64 { return r.p50 }),
					med(key, func(r sysbenchResult) float64 { return r.p95 }), cpu)
			}
		}
	}
	fmt.Println()
	for _, test := range b.tests {
		for _, th := range b.threads {
			relay, tlsRelay, gw, direct := med(test+" t="+th+" tcprelay", tps), med(test+" t="+th+" tlsrelay", tps), med(test+" t="+th+" gateway", tps), med(test+" t="+th+" direct", tps)
			added := func(v float64) float64 { return 1e6/v*atoiF(th) - 1e6/direct*atoiF(th) }
			fmt.Printf("%s t=%s: gateway/tcprelay TPS %.2f, gateway/tlsrelay %.2f; added latency per transaction (1/TPS) vs direct: tcprelay %+.0f µs, tlsrelay %+.0f µs, gateway %+.0f µs\n",
				test, th, gw/relay, gw/tlsRelay, added(relay), added(tlsRelay), added(gw))
		}
	}
	fmt.Printf("load average before: %s; after: %s\n", loadBefore, loadAfter)
}

func atoiF(s string) float64 { n, _ := strconv.Atoi(s); return float64(n) }
