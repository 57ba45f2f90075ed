package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// mariadbUser opens a go-sql-driver pool to m over TCP as user, with TLS
// verifying the server against caPEM (verify-full: chain and 127.0.0.1),
// and closes it when t ends.
func mariadbUser(t *testing.T, m *MariaDBServer, caPEM []byte, user, password, db string) *sql.DB {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA PEM")
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = m.Addr
	cfg.User = user
	cfg.Passwd = password
	cfg.DBName = db
	cfg.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12} // ServerName: the driver sets the host
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(conn)
	t.Cleanup(func() { pool.Close() })
	return pool
}

// mariadbClient runs the real mariadb client as user over TCP with
// --ssl-verify-server-cert against the CA in caFile; the password goes
// through MYSQL_PWD, not argv.
func mariadbClient(t *testing.T, m *MariaDBServer, caFile, user, password string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(m.Addr, ":")
	base := []string{"--no-defaults", "--protocol=tcp", "--host=" + host, "--port=" + port, "--user=" + user,
		"--ssl", "--ssl-ca=" + caFile, "--ssl-verify-server-cert", "--batch", "--skip-column-names"}
	cmd := exec.CommandContext(t.Context(), m.Client, append(base, args...)...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+password, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mysqlErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestMariaDB(t *testing.T) {
	m := MariaDB(t)
	t.Logf("MariaDB start: %s", m.StartupReport())
	if !strings.HasPrefix(m.Addr, "127.0.0.1:") || m.Client == "" || len(m.CAPEM) == 0 {
		t.Fatalf("server: Addr %q Client %q CAPEM %d bytes", m.Addr, m.Client, len(m.CAPEM))
	}
	if again := MariaDB(t); again != m {
		t.Fatal("MariaDB started a second server; want one per test binary")
	}
	out, err := m.Run(t, "--batch", "--skip-column-names", "-e",
		"SELECT @@bind_address, @@skip_name_resolve, @@have_ssl, @@character_set_server, @@innodb_buffer_pool_size")
	if err != nil {
		t.Fatalf("mariadb as root: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(out), "127.0.0.1\t1\tYES\tutf8mb4\t16777216"; got != want {
		t.Fatalf("settings = %q, want %q", got, want)
	}
	// The SEQUENCE engine, which the gateway's streaming tests read from.
	db := m.NewDatabase(t)
	out, err = m.Run(t, "--batch", "--skip-column-names", db, "-e", "SELECT COUNT(*), MAX(seq) FROM seq_1_to_1000000")
	if err != nil || strings.TrimSpace(out) != "1000000\t1000000" {
		t.Fatalf("seq_1_to_1000000: %q, %v", out, err)
	}
	// Root is the unix socket's alone.
	out, err = m.Run(t, "--batch", "--skip-column-names", "-e", "SELECT host FROM mysql.user WHERE user = 'root'")
	if err != nil || strings.TrimSpace(out) != "localhost" {
		t.Fatalf("root accounts: %q, %v; want only localhost", out, err)
	}
}

// TestMariaDBTLSClient connects with the real mariadb client as a created
// user over TLS, verifying the server's certificate against CAPEM, and
// pins that a CA which did not sign it is refused.
func TestMariaDBTLSClient(t *testing.T) {
	m := MariaDB(t)
	db := m.NewDatabase(t)
	user := "u_" + strings.TrimPrefix(db, "t_")
	m.CreateUser(t, user, `pw'with"quotes\`, "SELECT ON "+db+".*")

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, m.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := mariadbClient(t, m, caFile, user, `pw'with"quotes\`, "-e",
		"SELECT CURRENT_USER(), VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'")
	if err != nil {
		t.Fatalf("mariadb client over TLS: %v\n%s", err, out)
	}
	fields := strings.Fields(out)
	if len(fields) != 2 || fields[0] != user+"@%" || !strings.HasPrefix(fields[1], "TLSv1.") {
		t.Fatalf("client output %q: want %s@%% on TLSv1.x", out, user)
	}

	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, UnrelatedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := mariadbClient(t, m, other, user, `pw'with"quotes\`, "-e", "SELECT 1"); err == nil {
		t.Fatalf("client trusting an unrelated CA connected: %s", out)
	} else if !strings.Contains(out, "2026") { // CR_SSL_CONNECTION_ERROR
		t.Fatalf("unrelated CA: %v\n%s; want ERROR 2026 (TLS/SSL error)", err, out)
	}
	if out, err := mariadbClient(t, m, caFile, user, "wrong", "-e", "SELECT 1"); err == nil {
		t.Fatalf("wrong password connected: %s", out)
	} else if !strings.Contains(out, "1045") { // ER_ACCESS_DENIED_ERROR
		t.Fatalf("wrong password: %v\n%s; want ERROR 1045", err, out)
	}

	// A client presenting ClientCertPEM (as sysbench over TLS always
	// does) is accepted: the server trusts the CA that issued it.
	certFile, keyFile := filepath.Join(t.TempDir(), "client.pem"), filepath.Join(t.TempDir(), "client.key")
	if err := os.WriteFile(certFile, m.ClientCertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, m.ClientKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = mariadbClient(t, m, caFile, user, `pw'with"quotes\`, "--ssl-cert="+certFile, "--ssl-key="+keyFile, "-e",
		"SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "TLSv1.") {
		t.Fatalf("client with the testenv client certificate: %v\n%s", err, out)
	}
}

// TestMariaDBReadOnlyUser pins that an account granted SELECT alone reads
// but cannot write, through go-sql-driver over verified TLS.
func TestMariaDBReadOnlyUser(t *testing.T) {
	m := MariaDB(t)
	db := m.NewDatabase(t)
	m.Exec(t, "CREATE TABLE "+db+".x (v INT); INSERT INTO "+db+".x VALUES (41), (1)")
	ro := "ro_" + strings.TrimPrefix(db, "t_")
	m.CreateUser(t, ro, "ro-pw", "SELECT ON "+db+".*")
	pool := mariadbUser(t, m, m.CAPEM, ro, "ro-pw", db)

	ctx := t.Context()
	var sum int
	if err := pool.QueryRowContext(ctx, "SELECT SUM(v) FROM x").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 42 {
		t.Fatalf("sum = %d, want 42", sum)
	}
	_, err := pool.ExecContext(ctx, "INSERT INTO x VALUES (7)")
	if n := mysqlErrNumber(err); n != 1142 { // ER_TABLEACCESS_DENIED_ERROR
		t.Fatalf("INSERT as read-only user: %v; want error 1142 (command denied)", err)
	}
	var count int
	m.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db+".x").Scan(&count)
	if count != 2 {
		t.Fatalf("table has %d rows after the refused INSERT, want 2", count)
	}
}

// TestMariaDBStream reads 100,000 rows of the SEQUENCE engine one by one,
// through go-sql-driver and through the mariadb client with --quick (no
// buffering of the result in the client).
func TestMariaDBStream(t *testing.T) {
	m := MariaDB(t)
	db := m.NewDatabase(t)
	user := "s_" + strings.TrimPrefix(db, "t_")
	m.CreateUser(t, user, "s-pw", "SELECT ON "+db+".*")
	pool := mariadbUser(t, m, m.CAPEM, user, "s-pw", db)

	rows, err := pool.QueryContext(t.Context(), "SELECT seq FROM seq_1_to_100000")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n, sum, last int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != last+1 {
			t.Fatalf("row %d is %d, want %d", n, v, last+1)
		}
		n, sum, last = n+1, sum+v, v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 100000 || sum != 100000*100001/2 {
		t.Fatalf("go-sql-driver read %d rows summing to %d", n, sum)
	}

	out, err := m.Run(t, "--quick", "--batch", "--skip-column-names", db, "-e", "SELECT seq FROM seq_1_to_100000")
	if err != nil {
		t.Fatalf("mariadb --quick: %v\n%.500s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 100000 || lines[0] != "1" || lines[99999] != "100000" {
		t.Fatalf("mariadb client printed %d lines (first %q)", len(lines), lines[0])
	}
}

// TestMariaDBPrepared pins that go-sql-driver's statements with arguments
// are server-side prepared statements (COM_STMT_PREPARE/EXECUTE), which
// the gateway must audit.
func TestMariaDBPrepared(t *testing.T) {
	m := MariaDB(t)
	db := m.NewDatabase(t)
	m.Exec(t, "CREATE TABLE "+db+".kv (k VARCHAR(16) PRIMARY KEY, v INT)")
	user := "p_" + strings.TrimPrefix(db, "t_")
	m.CreateUser(t, user, "p-pw", "SELECT, INSERT ON "+db+".*")
	pool := mariadbUser(t, m, m.CAPEM, user, "p-pw", db)

	ctx := t.Context()
	conn, err := pool.Conn(ctx) // one session, so its status counters are ours
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	status := func(name string) int {
		t.Helper()
		var k string
		var v int
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	prepared0, executed0 := status("Com_stmt_prepare"), status("Com_stmt_execute")

	ins, err := conn.PrepareContext(ctx, "INSERT INTO kv VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"a", "b'quote", "c"} {
		if _, err := ins.ExecContext(ctx, k, i+1); err != nil {
			t.Fatal(err)
		}
	}
	ins.Close()
	var v int
	if err := conn.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", "b'quote").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Fatalf("v = %d, want 2", v)
	}
	if p, e := status("Com_stmt_prepare")-prepared0, status("Com_stmt_execute")-executed0; p != 2 || e != 4 {
		t.Fatalf("server counted %d prepares and %d executes, want 2 and 4", p, e)
	}
}

// TestMariaDBCleanup pins that the database and the account a test made
// are gone once its cleanup ran, even with a connection still open on the
// database.
func TestMariaDBCleanup(t *testing.T) {
	m := MariaDB(t)
	var db, user string
	t.Run("make", func(t *testing.T) {
		db = m.NewDatabase(t)
		user = "c_" + strings.TrimPrefix(db, "t_")
		m.CreateUser(t, user, "c-pw", "ALL ON "+db+".*")
		pool := mariadbUser(t, m, m.CAPEM, user, "c-pw", db)
		conn, err := pool.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Left open, in a transaction holding a metadata lock on a table
		// of db: without NewDatabase killing it, DROP DATABASE would wait
		// for it (lock_wait_timeout, a day by default).
		for _, q := range []string{"CREATE TABLE held (v INT)", "BEGIN", "SELECT * FROM held"} {
			if _, err := conn.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
	ctx := t.Context()
	var n int
	if err := m.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", db).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s after cleanup: count %d, %v; want gone", db, n, err)
	}
	if err := m.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE user = ?", user).Scan(&n); err != nil || n != 0 {
		t.Fatalf("user %s after cleanup: count %d, %v; want gone", user, n, err)
	}
}
