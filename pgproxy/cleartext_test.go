package pgproxy

import (
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// cleartextUpstream is a fake PostgreSQL server that asks every client for
// a cleartext password and records what it was sent. No real PostgreSQL
// can safely be made to play a server that harvests passwords, so this
// one stands in for it. With cert it offers TLS.
type cleartextUpstream struct {
	ln   net.Listener
	cert *tls.Certificate

	mu  sync.Mutex
	got []string // passwords received
	wg  sync.WaitGroup
}

func newCleartextUpstream(t *testing.T, cert *tls.Certificate) *cleartextUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &cleartextUpstream{ln: ln, cert: cert}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() { defer u.wg.Done(); u.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

func (u *cleartextUpstream) serve(c net.Conn) {
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := m.(*pgproto3.SSLRequest); ok {
		if u.cert == nil {
			_, _ = c.Write([]byte{'N'})
		} else {
			_, _ = c.Write([]byte{'S'})
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*u.cert}})
			if tc.Handshake() != nil {
				return
			}
			c = tc
			be = pgproto3.NewBackend(c, c)
		}
		if m, err = be.ReceiveStartupMessage(); err != nil {
			return
		}
	}
	if _, ok := m.(*pgproto3.StartupMessage); !ok {
		return
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil {
		return
	}
	be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
	pm, err := be.Receive()
	if err != nil {
		return
	}
	if p, ok := pm.(*pgproto3.PasswordMessage); ok {
		u.mu.Lock()
		u.got = append(u.got, p.Password)
		u.mu.Unlock()
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	_ = be.Flush()
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		if _, ok := m.(*pgproto3.Terminate); ok {
			return
		}
	}
}

func (u *cleartextUpstream) passwords() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

// TestUpstreamCleartextRefused pins that the brokered password is never
// sent in cleartext to an upstream whose certificate was not verified,
// unless the resource allows it: a fake upstream that asks for it (as one
// an admin points a resource at would) gets nothing.
func TestUpstreamCleartextRefused(t *testing.T) {
	cert, _ := selfSigned(t)
	cases := []struct {
		name      string
		tls       bool   // the fake offers TLS
		mode      string // resource sslmode
		allow     bool   // Target.AllowCleartextPassword
		wantSent  bool
		wantError string
	}{
		{name: "fail/plaintext", mode: "disable", wantError: "cleartext password"},
		{name: "fail/tls-require-unverified", tls: true, mode: "require", wantError: "cleartext password"},
		{name: "ok/tls-verify-full", tls: true, mode: "verify-full", wantSent: true},
		{name: "ok/tls-verify-ca", tls: true, mode: "verify-ca", wantSent: true},
		{name: "ok/plaintext-allowed", mode: "disable", allow: true, wantSent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var fc *tls.Certificate
			if c.tls {
				fc = &cert
			}
			up := newCleartextUpstream(t, fc)
			e := newEnv(t)
			var caPEM []byte
			if c.mode == "verify-full" || c.mode == "verify-ca" {
				caPEM = certPEM(cert)
			}
			upTLS, err := UpstreamTLSConfig(c.mode, caPEM)
			if err != nil {
				t.Fatal(err)
			}
			e.target("read-token", func(tg *Target) {
				tg.UpstreamAddr, tg.UpstreamTLS, tg.AllowCleartextPassword = up.ln.Addr().String(), upTLS, c.allow
			})
			conn, err := pgx.Connect(t.Context(), e.dsn("read-token", "disable"))
			if conn != nil {
				conn.Close(t.Context())
			}
			sent := up.passwords()
			if c.wantSent {
				if err != nil || len(sent) != 1 || sent[0] != e.readPW {
					t.Fatalf("connect: %v; upstream got %d passwords", err, len(sent))
				}
				return
			}
			if len(sent) != 0 {
				t.Fatalf("the brokered password was sent in cleartext to an unverified upstream")
			}
			if !contains(err, c.wantError) || !contains(err, "allow_cleartext_password") {
				t.Fatalf("client error %v, want one that says the cleartext request was refused", err)
			}
			ev := e.waitEvent(t, "session.denied")
			if r := detail(ev, "reason"); r != "upstream_cleartext_refused" {
				t.Fatalf("session.denied reason %v", r)
			}
			e.noUpstreamPasswords(t, e.logs.String())
			if !strings.Contains(e.logs.String(), "cleartext") {
				t.Fatalf("log does not say why:\n%s", e.logs.String())
			}
		})
	}
}

// TestUpstreamSCRAMStillWorks pins that refusing cleartext leaves the
// real cluster's SCRAM-SHA-256 login alone, in plaintext and over TLS
// with require (unverified), which must not send cleartext either.
func TestUpstreamSCRAMStillWorks(t *testing.T) {
	e, _ := tlsEnv(t)
	for _, mode := range []string{"disable", "require"} {
		upTLS, err := UpstreamTLSConfig(mode, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.target("read-token", func(tg *Target) { tg.UpstreamTLS, tg.UpstreamTLSKey = upTLS, mode })
		c := e.connect(t, "read-token")
		var n int
		if err := c.QueryRow(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%s: query over SCRAM login: %v", mode, err)
		}
		c.Close(t.Context())
	}
}
