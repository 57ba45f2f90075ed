package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBServer is a running throwaway MariaDB server. It listens on
// 127.0.0.1 only (TCP, with TLS on and plaintext also accepted) and on a
// unix socket in its directory. The account root exists only as
// 'root'@'localhost', which with --skip-name-resolve matches the unix
// socket alone: over TCP only the users CreateUser makes can log in.
//
// Its methods are safe for concurrent use.
type MariaDBServer struct {
	// Addr is the TCP address, "127.0.0.1:PORT".
	Addr string
	// CAPEM is the PEM of the throwaway CA that signed the server's
	// certificate (SANs IP 127.0.0.1 and DNS localhost), for clients that
	// verify the server (verify-full, --ssl-verify-server-cert). Do not
	// modify it.
	CAPEM []byte
	// ClientCertPEM and ClientKeyPEM are a client certificate from the same
	// CA and its key, which the server (--ssl-ca) accepts from clients
	// that present one (sysbench over TLS always does). No account
	// requires one. Do not modify them.
	ClientCertPEM, ClientKeyPEM []byte
	// Client is the path of the mariadb command-line client. Run it with
	// --no-defaults as the first argument, or it reads /etc/mysql/my.cnf.
	Client string

	dir    string // temp dir: data/, mariadbd.sock, mariadbd.log, TLS files
	sock   string
	cred   *syscall.Credential // non-nil when the server runs as another OS user
	proc   *exec.Cmd
	exited chan struct{} // closed when proc has exited
	root   *sql.DB       // root over the unix socket

	begin  time.Time
	phases []kubePhase // steps of the start, for StartupReport
}

var (
	mdbOnce    sync.Once
	mdbServer  *MariaDBServer
	mdbErr     error
	mdbMissing bool // binaries absent: skip (or fail under CI)
)

// mariadbStartTimeout bounds how long MariaDB waits for mariadbd to accept
// connections.
const mariadbStartTimeout = 30 * time.Second

// mariadbInstall is what to say when a binary is missing.
const mariadbInstall = "install mariadb-server and mariadb-client (apt-get install mariadb-server mariadb-client, or run scripts/test-deps.sh as root)"

// MariaDB returns a running throwaway MariaDB server for tests. The server
// is started once per test binary from the installed Debian binaries:
// mariadb-install-db initialises a data directory in a fresh temporary
// directory and mariadbd serves it on 127.0.0.1 on a free port, with TLS
// from a throwaway CA (CAPEM) and small buffers so it starts fast. When
// the tests run as root the server runs as the mysql OS user (or nobody
// when there is none). It is stopped, and its directory removed, by
// RunMain when the tests end, or by a watchdog if the test process dies
// first.
//
// If the MariaDB binaries are absent the test is skipped with a message
// saying what to install, unless the environment variable CI is set, in
// which case the test fails.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	mdbOnce.Do(func() {
		mdbServer, mdbErr = startMariaDB()
	})
	if mdbErr != nil {
		if mdbMissing && os.Getenv("CI") == "" {
			t.Skipf("testenv: %v", mdbErr)
		}
		t.Fatalf("testenv: %v", mdbErr)
	}
	return mdbServer
}

// RootDSN returns a go-sql-driver/mysql DSN for root over the server's unix
// socket with no database selected, "root@unix(/tmp/…/mariadbd.sock)/":
// append a database name and "?parameters" as needed.
func (m *MariaDBServer) RootDSN() string {
	return "root@unix(" + m.sock + ")/"
}

// Exec runs sql (one or more statements separated by semicolons) as root
// and fails the test on error. It may be called from a t.Cleanup.
func (m *MariaDBServer) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := m.root.ExecContext(ctx, sql); err != nil {
		t.Fatalf("testenv: mariadb exec: %v\nSQL: %s", err, sql)
	}
}

// NewDatabase creates a fresh database with a unique name ("t_" and 12 hex
// digits), drops it when t ends (first killing the connections that have
// it selected, so they cannot block the drop) and returns its name.
func (m *MariaDBServer) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random database name: %v", err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	m.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.dropDatabase(ctx, name); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return name
}

func (m *MariaDBServer) dropDatabase(ctx context.Context, name string) error {
	conn, err := m.root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", name)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		_, err := conn.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
		var me *mysql.MySQLError
		if err != nil && !(errors.As(err, &me) && me.Number == 1094) { // ER_NO_SUCH_THREAD: it ended by itself
			return fmt.Errorf("kill connection %d: %w", id, err)
		}
	}
	_, err = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
	return err
}

// CreateUser creates the account 'user'@'%' with mysql_native_password
// authentication and password, runs each of grants as "GRANT <grant> TO
// 'user'@'%'" (for example "SELECT ON db.*" or "ALL ON db.*"), and drops the
// account when t ends. It fails the test on error.
func (m *MariaDBServer) CreateUser(t testing.TB, user, password string, grants ...string) {
	t.Helper()
	account := sqlString(user) + "@'%'"
	m.Exec(t, "CREATE USER "+account+" IDENTIFIED VIA mysql_native_password USING PASSWORD("+sqlString(password)+")")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.root.ExecContext(ctx, "DROP USER IF EXISTS "+account); err != nil {
			t.Errorf("testenv: drop user %s: %v", account, err)
		}
	})
	for _, g := range grants {
		m.Exec(t, "GRANT "+g+" TO "+account)
	}
}

// Run runs the mariadb client as root over the unix socket with args
// after the connection options (for example "-e", "SELECT 1", or a
// database name) and returns its combined output and error.
func (m *MariaDBServer) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--no-defaults", "--socket=" + m.sock, "--user=root"}
	cmd := exec.CommandContext(ctx, m.Client, append(base, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// StartupReport says how long the server took to start, step by step: for
// logs, since the start counts against the suite's time.
func (m *MariaDBServer) StartupReport() string {
	var b strings.Builder
	last := m.begin
	for _, p := range m.phases {
		fmt.Fprintf(&b, "%s %v, ", p.name, p.end.Sub(last).Round(time.Millisecond))
		last = p.end
	}
	fmt.Fprintf(&b, "total %v", last.Sub(m.begin).Round(time.Millisecond))
	return b.String()
}

func (m *MariaDBServer) phase(name string) {
	m.phases = append(m.phases, kubePhase{name, time.Now()})
}

// mariadbBins finds mariadbd, mariadb-install-db and the mariadb client:
// on PATH, or where Debian puts them (/usr/sbin is not on every user's PATH).
func mariadbBins() (server, install, client string, err error) {
	find := func(name string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	server = find("mariadbd", "/usr/sbin", "/usr/local/sbin")
	install = find("mariadb-install-db", "/usr/bin", "/usr/local/bin")
	client = find("mariadb", "/usr/bin", "/usr/local/bin")
	var missing []string
	if server == "" {
		missing = append(missing, "mariadbd")
	}
	if install == "" {
		missing = append(missing, "mariadb-install-db")
	}
	if client == "" {
		missing = append(missing, "mariadb")
	}
	if len(missing) > 0 {
		return "", "", "", fmt.Errorf("MariaDB programs not found (%s) on PATH, in /usr/sbin or /usr/bin; %s", strings.Join(missing, ", "), mariadbInstall)
	}
	return server, install, client, nil
}

// mariadbCred returns the credential to run mariadbd with: nil unless
// running as root (mariadbd refuses root), then the mysql OS user that
// the Debian package creates, or nobody.
func mariadbCred() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"mysql", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("running as root but there is neither a mysql nor a nobody OS user to run mariadbd as (it refuses root); %s", mariadbInstall)
}

// mariadbSizes are the InnoDB sizes both the install and the server use:
// small, so that initialising and starting take well under a second or
// two (the defaults write a 96 MB redo log and reserve 128 MB of buffer
// pool).
var mariadbSizes = []string{
	"--innodb-buffer-pool-size=16M",
	"--innodb-log-file-size=4M",
}

func startMariaDB() (*MariaDBServer, error) {
	serverBin, installBin, client, err := mariadbBins()
	if err != nil {
		mdbMissing = true
		return nil, err
	}
	cred, err := mariadbCred()
	if err != nil {
		mdbMissing = true
		return nil, err
	}
	base, err := os.MkdirTemp("", "airlock-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("create mariadb dir: %w", err)
	}
	m := &MariaDBServer{Client: client, dir: base, sock: filepath.Join(base, "mariadbd.sock"), cred: cred, begin: time.Now()}
	fail := func(err error) (*MariaDBServer, error) {
		m.stop()
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown mariadb dir: %w", err))
		}
	}
	// The server's certificate; PKCS #8 EC key, mode 0600, owned by the server's user.
	caPEM, certPEM, keyPEM, clientCert, clientKey, err := serverAndClientCert()
	if err != nil {
		return fail(err)
	}
	m.CAPEM, m.ClientCertPEM, m.ClientKeyPEM = caPEM, clientCert, clientKey
	caFile := filepath.Join(base, "ca.crt")
	certFile := filepath.Join(base, "server.crt")
	keyFile := filepath.Join(base, "server.key")
	if err := m.writeFile(caFile, caPEM); err != nil {
		return fail(err)
	}
	if err := m.writeFile(certFile, certPEM); err != nil {
		return fail(err)
	}
	if err := m.writeFile(keyFile, keyPEM); err != nil {
		return fail(err)
	}
	data := filepath.Join(base, "data")
	install := append([]string{
		"--no-defaults", // never /etc/mysql/my.cnf
		"--datadir=" + data,
		"--auth-root-authentication-method=normal", // root@localhost without a password; the socket is in our dir
		"--skip-test-db",
		"--skip-name-resolve",
	}, mariadbSizes...)
	if out, err := m.command(context.Background(), installBin, install...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mariadb-install-db in %s: %w\n%s", data, err, out))
	}
	m.phase("mariadb-install-db")

	logFile := filepath.Join(base, "mariadbd.log")
	mdbWatchdog(m.dir, m.cred)
	// A free port can be taken between our probe and mariadbd's bind; retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append([]string{
			"--no-defaults",
			"--datadir=" + data,
			"--tmpdir=" + base,
			"--socket=" + m.sock,
			"--pid-file=" + m.pidFile(),
			"--log-error=" + logFile,
			"--bind-address=127.0.0.1",
			"--port=" + strconv.Itoa(port),
			"--skip-name-resolve",
			"--ssl-ca=" + caFile,
			"--ssl-cert=" + certFile,
			"--ssl-key=" + keyFile,
			"--character-set-server=utf8mb4",
			"--collation-server=utf8mb4_general_ci",
			"--max-connections=300",
			"--innodb-flush-log-at-trx-commit=0", // a throwaway server need not sync each commit
		}, mariadbSizes...)
		if err := m.startServer(serverBin, args); err != nil {
			lastErr = err
			continue
		}
		if err := m.waitReady(); err != nil {
			lastErr = fmt.Errorf("mariadbd on %s: %w\n--- tail of %s ---\n%s", m.Addr, err, logFile, tail(logFile, 40))
			m.kill()
			os.Remove(m.pidFile()) // SIGKILL leaves it; the watchdog must not act on it
			continue
		}
		m.phase("mariadbd ready")
		if err := m.lockRoot(); err != nil {
			return fail(err)
		}
		m.phase("root socket-only")
		return m, nil
	}
	return fail(lastErr)
}

func (m *MariaDBServer) pidFile() string { return filepath.Join(m.dir, "mariadbd.pid") }

// startServer starts mariadbd with args.
func (m *MariaDBServer) startServer(bin string, args []string) error {
	cmd := m.command(context.Background(), bin, args...)
	// mariadbd logs to --log-error; no pipes, so Wait returns at its exit.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	m.proc = cmd
	m.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	return nil
}

// waitReady waits until root can run a statement over the unix socket and
// the server reports TLS available, or mariadbd exits (a port taken
// meanwhile, say).
func (m *MariaDBServer) waitReady() error {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = m.sock
	cfg.MultiStatements = true
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	deadline := time.After(mariadbStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var haveSSL string
		err = db.QueryRowContext(ctx, "SELECT @@have_ssl").Scan(&haveSSL)
		cancel()
		if err == nil {
			if haveSSL != "YES" {
				db.Close()
				return fmt.Errorf("TLS not available: have_ssl = %s", haveSSL)
			}
			m.root = db
			return nil
		}
		select {
		case <-m.exited:
			db.Close()
			return fmt.Errorf("mariadbd exited before accepting connections: %v", m.proc.ProcessState)
		case <-deadline:
			db.Close()
			return fmt.Errorf("not ready after %v: %w", mariadbStartTimeout, err)
		case <-time.After(50 * time.Millisecond): // polling a foreign process; no channel to wait on
		}
	}
}

// lockRoot drops every root account but 'root'@'localhost' (the unix
// socket), so that over TCP only the accounts tests create can log in.
func (m *MariaDBServer) lockRoot() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := m.root.QueryContext(ctx, "SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
	if err != nil {
		return fmt.Errorf("list root accounts: %w", err)
	}
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return err
		}
		hosts = append(hosts, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, h := range hosts {
		if _, err := m.root.ExecContext(ctx, "DROP USER 'root'@"+sqlString(h)); err != nil {
			return fmt.Errorf("drop root@%s: %w", h, err)
		}
	}
	return nil
}

// mdbLifelines holds the write ends of the watchdogs' pipes for as long as
// this process lives (a package variable: nothing may close them early).
var mdbLifelines []*os.File

// mdbWatchdog starts a shell, in a process group of its own, that kills
// the mariadbd whose pid file is in dir and removes dir once this test
// process is gone: RunMain does that on a normal exit, but a panic, a
// -timeout or a kill skip it. The shell reads a pipe whose write end only
// this process holds; end of file means we are gone, however we went.
// RunMain removes dir, pid file included, so after a normal stop the shell
// kills nothing (the pid may be reused by then).
func mdbWatchdog(dir string, cred *syscall.Credential) {
	r, w, err := os.Pipe()
	if err != nil {
		return // best effort: RunMain still stops the server
	}
	defer r.Close()
	script := `cat >/dev/null; pid=$(cat "$0/mariadbd.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null; rm -rf "$0"`
	cmd := exec.Command("/bin/sh", "-c", script, dir)
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	mdbMu.Lock()
	mdbLifelines = append(mdbLifelines, w)
	mdbMu.Unlock()
	go func() { _ = cmd.Wait() }()
}

var mdbMu sync.Mutex

// stopMariaDB stops the server MariaDB started, if any (for RunMain).
func stopMariaDB() {
	mdbMu.Lock()
	defer mdbMu.Unlock()
	if mdbServer != nil {
		mdbServer.stop()
	}
}

// kill ends mariadbd (SIGKILL: the data is thrown away) and waits for it.
func (m *MariaDBServer) kill() {
	if m.root != nil {
		m.root.Close()
		m.root = nil
	}
	if m.proc == nil {
		return
	}
	_ = m.proc.Process.Kill()
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
	}
	m.proc = nil
}

func (m *MariaDBServer) stop() {
	m.kill()
	os.RemoveAll(m.dir)
}

// command is a command that runs as the server's OS user, in its dir.
func (m *MariaDBServer) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = m.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if m.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	}
	return cmd
}

// writeFile writes content to path with mode 0600, owned by the server's
// OS user.
func (m *MariaDBServer) writeFile(path string, content []byte) error {
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if m.cred != nil {
		if err := os.Chown(path, int(m.cred.Uid), int(m.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	return nil
}

// sqlString is a MariaDB string literal under the default sql_mode, where
// backslash escapes.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}
