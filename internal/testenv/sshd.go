package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDOptions configures a throwaway OpenSSH server.
type SSHDOptions struct {
	// UserCA is written to TrustedUserCAKeys: certificates it signed are
	// accepted for the login named by their principal. Required.
	UserCA ssh.PublicKey
	// SignHostKey, when set, certifies the server's host key; the result
	// is configured as HostCertificate.
	SignHostKey func(pub ssh.PublicKey) (*ssh.Certificate, error)
	// Principals, when set, enables AuthorizedPrincipalsFile with these
	// principals per login.
	Principals map[string][]string
	// ExtraConfig is appended to sshd_config.
	ExtraConfig string
}

// SSHDServer is a running real OpenSSH sshd on 127.0.0.1. Logins are
// root (PermitRootLogin prohibit-password) and any other local account;
// only certificates from the configured user CA are accepted.
type SSHDServer struct {
	Addr    string // "127.0.0.1:PORT"
	Port    int
	Dir     string        // config, keys, pid file
	HostKey ssh.PublicKey // the plain ed25519 host key

	cmd    *exec.Cmd
	log    *lockedBuffer
	once   sync.Once
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ErrNoSSHD reports that the OpenSSH server is not installed.
var ErrNoSSHD = errors.New("sshd not found: install openssh-server (apt-get install openssh-server)")

// SSHDPath returns the path of the sshd binary, or ErrNoSSHD.
func SSHDPath() (string, error) {
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	return "", ErrNoSSHD
}

// SSHD starts a real sshd (`sshd -D -e -f CONFIG`) on a free 127.0.0.1
// port with its own host key and configuration in a temporary directory
// (never /etc/ssh), and kills it when t ends. It skips the test when sshd
// or the ssh client is missing, unless CI is set.
func SSHD(t testing.TB, opts SSHDOptions) *SSHDServer {
	t.Helper()
	RequireSSHClient(t)
	if _, err := SSHDPath(); err != nil {
		skipOrFail(t, err)
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, errors.New("sshd tests run as root (sshd needs privilege separation and the root login): run as root"))
	}
	s, err := StartSSHD(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// RequireSSHClient skips (or under CI fails) t when ssh, scp or sftp is
// missing.
func RequireSSHClient(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ssh", "scp", "sftp"} {
		if _, err := exec.LookPath(b); err != nil {
			skipOrFail(t, fmt.Errorf("%s not found: install openssh-client", b))
		}
	}
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("testenv: %v", err)
	}
	t.Skipf("testenv: %v", err)
}

// StartSSHD is SSHD without a testing.TB (for benchmarks): the caller
// must call Close. dir must exist and be private to this server.
func StartSSHD(dir string, opts SSHDOptions) (*SSHDServer, error) {
	bin, err := SSHDPath()
	if err != nil {
		return nil, err
	}
	if opts.UserCA == nil {
		return nil, errors.New("sshd: UserCA is required")
	}
	// Privilege separation directory expected by Debian's sshd.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "testenv-sshd")
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "host_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	caPath := filepath.Join(dir, "user_ca.pub")
	if err := os.WriteFile(caPath, ssh.MarshalAuthorizedKey(opts.UserCA), 0o644); err != nil {
		return nil, err
	}
	port, err := sshdFreePort()
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nTrustedUserCAKeys %s\n",
		port, keyPath, filepath.Join(dir, "sshd.pid"), caPath)
	if opts.SignHostKey != nil {
		cert, err := opts.SignHostKey(signer.PublicKey())
		if err != nil {
			return nil, fmt.Errorf("sshd: sign host key: %w", err)
		}
		certPath := keyPath + "-cert.pub"
		if err := os.WriteFile(certPath, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "HostCertificate %s\n", certPath)
	}
	if opts.Principals != nil {
		pdir := filepath.Join(dir, "principals")
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, err
		}
		for login, ps := range opts.Principals {
			if err := os.WriteFile(filepath.Join(pdir, login), []byte(strings.Join(ps, "\n")+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&cfg, "AuthorizedPrincipalsFile %s/%%u\n", pdir)
	}
	cfg.WriteString(`AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
AllowTcpForwarding yes
AllowAgentForwarding yes
MaxStartups 1000:30:1000
MaxSessions 50
Subsystem sftp internal-sftp
`)
	cfg.WriteString(opts.ExtraConfig)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t: %v: %s", err, out)
	}

	s := &SSHDServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir, HostKey: signer.PublicKey(), log: &lockedBuffer{}}
	pr, pw := io.Pipe()
	s.cmd = exec.Command(bin, "-D", "-e", "-f", cfgPath)
	s.cmd.Stderr = pw
	s.cmd.Stdout = pw
	// Pdeathsig: a test binary killed by -timeout must not leave sshd behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	ready := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		var once sync.Once
		var line []byte
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			s.log.Write(buf[:n])
			line = append(line, buf[:n]...)
			if bytes.Contains(line, []byte("Server listening on")) {
				once.Do(func() { close(ready) })
				line = nil
			} else if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
				line = line[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { exited <- s.cmd.Wait(); pw.Close() }()
	select {
	case <-ready:
		// Leave the Wait goroutine running; Close reaps through it.
		go func() { err := <-exited; exited <- err }()
	case err := <-exited:
		return nil, fmt.Errorf("sshd exited: %v\n%s", err, s.log.String())
	case <-time.After(15 * time.Second):
		s.kill()
		return nil, fmt.Errorf("sshd did not start listening within 15s\n%s", s.log.String())
	}
	s.exited = exited
	return s, nil
}

// Log returns what sshd has logged so far (LogLevel VERBOSE: accepted
// certificate IDs and serials, refusals).
func (s *SSHDServer) Log() string { return s.log.String() }

// Close kills sshd and its per-connection processes.
func (s *SSHDServer) Close() {
	s.once.Do(s.kill)
}

func (s *SSHDServer) kill() {
	if s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	if s.exited != nil {
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
}

func sshdFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
