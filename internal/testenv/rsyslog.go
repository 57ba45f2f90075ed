package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslogTimeout bounds how long StartRsyslog and Restart wait for the
// listeners to accept connections.
const rsyslogTimeout = 30 * time.Second

// Rsyslog is a real rsyslogd (Debian's rsyslog, with rsyslog-gnutls for
// TLS) in the foreground on 127.0.0.1: an imtcp listener on TCPAddr and a
// TLS one (gtls driver, anonymous clients) on TLSAddr, with a certificate
// from a throwaway CA (CAPEM; SANs IP 127.0.0.1 and DNS localhost). Both
// write every message to Out as "STRUCTURED-DATA MSG", one line each.
type Rsyslog struct {
	Dir     string
	Out     string
	TCPAddr string
	TLSAddr string
	CAPEM   []byte
	CAFile  string

	bin  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// RsyslogPath returns rsyslogd's path. It skips the test when rsyslog or
// its GnuTLS driver (rsyslog-gnutls) is not installed, unless CI is set
// (scripts/test-deps.sh installs both).
func RsyslogPath(t testing.TB) string {
	t.Helper()
	gtls, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil && len(gtls) > 0 {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("rsyslogd is not installed; run `make test` as root or apt-get install rsyslog rsyslog-gnutls")
	}
	t.Skip("rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls); skipping")
	return ""
}

// StartRsyslog starts rsyslogd and waits until both listeners accept. It
// is killed when the test ends.
func StartRsyslog(t testing.TB) *Rsyslog {
	t.Helper()
	bin := RsyslogPath(t)
	dir := t.TempDir()
	caPEM, certPEM, keyPEM, err := serverCert()
	if err != nil {
		t.Fatal(err)
	}
	r := &Rsyslog{Dir: dir, Out: filepath.Join(dir, "out.log"), CAPEM: caPEM, CAFile: filepath.Join(dir, "ca.pem"), bin: bin,
		conf: filepath.Join(dir, "rsyslog.conf")}
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.TCPAddr, r.TLSAddr = freeAddr(t), freeAddr(t)
	_, tcpPort, _ := net.SplitHostPort(r.TCPAddr)
	_, tlsPort, _ := net.SplitHostPort(r.TLSAddr)
	conf := fmt.Sprintf(`global(workDirectory=%[1]q maxMessageSize="256k"
  defaultNetstreamDriverCAFile=%[2]q
  defaultNetstreamDriverCertFile=%[3]q
  defaultNetstreamDriverKeyFile=%[4]q)
module(load="imtcp" maxSessions="200")
template(name="seqs" type="string" string="%%structured-data%% %%msg%%\n")
ruleset(name="out") {
  action(type="omfile" file=%[5]q template="seqs")
}
input(type="imtcp" address="127.0.0.1" port=%[6]q ruleset="out")
input(type="imtcp" address="127.0.0.1" port=%[7]q ruleset="out"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`, dir, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), r.Out, tcpPort, tlsPort)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 (config check): %v\n%s", err, out)
	}
	r.start(t)
	t.Cleanup(func() { r.Kill(t) })
	return r
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *Rsyslog) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.Dir, "rsyslogd.pid"))
	log, err := os.OpenFile(filepath.Join(r.Dir, "rsyslogd.stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start rsyslogd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	r.cmd, r.done = cmd, done
	up := Poll(rsyslogTimeout, func() bool {
		for _, a := range []string{r.TCPAddr, r.TLSAddr} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	if !up {
		b, _ := os.ReadFile(filepath.Join(r.Dir, "rsyslogd.stderr"))
		t.Fatalf("rsyslogd did not listen on %s and %s within %s:\n%s", r.TCPAddr, r.TLSAddr, rsyslogTimeout, b)
	}
}

// Kill kills rsyslogd with SIGKILL (no flush, no goodbye) and waits for it
// to exit. Killing a stopped server does nothing.
func (r *Rsyslog) Kill(t testing.TB) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
	os.Remove(filepath.Join(r.Dir, "rsyslogd.pid"))
}

// Restart starts rsyslogd again on the same ports, appending to Out.
func (r *Rsyslog) Restart(t testing.TB) {
	t.Helper()
	r.Kill(t)
	r.start(t)
}

// Seqs returns how often each seq arrived in Out (from the SD element
// [airlock@32473 seq="N"] of each line), and the lines that have none.
func (r *Rsyslog) Seqs(t testing.TB) (map[int64]int, []string) {
	t.Helper()
	f, err := os.Open(r.Out)
	if os.IsNotExist(err) {
		return map[int64]int{}, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int64]int{}
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		_, rest, ok := strings.Cut(line, `[airlock@32473 seq="`)
		num, _, ok2 := strings.Cut(rest, `"]`)
		n, err := strconv.ParseInt(num, 10, 64)
		if !ok || !ok2 || err != nil {
			bad = append(bad, line)
			continue
		}
		seen[n]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen, bad
}
