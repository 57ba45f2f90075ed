package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PG is a running throwaway PostgreSQL cluster. The superuser is the role
// "postgres", which connects without a password from 127.0.0.1; every other
// role must authenticate with SCRAM-SHA-256.
type PG struct {
	Host string // "127.0.0.1"
	Port int
	Dir  string // cluster base dir: data/, sock/, postgres.log

	bin  string              // directory holding pg_ctl, initdb…
	cred *syscall.Credential // non-nil when commands run as the postgres OS user

	tls tlsState // EnableTLS, once per cluster
}

var (
	pgOnce    sync.Once
	pgCluster *PG
	pgErr     error
	pgMissing bool // binaries absent: skip (or fail under CI)

	startedMu sync.Mutex
	started   []*PG
)

// startTimeout bounds how long Postgres waits for the cluster to accept connections.
const startTimeout = 30 * time.Second

// Postgres returns a running throwaway PostgreSQL cluster for tests. The
// cluster is started once per test binary from the installed binaries
// (initdb + pg_ctl, as the postgres OS user when running as root), with its
// data and unix socket dirs in a fresh temporary directory, listening on
// 127.0.0.1 on a free port. It is stopped by RunMain when the tests end.
//
// If the PostgreSQL binaries are absent the test is skipped with a message
// saying what to install, unless the environment variable CI is set, in
// which case the test fails.
func Postgres(t testing.TB) *PG {
	t.Helper()
	pgOnce.Do(func() {
		pgCluster, pgErr = startPostgres()
	})
	if pgErr != nil {
		if pgMissing && os.Getenv("CI") == "" {
			t.Skipf("testenv: %v", pgErr)
		}
		t.Fatalf("testenv: %v", pgErr)
	}
	return pgCluster
}

// RunMain runs the tests of m, stops every server the tests started
// (PostgreSQL, MariaDB and Kubernetes) and removes its directory, then
// exits with m's code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.RunMain(m) }
func RunMain(m *testing.M) {
	code := m.Run()
	stopAll()
	stopMariaDB()
	stopKube()
	os.Exit(code)
}

func stopAll() {
	startedMu.Lock()
	defer startedMu.Unlock()
	for _, p := range started {
		p.stop()
	}
	started = nil
}

// DSN returns a superuser URL for database db:
// "postgres://postgres@127.0.0.1:PORT/db?sslmode=disable".
func (p *PG) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", p.Host, p.Port, db)
}

// NewDatabase creates a fresh database with a unique name, drops it (WITH
// (FORCE), so leftover connections do not block) when t ends, and returns
// its name.
func (p *PG) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random database name: %v", err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	p.Exec(t, "postgres", "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return name
}

// Exec runs sql (one or more statements, simple protocol) as the superuser
// on database db and fails the test on error.
func (p *PG) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.exec(ctx, db, sql); err != nil {
		t.Fatalf("testenv: exec on %s: %v\nSQL: %s", db, err, sql)
	}
}

func (p *PG) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// findPGBin returns the directory holding initdb and pg_ctl: from PATH, or
// the newest /usr/lib/postgresql/*/bin.
func findPGBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			// PATH may hold wrapper scripts; prefer the real dir when it exists.
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dir = filepath.Dir(real)
			}
			if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install postgresql-15 (apt-get install postgresql-15) and put /usr/lib/postgresql/15/bin on PATH")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func startPostgres() (*PG, error) {
	bin, err := findPGBin()
	if err != nil {
		pgMissing = true
		return nil, err
	}
	p := &PG{Host: "127.0.0.1", bin: bin}
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgMissing = true
			return nil, fmt.Errorf("running as root but there is no postgres OS user to run initdb as (initdb refuses root): %w; install postgresql-15 or run tests as a non-root user", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	base, err := os.MkdirTemp("", "airlock-pg-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	p.Dir = base
	if p.cred != nil {
		if err := os.Chown(base, uid, gid); err != nil {
			os.RemoveAll(base)
			return nil, fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	data := filepath.Join(base, "data")
	sock := filepath.Join(base, "sock")
	if out, err := p.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("initdb in %s: %w\n%s", data, err, out)
	}
	if out, err := p.run("/bin/mkdir", "-p", sock); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("create socket dir: %w\n%s", err, out)
	}
	hba := strings.Join([]string{
		"local all all trust",
		"host all postgres 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host all all ::1/128 scram-sha-256",
		"",
	}, "\n")
	if err := p.writeFile(filepath.Join(data, "pg_hba.conf"), hba); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	logFile := filepath.Join(base, "postgres.log")

	// A free port can be taken between our probe and postgres' bind; retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		p.Port = port
		conf := strings.Join([]string{
			"# airlock testenv",
			"listen_addresses = '127.0.0.1'",
			fmt.Sprintf("port = %d", port),
			fmt.Sprintf("unix_socket_directories = '%s'", sock),
			"password_encryption = 'scram-sha-256'",
			"max_connections = 300",
			"shared_buffers = 128MB",
			"logging_collector = off",
			"log_min_messages = warning",
			"",
		}, "\n")
		if err := p.writeFile(filepath.Join(data, "postgresql.auto.conf"), conf); err != nil {
			os.RemoveAll(base)
			return nil, err
		}
		out, err := p.run(filepath.Join(bin, "pg_ctl"), "start", "-D", data, "-l", logFile, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-s")
		if err != nil {
			lastErr = fmt.Errorf("pg_ctl start on port %d: %w\n%s\n--- tail of %s ---\n%s", port, err, out, logFile, tail(logFile, 40))
			p.run(filepath.Join(bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-s")
			continue
		}
		startedMu.Lock()
		started = append(started, p)
		startedMu.Unlock()
		p.watchdog()
		if err := p.waitReady(); err != nil {
			err = fmt.Errorf("%w\n--- tail of %s ---\n%s", err, logFile, tail(logFile, 40))
			return nil, err
		}
		return p, nil
	}
	os.RemoveAll(base)
	return nil, lastErr
}

func (p *PG) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = p.exec(ctx, "postgres", "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // polling a foreign process; no channel to wait on
	}
	return fmt.Errorf("PostgreSQL on %s:%d not ready after %v: %w", p.Host, p.Port, startTimeout, err)
}

// lifelines holds the write ends of the watchdogs' pipes for as long as
// this process lives (a package variable: nothing may close them early).
var lifelines []*os.File

// watchdog starts a shell, in a process group of its own, that stops the
// cluster and removes its directory once this test process is gone: RunMain
// does that on a normal exit, but a panic, a -timeout or a kill skip it and
// pg_ctl's server outlives us. The shell reads a pipe whose write end only
// this process holds; end of file means we are gone, however we went.
func (p *PG) watchdog() {
	r, w, err := os.Pipe()
	if err != nil {
		return // best effort: RunMain still stops the cluster
	}
	defer r.Close()
	script := `cat >/dev/null; "$0" stop -D "$1" -m immediate -s >/dev/null 2>&1; rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, filepath.Join(p.bin, "pg_ctl"), filepath.Join(p.Dir, "data"), p.Dir)
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	lifelines = append(lifelines, w)
	go func() { _ = cmd.Wait() }()
}

func (p *PG) stop() {
	data := filepath.Join(p.Dir, "data")
	p.run(filepath.Join(p.bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-s", "-w")
	os.RemoveAll(p.Dir)
}

// run runs a program (a bare name is looked up in the PostgreSQL bin dir)
// as the postgres OS user when running as root.
func (p *PG) run(prog string, args ...string) ([]byte, error) {
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(p.bin, prog)
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd.CombinedOutput()
}

// writeFile writes content to path and gives it to the postgres OS user.
func (p *PG) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path (for failure messages).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
