// Command sshgateway runs Airlock's SSH gateway for benchmarks: it starts a
// real sshd as the target and a second one as an OpenSSH bastion, the
// gateway in front of the target with a test authorizer (recording on),
// and writes an ssh_config with the hosts "direct", "bastion-target" (via
// ProxyJump) and "gateway". bench/ssh.sh drives it.
//
// It writes DIR/ready once everything listens and DIR/stats (active
// sessions, heap, RSS) every 200 ms, and stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/sshca"
	"github.com/airlockhq/airlock/sshproxy"
	"golang.org/x/crypto/ssh"
)

// fileAuditor appends events as JSON lines (a stand-in for the audit
// pipeline with its write cost, without the hash chain).
type fileAuditor struct {
	mu  sync.Mutex
	f   *os.File
	seq int64
}

func (a *fileAuditor) Record(_ context.Context, e airlock.Event) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	e.Seq, e.Time = a.seq, time.Now()
	b, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	return a.seq, nil
}

func main() {
	dir := flag.String("dir", "", "working directory (created)")
	record := flag.Bool("record", true, "record interactive sessions")
	login := flag.String("login", "root", "OS account to log in as on the target")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := run(*dir, *login, *record); err != nil {
		log.Fatal(err)
	}
}

func run(dir, login string, record bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	uk, _, err := sshca.GenerateKey()
	if err != nil {
		return err
	}
	hk, _, _ := sshca.GenerateKey()
	ca := sshca.New(uk, hk)
	signHost := func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		return ca.SignHostCert(pub, []string{"127.0.0.1"}, "bench", 24*time.Hour)
	}
	var servers []*testenv.SSHDServer
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, name := range []string{"target", "bastion"} {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		s, err := testenv.StartSSHD(d, testenv.SSHDOptions{UserCA: ca.UserCA(), SignHostKey: signHost, ExtraConfig: "LogLevel ERROR\n"})
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	target, bastion := servers[0], servers[1]

	recs, err := recording.NewDir(filepath.Join(dir, "recordings"))
	if err != nil {
		return err
	}
	af, err := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer af.Close()
	gk, _, _ := sshca.GenerateKey()
	hostSigner, err := ca.HostSigner(gk, []string{"127.0.0.1"}, 24*time.Hour)
	if err != nil {
		return err
	}
	gw, err := sshproxy.New(sshproxy.Config{
		HostSigner: hostSigner, CA: ca, Audit: &fileAuditor{f: af}, Recordings: recs,
		// The bench reuses one client certificate for all runs.
		MaxUserCertLifetime: 24 * time.Hour,
		Auth: sshproxy.AuthorizerFunc(func(_ context.Context, req sshproxy.AuthRequest) (*sshproxy.Target, error) {
			if req.Resource != "prod" || req.Login != login {
				return nil, airlock.Errorf(airlock.ENOTFOUND, "no active grant for %s", req.Resource)
			}
			return &sshproxy.Target{
				UserID: "u_bench", UserName: req.UserName, GrantID: req.GrantID, Resource: "prod", Login: login,
				Addr: target.Addr, HostName: "127.0.0.1", EndsAt: time.Now().Add(24 * time.Hour), Record: record,
			}, nil
		}),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go gw.Serve(ctx, ln)

	// Client material, as `airlock ssh` writes it.
	signer, priv, _ := sshca.GenerateKey()
	cert, err := ca.SignUserCert(signer.PublicKey(), []string{"bench"}, "bench", 12*time.Hour, map[string]string{sshca.ExtGrant: "gr_bench"})
	if err != nil {
		return err
	}
	// sshd on the target/bastion accepts the same key with a certificate for the login.
	rootCert, err := ca.SignUserCert(signer.PublicKey(), []string{login}, "bench-direct", 12*time.Hour, map[string]string{sshca.ExtGrant: "gr_bench"})
	if err != nil {
		return err
	}
	pemBytes, _ := sshca.MarshalPrivateKey(priv, "bench")
	files := map[string][]byte{
		"id": pemBytes, "id-cert.pub": ssh.MarshalAuthorizedKey(cert), "root-cert.pub": ssh.MarshalAuthorizedKey(rootCert),
		"known_hosts": []byte(ca.KnownHostsLine("*")),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return err
		}
	}
	gwPort := ln.Addr().(*net.TCPAddr).Port
	common := fmt.Sprintf(`  HostName 127.0.0.1
  IdentityFile %[1]s/id
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile %[1]s/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
`, dir)
	host := func(name, user string, port int, cert, extra string) string {
		return fmt.Sprintf("Host %s\n  User %s\n  Port %d\n  CertificateFile %s/%s\n%s%s", name, user, port, dir, cert, extra, common)
	}
	cfg := host("direct", login, target.Port, "root-cert.pub", "") +
		host("bastion", login, bastion.Port, "root-cert.pub", "") +
		host("bastion-target", login, target.Port, "root-cert.pub", "  ProxyJump bastion\n") +
		host("gateway", login+"@prod", gwPort, "id-cert.pub", "")
	if err := os.WriteFile(filepath.Join(dir, "ssh_config"), []byte(cfg), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		return err
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return gw.Shutdown(sctx)
		case <-tick.C:
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			stats := fmt.Sprintf("active %d\nheap_inuse %d\nsys %d\ngoroutines %d\nrss_kb %d\n",
				len(gw.ActiveSessions()), ms.HeapInuse, ms.Sys, runtime.NumGoroutine(), rssKB())
			os.WriteFile(filepath.Join(dir, "stats.tmp"), []byte(stats), 0o600)
			os.Rename(filepath.Join(dir, "stats.tmp"), filepath.Join(dir, "stats"))
		}
	}
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	return 0
}
