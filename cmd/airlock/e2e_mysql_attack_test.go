package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/mysqlwire"
	"github.com/airlockhq/airlock/internal/testenv"
)

// mysqlRaw is one client connection to the MySQL gateway spoken with
// mysqlwire's client, so a test can send any command packet.
type mysqlRaw struct {
	t  *testing.T
	cc *mysqlwire.ClientConn
}

// query sends a COM_QUERY; see command.
func (c *mysqlRaw) query(sql string) (mysqlwire.Result, error) {
	return c.command(mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, sql))
}

// command sends one command payload and reads its whole response; the
// server's ERR is returned as the error.
func (c *mysqlRaw) command(p []byte) (mysqlwire.Result, error) {
	c.t.Helper()
	uc := c.cc.Conn
	uc.ResetSeq()
	if err := uc.WritePacket(p); err != nil {
		return mysqlwire.Result{}, err
	}
	tr := mysqlwire.NewResponseTracker(c.cc.Capabilities)
	more, err := tr.Begin(p[:min(len(p), 16)], uc.Seq())
	if errors.Is(err, mysqlwire.ErrUnsupportedCommand) || errors.Is(err, mysqlwire.ErrCursor) {
		// Only an ERR can come back for these through the gateway.
		q, err := uc.ReadPacket()
		if err != nil {
			return mysqlwire.Result{}, err
		}
		if e, perr := mysqlwire.ParseErr(q); perr == nil {
			return mysqlwire.Result{}, e
		}
		return mysqlwire.Result{}, fmt.Errorf("relayed: got %x", q)
	}
	if err != nil || !more {
		return mysqlwire.Result{}, err
	}
	for {
		h, prefix, err := uc.Next()
		if err != nil {
			return mysqlwire.Result{}, err
		}
		step, err := tr.Feed(h, prefix)
		if err != nil {
			return mysqlwire.Result{}, err
		}
		if err := uc.Discard(); err != nil {
			return mysqlwire.Result{}, err
		}
		if step == mysqlwire.StepDone {
			break
		}
	}
	if e := tr.Result().Err; e != nil {
		return tr.Result(), e
	}
	return tr.Result(), nil
}

// serverCode returns the MySQL error code of err (0 when it is not a
// server error).
func serverCode(err error) uint16 {
	var se *mysqlwire.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestE2EMySQLAttacks tries what a holder of a read grant (or of no
// session yet) could try against the MySQL gateway with a real MariaDB
// behind it: a login without TLS, under another user's name, plaintext
// behind the SSLRequest, an oversized packet before authentication; forms
// of USE and KILL the gateway's readers must not miss (executable
// comments, the server's own comment rules, prepared and dynamic SQL,
// compound statements); writing through a session set back to READ
// WRITE, other databases by qualified name, COM_RESET_CONNECTION,
// COM_CHANGE_USER, multi-statements, LOAD DATA LOCAL, a cursor; and an
// idle session at revoke.
func TestE2EMySQLAttacks(t *testing.T) {
	needOathtool(t)
	m := testenv.MariaDB(t)
	db := m.NewDatabase(t)
	other := m.NewDatabase(t)
	m.Exec(t, "CREATE TABLE `"+db+"`.items (id INT PRIMARY KEY, name VARCHAR(40))")
	m.Exec(t, "INSERT INTO `"+db+"`.items VALUES (1,'one'),(2,'two')")
	m.Exec(t, "CREATE TABLE `"+other+"`.secrets (v VARCHAR(40))")
	sfx := fmt.Sprint(time.Now().UnixNano() % 1e9)
	roUser, rwUser := "ro"+sfx, "rw"+sfx
	const roPass, rwPass = "ro-s3cret-brokered", "rw-s3cret-brokered"
	m.CreateUser(t, roUser, roPass, "SELECT ON `"+db+"`.*")
	m.CreateUser(t, rwUser, rwPass, "ALL ON `"+db+"`.*")
	root, err := sql.Open("mysql", m.RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.MySQLAddr = freeAddr(t) })
	tm := setupTeam(t, h, mysqlPolicy)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, m.CAPEM, 0o600)
	h.fresh(tm.admin, tm.adminSecret)
	out, err := h.runProc(tm.admin, []string{"RO=" + roPass, "RW=" + rwPass}, "admin", "resources", "add", "prod-mysql", "--kind", "mysql",
		"--addr", m.Addr, "--database", db, "--sslmode", "verify-full", "--sslrootcert", caFile,
		"--credential", "read="+roUser+":env:RO", "--credential", "write="+rwUser+":env:RW")
	if err != nil {
		t.Fatalf("add mysql resource: %v\n%s", err, out)
	}
	g := h.grant(tm, "prod-mysql", "read")

	h.fresh(tm.alice, tm.aliceSecret)
	cl := h.apiAs(tm.alice)
	var info api.GatewayInfo
	if err := cl.Do(context.Background(), "GET", "/api/v1/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	dial := func() *mysqlRaw {
		t.Helper()
		var tok access.ConnectToken
		if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-mysql"}, &tok); err != nil {
			t.Fatalf("mint: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc, err := mysqlwire.Dial(ctx, "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: tok.User, Password: []byte(tok.Token),
			Database: "prod-mysql", TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
			Capabilities: mysqlwire.CapDeprecateEOF | mysqlwire.CapMultiResults | mysqlwire.CapPSMultiResults | mysqlwire.CapTransactions})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { cc.Net.Close() })
		return &mysqlRaw{t: t, cc: cc}
	}
	// inDB reports whether c's current database is name.
	inDB := func(c *mysqlRaw, name string) bool {
		t.Helper()
		r, err := c.query("SELECT 1 FROM DUAL WHERE DATABASE() = '" + name + "'")
		if err != nil {
			t.Fatalf("SELECT DATABASE(): %v", err)
		}
		return r.Rows == 1
	}
	// threads returns the server's thread ids of the read account.
	threads := func() map[int64]bool {
		t.Helper()
		rows, err := root.Query("SELECT id FROM information_schema.processlist WHERE user = ?", roUser)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		ids := map[int64]bool{}
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids[id] = true
		}
		return ids
	}

	mint := func() access.ConnectToken {
		t.Helper()
		var tok access.ConnectToken
		if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-mysql"}, &tok); err != nil {
			t.Fatalf("mint: %v", err)
		}
		return tok
	}
	t.Run("pre-auth", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tlsCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		// stillValid: the refused attempt neither used tok nor opened a
		// session; the token opens one now.
		stillValid := func(what string, tok access.ConnectToken) {
			t.Helper()
			c, err := mysqlwire.Dial(ctx, "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: tok.User, Password: []byte(tok.Token), Database: "prod-mysql", TLS: tlsCfg})
			if err != nil {
				t.Errorf("the token after %s: %v", what, err)
				return
			}
			c.Net.Close()
		}
		// Without TLS: refused before the gateway asks for a password.
		tok := mint()
		_, err := mysqlwire.Dial(ctx, "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: tok.User, Password: []byte(tok.Token), Database: "prod-mysql"})
		t.Logf("no TLS: %v", err)
		if serverCode(err) != mysqlwire.ErAccessDenied || !strings.Contains(err.Error(), "only accepted inside TLS") {
			t.Fatalf("a client without TLS: %v", err)
		}
		stillValid("a client without TLS", tok)

		// Another user's name with alice's token.
		tok = mint()
		_, err = mysqlwire.Dial(ctx, "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: "bob", Password: []byte(tok.Token), Database: "prod-mysql", TLS: tlsCfg})
		t.Logf("another user: %v", err)
		if serverCode(err) != mysqlwire.ErAccessDenied {
			t.Fatalf("alice's token as bob: %v", err)
		}
		// (access uses a token before it checks whose it is: this attempt
		// spends it, as one under another resource's name would.)

		// Plaintext pipelined behind the SSLRequest is never read as a
		// packet: it goes to TLS, which fails.
		tok = mint()
		nc, err := net.Dial("tcp", info.MySQLAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		mc := mysqlwire.NewConn(nc)
		if _, err := mc.ReadPacket(); err != nil {
			t.Fatal(err)
		}
		hr := &mysqlwire.HandshakeResponse{Capabilities: mysqlwire.CapProtocol41 | mysqlwire.CapSecureConnection | mysqlwire.CapPluginAuth | mysqlwire.CapSSL,
			User: tok.User, Database: "prod-mysql", AuthPlugin: mysqlwire.ClearPassword, AuthResponse: []byte(tok.Token), MaxPacket: 1 << 24, Charset: mysqlwire.DefaultCharset}
		mc.WritePacket(hr.AppendSSLRequest(nil))
		mc.WritePacket(hr.Append(nil))
		buf := make([]byte, 512)
		n, err := nc.Read(buf)
		t.Logf("plaintext after SSLRequest: %d bytes %q, %v", n, buf[:n], err)
		if err == nil {
			t.Fatalf("the gateway answered plaintext after an SSLRequest: %q", buf[:n])
		}
		stillValid("plaintext after an SSLRequest", tok)

		// An oversized packet before authentication: dropped, unanswered.
		nc2, err := net.Dial("tcp", info.MySQLAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc2.Close()
		nc2.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := mysqlwire.NewConn(nc2).ReadPacket(); err != nil {
			t.Fatal(err)
		}
		nc2.Write([]byte{0xff, 0xff, 0xff, 1})
		nc2.Write(make([]byte, 70<<10))
		n, err = nc2.Read(buf)
		t.Logf("oversized pre-auth packet: %d bytes, %v", n, err)
		if err == nil {
			t.Fatalf("the gateway answered an oversized pre-auth packet: %q", buf[:n])
		}
	})

	a := dial()
	before := threads()
	b := dial() // the victim: another session on the same brokered account
	var victim int64
	for id := range threads() {
		if !before[id] {
			victim = id
		}
	}
	if victim == 0 {
		t.Fatal("no upstream thread for the second session")
	}
	vid := strconv.FormatInt(victim, 10)

	t.Run("use", func(t *testing.T) {
		for _, q := range []string{
			"USE `" + other + "`",
			"USE\t" + other,
			"use " + other + " ;",
			"/* c */ USE /* c */ `" + other + "`",
			"/*!USE `" + other + "`*/",
			"/*!USE*/ `" + other + "`",
			"/*!50000USE*/ " + other,
			"/*M!100000 USE*/ " + other,
			"--\x01\nUSE " + other,
			"--\r\nUSE " + other,
			"#x\nUSE " + other,
		} {
			_, err := a.query(q)
			t.Logf("%q: %v", q, err)
			if !inDB(a, db) {
				t.Fatalf("%q switched the session to another database (err %v)", q, err)
			}
			// The account has no privilege there either; the gateway
			// must refuse it first, as it would for a database the
			// account can open.
			if err == nil || !strings.Contains(err.Error(), "is not one prod-mysql opens") {
				t.Errorf("%q reached the server: %v", q, err)
			}
		}
	})
	t.Run("use-prepared", func(t *testing.T) {
		for _, q := range []string{"EXECUTE IMMEDIATE 'USE `" + other + "`'", "PREPARE s FROM 'USE " + other + "'"} {
			_, err := a.query(q)
			t.Logf("%q: %v", q, err)
			if !inDB(a, db) {
				t.Fatalf("%q switched database", q)
			}
			if serverCode(err) != mysqlwire.ErNotAllowedCommand {
				t.Errorf("%q was not refused by the gateway: %v", q, err)
			}
		}
		_, err := a.command(mysqlwire.AppendCommand(nil, mysqlwire.ComStmtPrepare, "USE "+other))
		t.Logf("COM_STMT_PREPARE USE: %v", err)
		if serverCode(err) != mysqlwire.ErNotAllowedCommand || !inDB(a, db) {
			t.Errorf("COM_STMT_PREPARE USE was not refused by the gateway: %v", err)
		}
	})
	t.Run("init-db", func(t *testing.T) {
		_, err := a.command(mysqlwire.AppendCommand(nil, mysqlwire.ComInitDB, other))
		t.Logf("COM_INIT_DB: %v", err)
		if err == nil || !inDB(a, db) {
			t.Fatal("COM_INIT_DB other was not refused")
		}
	})
	t.Run("kill", func(t *testing.T) {
		for _, q := range []string{
			"KILL " + vid,
			"KILL QUERY " + vid,
			"/*!KILL*/ " + vid,
			"/*!KILL " + vid + "*/",
			"/*!50000KILL*/ CONNECTION " + vid,
			"--\x01\nKILL " + vid,
			"KILL HARD " + vid,
			"EXECUTE IMMEDIATE 'KILL " + vid + "'",
			"BEGIN NOT ATOMIC KILL " + vid + "; END",
			"IF 1 THEN KILL " + vid + "; END IF",
		} {
			_, err := a.query(q)
			t.Logf("%q: %v", q, err)
			if !threads()[victim] {
				t.Fatalf("%q killed another session's upstream thread", q)
			}
		}
		r, err := a.command(mysqlwire.AppendCommand(nil, mysqlwire.ComStmtPrepare, "KILL "+vid))
		t.Logf("COM_STMT_PREPARE KILL: %+v %v", r, err)
		if err == nil {
			x := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0}
			x[1] = byte(r.StmtID)
			_, err = a.command(x)
			t.Logf("COM_STMT_EXECUTE KILL: %v", err)
		}
		if !threads()[victim] {
			t.Fatal("a prepared KILL killed another session's upstream thread")
		}
		if _, err := b.query("SELECT 1"); err != nil {
			t.Fatalf("the victim session: %v", err)
		}
	})
	t.Run("read-write", func(t *testing.T) {
		if _, err := a.query("SET SESSION TRANSACTION READ WRITE"); err != nil {
			t.Logf("SET SESSION TRANSACTION READ WRITE: %v", err)
		}
		_, err := a.query("INSERT INTO items VALUES (9,'nine')")
		t.Logf("INSERT after READ WRITE: %v", err)
		if serverCode(err) != 1142 {
			t.Fatalf("INSERT on the read account: %v, want ERROR 1142 (the account's privileges)", err)
		}
		_, err = a.query("SELECT * FROM `" + other + "`.secrets")
		t.Logf("SELECT other.secrets: %v", err)
		if serverCode(err) != 1142 {
			t.Fatalf("qualified name in another database: %v, want ERROR 1142", err)
		}
	})
	t.Run("reset-connection", func(t *testing.T) {
		_, err := a.command([]byte{byte(mysqlwire.ComResetConnection)})
		t.Logf("COM_RESET_CONNECTION: %v", err)
		if err == nil {
			t.Fatal("COM_RESET_CONNECTION relayed on a read grant")
		}
		_, err = a.command([]byte{byte(mysqlwire.ComChangeUser), 'r', 'o', 'o', 't', 0})
		t.Logf("COM_CHANGE_USER: %v", err)
		if err == nil {
			t.Fatal("COM_CHANGE_USER relayed")
		}
		_, err = a.command([]byte{byte(mysqlwire.ComSetOption), 0, 0})
		t.Logf("COM_SET_OPTION multi on: %v", err)
		if err == nil {
			t.Fatal("COM_SET_OPTION MULTI_STATEMENTS_ON relayed")
		}
		_, err = a.query("SELECT 1; USE " + other)
		t.Logf("multi-statement text: %v", err)
		if err == nil || !inDB(a, db) {
			t.Fatal("a multi-statement ran")
		}
	})
	t.Run("load-data-local", func(t *testing.T) {
		_, err := a.query("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE items")
		t.Logf("LOAD DATA LOCAL INFILE: %v", err)
		if err == nil {
			t.Fatal("LOAD DATA LOCAL INFILE succeeded on a read grant")
		}
	})
	t.Run("cursor", func(t *testing.T) {
		r, err := a.command(mysqlwire.AppendCommand(nil, mysqlwire.ComStmtPrepare, "SELECT id FROM items"))
		if err != nil {
			t.Fatal(err)
		}
		x := []byte{byte(mysqlwire.ComStmtExecute), byte(r.StmtID), byte(r.StmtID >> 8), 0, 0, mysqlwire.CursorReadOnly, 1, 0, 0, 0}
		_, err = a.command(x)
		t.Logf("COM_STMT_EXECUTE with a cursor: %v", err)
		if err == nil {
			t.Fatal("an execute opening a cursor was relayed")
		}
		if _, err := a.query("SELECT 1"); err != nil {
			t.Fatalf("the session after a refused cursor: %v", err)
		}
	})
	t.Run("processlist", func(t *testing.T) {
		// Documented, not prevented: on one brokered account the server
		// lists the other sessions' threads.
		r, err := a.query("SHOW PROCESSLIST")
		t.Logf("SHOW PROCESSLIST: %d rows, %v", r.Rows, err)
		if err != nil || r.Rows < 2 {
			t.Fatalf("SHOW PROCESSLIST on the shared account: %d rows, %v", r.Rows, err)
		}
	})
	t.Run("sequence", func(t *testing.T) {
		c := dial()
		// A command whose packet does not start at sequence id 0.
		c.cc.Conn.SetSeq(3)
		c.cc.Conn.WritePacket(mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, "SELECT 1"))
		c.cc.Net.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.cc.Conn.ResetSeq()
		p, err := c.cc.Conn.ReadPacket()
		if err != nil {
			t.Fatalf("out-of-sequence command: %v", err)
		}
		e, _ := mysqlwire.ParseErr(p)
		t.Logf("out-of-sequence command: %v", e)
		if e == nil || e.Code != 1927 {
			t.Fatalf("out-of-sequence command answered %x", p)
		}
		if _, err := c.cc.Conn.ReadPacket(); err == nil {
			t.Fatal("the session went on after an out-of-sequence command")
		}
	})
	t.Run("idle-at-revoke", func(t *testing.T) {
		h.fresh(tm.admin, tm.adminSecret)
		h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
		// b has sent nothing since its last command: the gateway tells it
		// why and closes the socket without waiting for it.
		b.cc.Net.SetReadDeadline(time.Now().Add(5 * time.Second))
		b.cc.Conn.ResetSeq() // between commands: it comes as the next response
		p, err := b.cc.Conn.ReadPacket()
		if err != nil {
			t.Fatalf("idle client at revoke: %v (no error packet)", err)
		}
		e, perr := mysqlwire.ParseErr(p)
		if perr != nil || e.Code != 1927 || !strings.Contains(e.Message, "revoked") {
			t.Fatalf("idle client at revoke: %v %v", e, perr)
		}
		if _, err := b.cc.Conn.ReadPacket(); err == nil {
			t.Fatal("the socket stayed open after the revoke")
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return !threads()[victim] }, "the upstream thread of the revoked session is still there")
	})
}
