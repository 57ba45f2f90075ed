package mysqlwire

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// testServer is the client-facing half of a gateway built from this
// package's primitives, as the gateway author would: it presents a
// HandshakeV10, upgrades on SSLRequest, negotiates, authenticates a token
// with the method of its mode, and answers a few commands itself. Real
// clients (go-sql-driver/mysql, the mariadb CLI) talk to it.
type testServer struct {
	addr  string
	seen  chan login
	token []byte
}

type login struct {
	user, db, plugin string
	attrs            []Attr
	tls              bool
	err              error
}

type authMode int

const (
	modeNative      authMode = iota // verify a native-password scramble against NativePasswordHash(token)
	modeSHA2                        // switch to caching_sha2_password, verify the fast-auth scramble
	modeClear                       // switch to mysql_clear_password (only inside TLS)
	modeClearAnyway                 // switch to mysql_clear_password even without TLS: what a hostile server could do
	modeSHA2Full                    // caching_sha2_password, then ask for full authentication (the password)
)

func startTestServer(t *testing.T, mode authMode, cert *tls.Certificate) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), seen: make(chan login, 16), token: []byte("al_tok_0123456789")}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
				l := s.serve(nc, mode, cert)
				s.seen <- l
			}()
		}
	}()
	return s
}

func (s *testServer) serve(nc net.Conn, mode authMode, cert *tls.Certificate) (l login) {
	c := NewConn(nc)
	c.MaxPacket = PreAuthMaxPacket
	scramble, err := NewScramble()
	if err != nil {
		return login{err: err}
	}
	offered := ServerCapabilities
	if cert != nil {
		offered |= CapSSL
	}
	hs := &ServerHandshake{ServerVersion: "10.11.0-airlock", ConnectionID: 99, Scramble: scramble,
		Capabilities: offered, Charset: DefaultCharset, Status: StatusAutocommit, AuthPlugin: NativePassword}
	if mode == modeSHA2Full {
		hs.AuthPlugin = CachingSHA2
	}
	if err := c.WritePacket(hs.Append(nil)); err != nil {
		return login{err: err}
	}
	p, err := c.ReadPacket()
	if err != nil {
		return login{err: err}
	}
	if IsSSLRequest(p) && cert != nil {
		if _, err := c.StartTLS(context.Background(), nc, &tls.Config{Certificates: []tls.Certificate{*cert}}, true); err != nil {
			return login{err: err}
		}
		l.tls = true
		if p, err = c.ReadPacket(); err != nil {
			return login{err: err}
		}
	}
	refuse := func(e *ServerError) login {
		_ = c.WritePacket(e.Append(nil))
		l.err = e
		return l
	}
	hr, err := ParseHandshakeResponse(p)
	if err != nil {
		return refuse(&ServerError{Code: ErHandshakeError, State: "08S01", Message: "bad handshake"})
	}
	l.user, l.db, l.plugin, l.attrs = hr.User, hr.Database, hr.AuthPlugin, hr.Attrs
	caps, err := Negotiate(offered, hr.Capabilities)
	if err != nil {
		var se *ServerError
		errors.As(err, &se)
		return refuse(se)
	}
	denied := &ServerError{Code: ErAccessDenied, State: "28000", Message: "airlock: invalid or expired connect token"}
	switch mode {
	case modeNative:
		resp := hr.AuthResponse
		if hr.AuthPlugin != NativePassword {
			if err := c.WritePacket(AppendAuthSwitchRequest(nil, NativePassword, scramble)); err != nil {
				return login{err: err}
			}
			if resp, err = c.ReadPacket(); err != nil {
				return login{err: err}
			}
		}
		if !VerifyNativePassword(NativePasswordHash(s.token), scramble, resp) {
			return refuse(denied)
		}
	case modeSHA2:
		s2, _ := NewScramble()
		if err := c.WritePacket(AppendAuthSwitchRequest(nil, CachingSHA2, s2)); err != nil {
			return login{err: err}
		}
		resp, err := c.ReadPacket()
		if err != nil {
			return login{err: err}
		}
		if !VerifyCachingSHA2(CachingSHA2Hash(s.token), s2, resp) {
			return refuse(denied)
		}
		if err := c.WritePacket(AppendAuthMoreData(nil, CachingSHA2FastAuthOK)); err != nil {
			return login{err: err}
		}
	case modeSHA2Full:
		if hr.AuthPlugin != CachingSHA2 || len(hr.AuthResponse) != 32 {
			return refuse(denied)
		}
		if err := c.WritePacket(AppendAuthMoreData(nil, CachingSHA2PerformFull)); err != nil {
			return login{err: err}
		}
		resp, err := c.ReadPacket()
		if err != nil {
			return login{err: err}
		}
		pw, err := ParseClearPassword(resp)
		if err != nil || !bytes.Equal(pw, s.token) {
			return refuse(denied)
		}
	case modeClear, modeClearAnyway:
		if !l.tls && mode == modeClear {
			return refuse(&ServerError{Code: ErAccessDenied, State: "28000", Message: "airlock: connect with TLS"})
		}
		if err := c.WritePacket(AppendAuthSwitchRequest(nil, ClearPassword, nil)); err != nil {
			return login{err: err}
		}
		resp, err := c.ReadPacket()
		if err != nil {
			return login{err: err}
		}
		pw, err := ParseClearPassword(resp)
		if err != nil || !bytes.Equal(pw, s.token) {
			return refuse(denied)
		}
	}
	if err := c.WritePacket(AppendOK(nil, OK{Status: StatusAutocommit})); err != nil {
		return login{err: err}
	}
	c.MaxPacket = 0
	for {
		c.ResetSeq()
		p, err := c.ReadPacket()
		if err != nil {
			return l
		}
		q, err := ParseCommand(p)
		if err != nil {
			return refuse(&ServerError{Code: ErUnknownCom, State: "08S01", Message: "malformed"})
		}
		switch q.Command {
		case ComQuit:
			return l
		case ComQuery:
			// One column, one row: the query's first word; enough for
			// clients to show a result.
			_ = c.WritePacket([]byte{1})
			_ = c.WritePacket(colDef("w"))
			if !caps.Has(CapDeprecateEOF) {
				_ = c.WritePacket(eof(StatusAutocommit))
			}
			_ = c.WritePacket(textRow(strings.Fields(q.Text + " x")[0]))
			if caps.Has(CapDeprecateEOF) {
				_ = c.WritePacket(okp(0, StatusAutocommit, 0xfe))
			} else {
				_ = c.WritePacket(eof(StatusAutocommit))
			}
		case ComPing, ComInitDB:
			_ = c.WritePacket(AppendOK(nil, OK{Status: StatusAutocommit}))
		default:
			_ = c.WritePacket((&ServerError{Code: ErNotAllowedCommand, State: "42000",
				Message: "airlock: " + q.Command.String() + " is not allowed through the gateway"}).Append(nil))
		}
	}
}

func serverCert(t *testing.T) (*tls.Certificate, []byte) {
	t.Helper()
	ca, certPEM, keyPEM, err := testCerts()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert, ca
}

func (s *testServer) next(t *testing.T) login {
	t.Helper()
	select {
	case l := <-s.seen:
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("no login seen")
		return login{}
	}
}

func goSQL(t *testing.T, dsn string) error {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var w string
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&w); err != nil {
		return err
	}
	if w != "SELECT" {
		return fmt.Errorf("row %q", w)
	}
	return nil
}

// TestServerSideGoSQLDriver checks the server-side primitives against an
// independent client implementation, go-sql-driver/mysql.
func TestServerSideGoSQLDriver(t *testing.T) {
	cert, ca := serverCert(t)
	if err := mysql.RegisterTLSConfig("mysqlwire-test", &tls.Config{RootCAs: roots(t, ca), ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		mode  authMode
		token string
		dsn   string
		ok    bool
	}{
		{"ok/native-plaintext", modeNative, "al_tok_0123456789", "", true},
		{"fail/native-wrong-token", modeNative, "al_tok_0123456788", "", false},
		{"ok/caching-sha2-fast", modeSHA2, "al_tok_0123456789", "", true},
		{"fail/caching-sha2-wrong-token", modeSHA2, "nope", "", false},
		{"ok/clear-over-tls", modeClear, "al_tok_0123456789", "&tls=mysqlwire-test&allowCleartextPasswords=true", true},
		{"fail/clear-without-opt-in", modeClear, "al_tok_0123456789", "&tls=mysqlwire-test", false},
		{"fail/clear-without-tls", modeClear, "al_tok_0123456789", "&allowCleartextPasswords=true", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestServer(t, tc.mode, cert)
			err := goSQL(t, fmt.Sprintf("alice:%s@tcp(%s)/prod?timeout=10s%s", tc.token, s.addr, tc.dsn))
			l := s.next(t)
			if tc.ok {
				if err != nil || l.err != nil {
					t.Fatalf("client %v, server %v", err, l.err)
				}
				if l.user != "alice" || l.db != "prod" {
					t.Fatalf("login %+v", l)
				}
				return
			}
			if err == nil {
				t.Fatal("client logged in")
			}
			t.Logf("client: %v; server: %v", err, l.err)
		})
	}
}

// TestServerSideMariaDBClient runs the real mariadb command-line client
// against the server-side primitives: native password (the client's
// default answer) without TLS, and mysql_clear_password inside TLS with
// the server certificate verified.
func TestServerSideMariaDBClient(t *testing.T) {
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("mariadb client not installed (apt-get install mariadb-client)")
	}
	cert, ca := serverCert(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(s *testServer, extra ...string) (string, error) {
		host, port, _ := net.SplitHostPort(s.addr)
		args := append([]string{"--no-defaults", "-h", host, "-P", port, "-u", "alice", "-N", "-B",
			"--connect-timeout=10", "-e", "SELECT 1", "prod"}, extra...)
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+string(s.token))
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	t.Run("ok/native-plaintext", func(t *testing.T) {
		s := startTestServer(t, modeNative, nil)
		out, err := run(s, "--skip-ssl")
		l := s.next(t)
		if err != nil || out != "SELECT" || l.err != nil {
			t.Fatalf("client %v %q, server %+v", err, out, l)
		}
		if l.plugin != NativePassword {
			t.Errorf("client answered with %q", l.plugin)
		}
	})
	t.Run("ok/clear-over-verified-tls", func(t *testing.T) {
		s := startTestServer(t, modeClear, cert)
		out, err := run(s, "--ssl", "--ssl-ca="+caFile, "--ssl-verify-server-cert")
		l := s.next(t)
		if err != nil || out != "SELECT" || l.err != nil || !l.tls {
			t.Fatalf("client %v %q, server %+v", err, out, l)
		}
	})
	// What the real client does when a server (or someone in the path)
	// asks for a cleartext password on a connection without TLS: it
	// sends it. The gateway therefore never asks outside TLS, and users
	// should connect with --ssl-verify-server-cert (airlock mysql does).
	t.Run("client-behaviour/mariadb-sends-cleartext-without-tls-when-asked", func(t *testing.T) {
		s := startTestServer(t, modeClearAnyway, nil)
		out, err := run(s, "--skip-ssl")
		l := s.next(t)
		t.Logf("client %v %q, server %+v", err, out, l.err)
		if err != nil || l.err != nil {
			t.Skipf("this mariadb client refuses cleartext without TLS (good): %v %s", err, out)
		}
	})
	t.Run("fail/clear-refused-without-tls", func(t *testing.T) {
		s := startTestServer(t, modeClear, nil)
		out, err := run(s, "--skip-ssl")
		l := s.next(t)
		if err == nil || l.err == nil || !strings.Contains(out, "connect with TLS") {
			t.Fatalf("client %v %q, server %+v", err, out, l)
		}
	})
}

// TestHandshakeAgainstTestServer drives the upstream Handshake through
// the methods real MariaDB 10.11 does not offer here: caching_sha2_password
// fast and full authentication, and cleartext requests, which it must
// answer only inside TLS.
func TestHandshakeAgainstTestServer(t *testing.T) {
	cert, ca := serverCert(t)
	tlsCfg := &tls.Config{RootCAs: roots(t, ca), ServerName: "localhost"}
	for _, tc := range []struct {
		name    string
		mode    authMode
		tls     bool
		refused bool // ErrAuthRefused before the password leaves
	}{
		{"ok/native", modeNative, false, false},
		{"ok/caching-sha2-switch-fast", modeSHA2, false, false},
		{"ok/caching-sha2-full-over-tls", modeSHA2Full, true, false},
		{"fail/caching-sha2-full-without-tls", modeSHA2Full, false, true},
		{"ok/clear-over-tls", modeClear, true, false},
		{"fail/clear-without-tls", modeClearAnyway, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestServer(t, tc.mode, cert)
			cfg := ClientConfig{User: "gw", Password: s.token, Database: "app", Capabilities: CapDeprecateEOF}
			if tc.tls {
				cfg.TLS = tlsCfg
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			cc, err := Dial(ctx, "tcp", s.addr, cfg)
			if tc.refused {
				if !errors.Is(err, ErrAuthRefused) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Net.Close()
			res, rows := roundTrip(t, cc, AppendCommand(nil, ComQuery, "HELLO there"))
			if res.Rows != 1 || fmt.Sprint(rows) != "[HELLO]" {
				t.Fatalf("%+v %q", res, rows)
			}
			cc.Net.Close() // the test server reports the login when the connection ends
			if l := s.next(t); l.err != nil || l.user != "gw" || l.db != "app" || l.tls != tc.tls {
				t.Fatalf("server saw %+v", l)
			}
		})
	}
}
