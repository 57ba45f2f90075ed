package testenv

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HTTPAppOptions configures a running httpapp (internal/testenv/httpapp).
type HTTPAppOptions struct {
	// TLS serves https with a certificate for 127.0.0.1 and localhost
	// signed by a throwaway CA (HTTPApp.CAPEM).
	TLS bool
	// Args are extra command-line flags.
	Args []string
}

// HTTPApp is a running httpapp process: the upstream web application of
// the HTTP gateway's tests. See internal/testenv/httpapp for its endpoints.
type HTTPApp struct {
	URL   string // "http://127.0.0.1:PORT" or "https://…"
	Addr  string // "127.0.0.1:PORT"
	PID   int
	CAPEM []byte // the CA that signed the server certificate, when TLS

	client *http.Client
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
	err    error // the process's exit status, once exited is closed
	once   sync.Once
}

// HTTPAppStats is what the app's /stats reports. Requests counts every
// request but those to /stats; Routes counts them per "METHOD /pattern".
type HTTPAppStats struct {
	Requests       int64            `json:"requests"`
	Cancelled      int64            `json:"cancelled"`
	WebSocketsOpen int64            `json:"websockets_open"`
	WebSockets     int64            `json:"websockets"`
	SSEOpen        int64            `json:"sse_open"`
	SSE            int64            `json:"sse"`
	Routes         map[string]int64 `json:"routes"`
}

// httpAppStartTimeout bounds how long StartHTTPApp waits for LISTENING.
const httpAppStartTimeout = 15 * time.Second

var (
	httpAppBuildOnce sync.Once
	httpAppBin       string
	httpAppBuildErr  error
)

// StartHTTPApp builds internal/testenv/httpapp (once per test binary, the
// binary cached under os.UserCacheDir()/airlock-testenv/ keyed by a hash of
// its source, go.mod, go.sum and the Go version) and starts it as a
// separate process on a free 127.0.0.1 port. It is stopped when t ends;
// if t failed, the app's request log is logged. It skips the test when the
// go command is missing, unless CI is set.
func StartHTTPApp(t testing.TB, opts HTTPAppOptions) *HTTPApp {
	t.Helper()
	bin := HTTPAppBinary(t)
	var args []string
	var caPEM []byte
	if opts.TLS {
		ca, cert, key, err := serverCert()
		if err != nil {
			t.Fatalf("testenv: httpapp certificate: %v", err)
		}
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-tls-cert", certFile, "-tls-key", keyFile)
		caPEM = ca
	}
	args = append(args, opts.Args...)
	a, err := startHTTPApp(bin, caPEM, args)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("httpapp log:\n%s", a.Log())
		}
	})
	return a
}

// HTTPAppBinary returns the path of the built httpapp program, building
// it on first use (see StartHTTPApp).
func HTTPAppBinary(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		skipOrFail(t, errors.New("go command not found: httpapp is built from source (install Go from go.dev)"))
	}
	httpAppBuildOnce.Do(func() { httpAppBin, httpAppBuildErr = buildHTTPApp(goBin) })
	if httpAppBuildErr != nil {
		t.Fatalf("testenv: build httpapp: %v", httpAppBuildErr)
	}
	return httpAppBin
}

// httpAppSource returns the module root and the httpapp source directory.
func httpAppSource(goBin string) (root, dir string, err error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir = filepath.Join(filepath.Dir(file), "httpapp")
		if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
			dir = ""
		}
	}
	if dir == "" { // built with -trimpath: ask the go command
		out, err := exec.Command(goBin, "list", "-f", "{{.Dir}}", "github.com/airlockhq/airlock/internal/testenv/httpapp").Output()
		if err != nil {
			return "", "", fmt.Errorf("locate source: go list: %w", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	root = filepath.Join(dir, "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", "", fmt.Errorf("locate module root from %s: %w", dir, err)
	}
	return root, dir, nil
}

func buildHTTPApp(goBin string) (string, error) {
	root, dir, err := httpAppSource(goBin)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	sort.Strings(files)
	for _, f := range append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "airlock-testenv")
	bin := filepath.Join(cache, "httpapp-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	// Build to a private name and rename: test binaries of several
	// packages may build at once.
	tmp, err := os.CreateTemp(cache, "httpapp-build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goBin, "build", "-o", tmp.Name(), "./internal/testenv/httpapp")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func startHTTPApp(bin string, caPEM []byte, args []string) (*HTTPApp, error) {
	a := &HTTPApp{CAPEM: caPEM, log: &lockedBuffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-v"}, args...)...)
	a.cmd.Stderr = a.log
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Pdeathsig: a test binary killed by -timeout must not leave the app behind.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start httpapp: %w", err)
	}
	a.PID = a.cmd.Process.Pid
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				listening <- addr
			} else {
				a.log.Write([]byte("stdout: " + sc.Text() + "\n"))
			}
		}
		a.err = a.cmd.Wait() // after stdout is drained, as Wait requires
		close(a.exited)
	}()
	select {
	case a.Addr = <-listening:
	case <-a.exited:
		return nil, fmt.Errorf("httpapp exited before listening: %v\n%s", a.err, a.log.String())
	case <-time.After(httpAppStartTimeout):
		a.Stop()
		return nil, fmt.Errorf("httpapp did not print LISTENING within %v\n%s", httpAppStartTimeout, a.log.String())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	a.URL = "http://" + a.Addr
	if caPEM != nil {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		a.URL = "https://" + a.Addr
	}
	a.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return a, nil
}

// Client returns an HTTP client that trusts the app's certificate (when
// TLS) and does not follow redirects.
func (a *HTTPApp) Client() *http.Client {
	c := *a.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// Log returns what the app has logged so far: one line per request
// (method, host, path, status, duration).
func (a *HTTPApp) Log() string { return a.log.String() }

// Stats fetches the app's /stats directly (not through any gateway).
func (a *HTTPApp) Stats(t testing.TB) HTTPAppStats {
	t.Helper()
	resp, err := a.client.Get(a.URL + "/stats")
	if err != nil {
		t.Fatalf("testenv: httpapp stats: %v", err)
	}
	defer resp.Body.Close()
	var s HTTPAppStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("testenv: httpapp stats: %v", err)
	}
	return s
}

// WaitStats polls Stats until cond holds and returns those stats; it fails
// t if cond does not hold within timeout. Use it to see the upstream side
// of a stream close or a request be cancelled, which happen in another
// process a moment after the client side.
func (a *HTTPApp) WaitStats(t testing.TB, timeout time.Duration, cond func(HTTPAppStats) bool) HTTPAppStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := a.Stats(t)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: httpapp stats did not reach the condition within %v: %+v", timeout, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the app (SIGTERM, then SIGKILL after 5 s) and waits for
// it to exit. It is safe to call more than once.
func (a *HTTPApp) Stop() {
	a.once.Do(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(5 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
}

// RSS returns the app process's resident set size and its peak (VmRSS and
// VmHWM from /proc/PID/status, bytes); ok is false where /proc is absent.
func (a *HTTPApp) RSS() (rss, peak int64, ok bool) {
	return procRSS(a.PID)
}

func procRSS(pid int) (rss, peak int64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	for line := range strings.Lines(string(b)) {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		} else if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			peak = kb << 10
		}
	}
	return rss, peak, rss > 0
}
