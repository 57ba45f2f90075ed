package pgproxy

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/airlockhq/airlock/auth"
)

// loginServer is the server side of one upstream login in a unit test:
// method is "trust", "password", "md5", "scram", "scram-forged" (a server
// that does not know the verifier) or "error".
func loginServer(t *testing.T, c net.Conn, method, password string, salt []byte, got chan<- map[string]string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		t.Errorf("startup: %v", err)
		return
	}
	sm := m.(*pgproto3.StartupMessage)
	got <- sm.Parameters
	user := sm.Parameters["user"]
	fail := func(why string) {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: why})
		_ = be.Flush()
	}
	switch method {
	case "error":
		fail("database does not exist")
		return
	case "password":
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		_ = be.Flush()
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
		pm, err := be.Receive()
		if err != nil || pm.(*pgproto3.PasswordMessage).Password != password {
			fail("password authentication failed")
			return
		}
	case "md5":
		salt4 := []byte{1, 2, 3, 4}
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: [4]byte(salt4)})
		_ = be.Flush()
		be.SetAuthType(pgproto3.AuthTypeMD5Password)
		pm, err := be.Receive()
		if err != nil || pm.(*pgproto3.PasswordMessage).Password != md5Password(password, user, salt4) {
			fail("password authentication failed")
			return
		}
	case "scram", "scram-forged":
		be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}})
		_ = be.Flush()
		be.SetAuthType(pgproto3.AuthTypeSASL)
		m, err := be.Receive()
		if err != nil {
			return
		}
		srv := auth.NewSCRAMServer(salt, 4096)
		first, err := srv.ClientFirst(m.(*pgproto3.SASLInitialResponse).Data)
		if err != nil {
			t.Errorf("client-first: %v", err)
			return
		}
		be.Send(&pgproto3.AuthenticationSASLContinue{Data: first})
		_ = be.Flush()
		be.SetAuthType(pgproto3.AuthTypeSASLContinue)
		m, err = be.Receive()
		if err != nil {
			return
		}
		v := auth.NewSCRAMVerifier(password, salt, 4096)
		match, final, err := srv.ClientFinal(m.(*pgproto3.SASLResponse).Data, []auth.SCRAMVerifier{v})
		if match != 0 || err != nil {
			fail("password authentication failed")
			return
		}
		if method == "scram-forged" {
			final = []byte("v=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
		}
		be.Send(&pgproto3.AuthenticationSASLFinal{Data: final})
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "hello"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 77, SecretKey: []byte{9, 8, 7, 6}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	// A byte after ReadyForQuery must stay readable through upstream.r.
	be.Send(&pgproto3.ParameterStatus{Name: "after", Value: "rfq"})
	_ = be.Flush()
	_, _ = io.Copy(io.Discard, c)
}

func TestUpstreamLogin(t *testing.T) {
	g, err := New(Config{Auth: AuthenticatorFunc(nil), Audit: &sink{}})
	if err != nil {
		t.Fatal(err)
	}
	const pw = "s3cret-Upstream-pw"
	salt := []byte("0123456789abcdef")
	allowCleartext := true
	login := func(method, password string) (*upstream, map[string]string, error) {
		t.Helper()
		cc, sc := net.Pipe()
		got := make(chan map[string]string, 1)
		done := make(chan struct{})
		go func() { defer close(done); loginServer(t, sc, method, pw, salt, got) }()
		t.Cleanup(func() { cc.Close(); <-done })
		_ = cc.SetDeadline(time.Now().Add(10 * time.Second))
		up, err := g.login(cc, password, map[string]string{"user": "app", "database": "db", "application_name": "x"}, allowCleartext)
		return up, <-got, err
	}
	for _, method := range []string{"trust", "password", "md5", "scram", "scram"} { // scram twice: cached keys
		up, params, err := login(method, pw)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if params["user"] != "app" || params["database"] != "db" || params["application_name"] != "x" {
			t.Fatalf("%s: startup parameters %v", method, params)
		}
		if up.pid != 77 || !bytes.Equal(up.secret, []byte{9, 8, 7, 6}) || up.txStatus != 'I' || up.params["server_version"] != "15.0" {
			t.Fatalf("%s: %+v", method, up)
		}
		typ, body, err := readTyped(up.r, 100)
		if err != nil || typ != 'S' || !bytes.HasPrefix(body, []byte("after\x00")) {
			t.Fatalf("%s: message after ReadyForQuery: %c %q %v", method, typ, body, err)
		}
	}
	if n := len(g.scram.m); n != 1 {
		t.Fatalf("SCRAM cache holds %d entries after two logins with one password, want 1", n)
	}
	for _, c := range []struct{ method, password, want string }{
		{"password", "wrong", "password authentication failed"},
		{"md5", "wrong", "password authentication failed"},
		{"scram", "wrong", "password authentication failed"},
		{"scram-forged", pw, "invalid SCRAM server signature"},
		{"error", pw, "database does not exist"},
	} {
		_, _, err := login(c.method, c.password)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s with %q: err %v, want %q", c.method, c.password, err, c.want)
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("error shows the password: %v", err)
		}
	}
	// Without allowCleartext a cleartext request is refused before the
	// password is sent (the server sees no PasswordMessage and fails).
	allowCleartext = false
	if _, _, err := login("password", pw); !errors.Is(err, ErrCleartextRefused) || strings.Contains(err.Error(), pw) {
		t.Fatalf("cleartext request without allowCleartext: %v", err)
	}
	for _, method := range []string{"md5", "scram"} {
		if _, _, err := login(method, pw); err != nil {
			t.Fatalf("%s without allowCleartext: %v", method, err)
		}
	}
}

func TestPlainPassword(t *testing.T) {
	for pw, want := range map[string]bool{"": true, "abc DEF~!": true, "tab\t": false, "é": false, "\x7f": false} {
		if plainPassword(pw) != want {
			t.Errorf("plainPassword(%q) != %v", pw, want)
		}
	}
}

// TestUpstreamSCRAMCacheRealPostgres checks that the gateway logs in to a
// real PostgreSQL (SCRAM-SHA-256) with keys derived once.
func TestUpstreamSCRAMCacheRealPostgres(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		c := e.connect(t, "read-token")
		var one int
		if err := c.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("query: %v", err)
		}
		c.Close(t.Context())
	}
	e.gw.scram.mu.Lock()
	n := len(e.gw.scram.m)
	e.gw.scram.mu.Unlock()
	if n != 1 {
		t.Fatalf("SCRAM cache holds %d entries after three sessions with one credential, want 1", n)
	}
}

// FuzzUpstreamLogin feeds arbitrary server bytes to the upstream login:
// it must end with a connection or an error, never panic or hang.
func FuzzUpstreamLogin(f *testing.F) {
	msg := func(typ byte, body []byte) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return append(b, body...)
	}
	ok := bytes.Join([][]byte{
		msg('R', []byte{0, 0, 0, 0}),
		msg('S', []byte("a\x00b\x00")),
		msg('K', []byte{0, 0, 0, 1, 1, 2, 3, 4}),
		msg('Z', []byte{'I'}),
	}, nil)
	f.Add(ok)
	f.Add(msg('R', []byte{0, 0, 0, 10, 'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0, 0}))
	f.Add(msg('R', append([]byte{0, 0, 0, 11}, "r=xyz,s=c2FsdA==,i=1"...)))
	f.Add(msg('R', append([]byte{0, 0, 0, 12}, "v=AAAA"...)))
	f.Add(msg('E', []byte("SFATAL\x00C28P01\x00Mno\x00\x00")))
	f.Add([]byte{'R', 0, 0, 0, 3})
	g, err := New(Config{Auth: AuthenticatorFunc(nil), Audit: &sink{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cc, sc := net.Pipe()
		defer cc.Close()
		go func() { _, _ = io.Copy(io.Discard, sc) }()
		go func() { _, _ = sc.Write(data); sc.Close() }()
		_ = cc.SetDeadline(time.Now().Add(5 * time.Second))
		up, err := g.login(cc, "pw", map[string]string{"user": "u"}, true)
		if (err == nil) != (up != nil) {
			t.Fatalf("login returned %v and %v", up, err)
		}
		if up != nil && !bytes.Contains(data, []byte{'Z', 0, 0, 0, 5}) {
			t.Fatal("login succeeded without ReadyForQuery")
		}
	})
}
