package pgproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// First-packet codes of a PostgreSQL connection (the 4 bytes after the length).
const (
	pktSSLRequest = 80877103
	pktCancel     = 80877102
	pktStartup30  = 196608
)

// upstreamTap is a TCP relay between the gateway and the real upstream that
// records the first packet of every connection, so a test can see whether
// the gateway asked for TLS before sending anything else. With refuseTLS it
// plays a server without TLS: it answers SSLRequest with 'N' and records
// (but never forwards) what the client sends next.
type upstreamTap struct {
	ln        net.Listener
	target    string
	refuseTLS bool

	mu     sync.Mutex
	firsts [][]uint32 // per connection: first packet code, then the next one after an 'N'
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newUpstreamTap(t *testing.T, target string, refuseTLS bool) *upstreamTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &upstreamTap{ln: ln, target: target, refuseTLS: refuseTLS, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c) {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *upstreamTap) addr() string { return p.ln.Addr().String() }

// track registers c to be closed at cleanup; false once cleanup began.
func (p *upstreamTap) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// readFirst reads a length-prefixed first packet and returns its code.
func readFirst(c net.Conn) ([]byte, uint32, error) {
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > 10000 {
		return hdr, binary.BigEndian.Uint32(hdr[4:]), nil
	}
	pkt := make([]byte, n)
	copy(pkt, hdr)
	if _, err := io.ReadFull(c, pkt[8:]); err != nil {
		return nil, 0, err
	}
	return pkt, binary.BigEndian.Uint32(hdr[4:]), nil
}

func (p *upstreamTap) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	pkt, code, err := readFirst(c)
	if err != nil {
		return
	}
	p.mu.Lock()
	i := len(p.firsts)
	p.firsts = append(p.firsts, []uint32{code})
	p.mu.Unlock()
	if p.refuseTLS && code == pktSSLRequest {
		if _, err := c.Write([]byte{'N'}); err != nil {
			return
		}
		if _, code, err := readFirst(c); err == nil {
			p.mu.Lock()
			p.firsts[i] = append(p.firsts[i], code)
			p.mu.Unlock()
		}
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer up.Close()
	_ = c.SetDeadline(time.Time{})
	if _, err := up.Write(pkt); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// connections returns the recorded first packets, one slice per connection.
func (p *upstreamTap) connections() [][]uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]uint32, len(p.firsts))
	for i, f := range p.firsts {
		out[i] = append([]uint32(nil), f...)
	}
	return out
}

// allTLS fails the test unless at least min connections were made and each
// began with SSLRequest and sent nothing else in the clear.
func (p *upstreamTap) allTLS(t *testing.T, min int) {
	t.Helper()
	conns := p.connections()
	if len(conns) < min {
		t.Fatalf("upstream saw %d connections, want at least %d", len(conns), min)
	}
	for i, f := range conns {
		if f[0] != pktSSLRequest || len(f) > 1 {
			t.Fatalf("upstream connection %d began with packets %v, want only SSLRequest (%d) in the clear", i, f, pktSSLRequest)
		}
	}
}

// tlsEnv is an env whose upstream PostgreSQL serves TLS; it returns the
// pool holding the cluster's CA.
func tlsEnv(t *testing.T) (*env, *x509.CertPool) {
	t.Helper()
	e := newEnv(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.pg.EnableTLS(t)) {
		t.Fatal("cluster CA does not parse")
	}
	return e, pool
}

// sslInSession reports pg_stat_ssl.ssl of the upstream backend serving c.
func sslInSession(t *testing.T, c *pgx.Conn) bool {
	t.Helper()
	var ssl bool
	if err := c.QueryRow(t.Context(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatalf("pg_stat_ssl: %v", err)
	}
	return ssl
}

// TestUpstreamTLS pins that a target with UpstreamTLS reaches the real
// PostgreSQL over TLS, verified against the pinned CA, with ServerName left
// empty (the gateway fills in the upstream host; an empty ServerName
// without InsecureSkipVerify would fail the handshake otherwise) or set to
// "127.0.0.1"; and that nothing but the SSLRequest crosses the wire in
// the clear.
func TestUpstreamTLS(t *testing.T) {
	e, pool := tlsEnv(t)
	tap := newUpstreamTap(t, e.targets["read-token"].UpstreamAddr, false)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamAddr, tg.UpstreamTLS = tap.addr(), &tls.Config{RootCAs: pool}
	})
	e.target("write-token", func(tg *Target) {
		tg.UpstreamAddr, tg.UpstreamTLS = tap.addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	})
	for _, tc := range []struct{ token, user string }{{"read-token", e.reader}, {"write-token", e.writer}} {
		c := e.connect(t, tc.token)
		if !sslInSession(t, c) {
			t.Fatalf("%s: upstream backend is not on TLS", tc.token)
		}
		var who string
		var n int
		if err := c.QueryRow(t.Context(), "SELECT current_user, (SELECT count(*) FROM items)").Scan(&who, &n); err != nil || who != tc.user || n != 2 {
			t.Fatalf("%s: current_user=%q items=%d err=%v", tc.token, who, n, err)
		}
		c.Close(t.Context())
	}
	if n := len(e.sink.Find("session.started", "")); n != 2 {
		t.Fatalf("%d session.started events, want 2", n)
	}
	tap.allTLS(t, 2)
	// The caller's config is cloned, never written to.
	e.target("read-token", func(tg *Target) {
		if tg.UpstreamTLS.ServerName != "" {
			t.Fatalf("gateway wrote ServerName %q into the target's tls.Config", tg.UpstreamTLS.ServerName)
		}
	})
}

// refusedUpstream connects with token, expects the gateway's generic
// upstream failure, and returns the gateway's log.
func refusedUpstream(t *testing.T, e *env, token, wantLog string) string {
	t.Helper()
	started := len(e.sink.Find("session.started", ""))
	c, err := pgx.Connect(t.Context(), e.dsn(token, "disable"))
	if err == nil {
		c.Close(context.Background())
		t.Fatal("session opened over an upstream TLS connection that must be refused")
	}
	if pgCode(err) != codeConnFailure || !contains(err, msgUpstreamError) {
		t.Fatalf("client error: %v; want %s %q", err, codeConnFailure, msgUpstreamError)
	}
	ev := e.waitEvent(t, "session.denied")
	if detail(ev, "reason") != "upstream_unavailable" {
		t.Fatalf("session.denied details %s, want reason upstream_unavailable", ev.Details)
	}
	if n := len(e.sink.Find("session.started", "")); n != started {
		t.Fatalf("session.started for a refused upstream (%d events, %d before)", n, started)
	}
	e.waitSessions(t, 0)
	logs := e.logs.String()
	if !strings.Contains(logs, "upstream connect failed") || !strings.Contains(logs, wantLog) {
		t.Fatalf("gateway log lacks the cause %q:\n%s", wantLog, logs)
	}
	return logs
}

// TestUpstreamTLSWrongCA pins that an upstream whose certificate does not
// chain to the pinned CA is refused: the client gets the generic upstream
// error, the audit log a session.denied and no session.started, the
// gateway never falls back to plaintext, and it serves a correct session
// right after.
func TestUpstreamTLSWrongCA(t *testing.T) {
	e, pool := tlsEnv(t)
	_, otherCA := selfSigned(t)
	tap := newUpstreamTap(t, e.targets["read-token"].UpstreamAddr, false)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamAddr, tg.UpstreamTLS = tap.addr(), &tls.Config{RootCAs: otherCA}
	})
	refusedUpstream(t, e, "read-token", "certificate signed by unknown authority")
	tap.allTLS(t, 1)

	e.target("read-token", func(tg *Target) { tg.UpstreamTLS = &tls.Config{RootCAs: pool} })
	c := e.connect(t, "read-token")
	if !sslInSession(t, c) {
		t.Fatal("upstream backend is not on TLS")
	}
	if ev := e.waitEvent(t, "session.started"); ev.GrantID != "gr_read" {
		t.Fatalf("session.started for grant %q", ev.GrantID)
	}
	tap.allTLS(t, 2)
}

// TestUpstreamTLSServerNameMismatch pins verify-full: a certificate from
// the right CA that does not name ServerName is refused.
func TestUpstreamTLSServerNameMismatch(t *testing.T) {
	e, pool := tlsEnv(t)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamTLS = &tls.Config{RootCAs: pool, ServerName: "db.example.com"}
	})
	refusedUpstream(t, e, "read-token", "db.example.com")
}

// TestUpstreamTLSRefusedNoFallback pins that an upstream which answers
// SSLRequest with 'N' fails the connect: the gateway sends no startup
// message (and so no credential) in the clear.
func TestUpstreamTLSRefusedNoFallback(t *testing.T) {
	e, pool := tlsEnv(t)
	tap := newUpstreamTap(t, e.targets["read-token"].UpstreamAddr, true)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamAddr, tg.UpstreamTLS = tap.addr(), &tls.Config{RootCAs: pool}
	})
	refusedUpstream(t, e, "read-token", "refused TLS")
	tap.allTLS(t, 1)
}

// TestUpstreamTLSCancel pins that a client's CancelRequest (sent by pgx
// when the query's context is cancelled) reaches a TLS upstream over TLS
// and cancels the statement with 57014.
func TestUpstreamTLSCancel(t *testing.T) {
	e, pool := tlsEnv(t)
	tap := newUpstreamTap(t, e.targets["read-token"].UpstreamAddr, false)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamAddr, tg.UpstreamTLS = tap.addr(), &tls.Config{RootCAs: pool}
	})
	cfg, err := pgx.ParseConfig(e.dsn("read-token", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 20 * time.Second}
	}
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	defer c.Close(context.Background())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	e.waitQuery(t, "SELECT pg_sleep(30)")
	cancel()
	select {
	case err := <-done:
		if pgCode(err) != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("query not cancelled")
	}
	e.waitEvent(t, "db.cancel")
	if !sslInSession(t, c) {
		t.Fatal("session unusable or not on TLS after the cancel")
	}
	tap.allTLS(t, 2) // the login and the cancel
	var cancels int
	for _, f := range tap.connections() {
		if f[0] == pktCancel {
			cancels++
		}
	}
	if cancels != 0 {
		t.Fatalf("%d CancelRequests sent to the upstream in the clear", cancels)
	}
}

// TestUpstreamTLSPasswordNeverLeaks pins that over a TLS upstream the
// brokered passwords reach neither the gateway's log nor an audit event,
// for a working session and for one the upstream refuses.
func TestUpstreamTLSPasswordNeverLeaks(t *testing.T) {
	e, pool := tlsEnv(t)
	for _, tok := range []string{"read-token", "write-token"} {
		e.target(tok, func(tg *Target) { tg.UpstreamTLS = &tls.Config{RootCAs: pool} })
	}
	c := e.connect(t, "write-token")
	if !sslInSession(t, c) {
		t.Fatal("upstream backend is not on TLS")
	}
	c.Close(t.Context())
	e.target("read-token", func(tg *Target) { tg.UpstreamPassword = "wrong-" + tg.UpstreamPassword })
	logs := refusedUpstream(t, e, "read-token", "password authentication failed")
	e.waitEvent(t, "session.ended")
	e.noUpstreamPasswords(t, logs)
}

// TestUpstreamTLSReuse: a TLS upstream connection is kept and serves the
// next session with the same login and the same Target.UpstreamTLSKey, still
// on TLS; a different key or none never gets it, and without a key
// nothing is kept.
func TestUpstreamTLSReuse(t *testing.T) {
	e, pool := tlsEnv(t)
	setKey := func(key string) {
		e.target("read-token", func(tg *Target) { tg.UpstreamTLS, tg.UpstreamTLSKey = &tls.Config{RootCAs: pool}, key })
	}
	session := func() (pid int) {
		c := e.simpleConnect(t, "read-token")
		if !sslInSession(t, c) {
			t.Fatal("upstream backend is not on TLS")
		}
		pid = backendPID(t, c)
		if err := c.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	setKey("verify-full\nca-1")
	first := session()
	e.waitIdle(t, 1)
	if again := session(); again != first {
		t.Fatalf("second session got backend %d, want the kept %d", again, first)
	}
	e.waitIdle(t, 1)
	started := e.sink.Find("session.started", "")
	if n := len(started); n != 2 || detail(started[1], "upstream_reused") != true || detail(started[1], "upstream_tls") != true {
		t.Fatalf("session.started events: %d, last %s", n, started[n-1].Details)
	}

	setKey("verify-full\nca-2")
	if other := session(); other == first {
		t.Fatalf("a target with other TLS settings got the kept backend %d", first)
	}
	e.waitIdle(t, 2) // one kept per key

	// A plaintext target with the same key never gets the TLS backend.
	e.target("read-token", func(tg *Target) { tg.UpstreamTLS, tg.UpstreamTLSKey = nil, "verify-full\nca-1" })
	c := e.simpleConnect(t, "read-token")
	if sslInSession(t, c) || backendPID(t, c) == first {
		t.Fatal("a plaintext target got the kept TLS backend")
	}
	c.Close(t.Context())

	setKey("")
	if none := session(); none == first {
		t.Fatalf("a target without a TLS key got the kept backend %d", first)
	}
	// session.ended is recorded after the upstream was kept or closed.
	if !e.sink.await(10*time.Second, func() bool { return len(e.sink.Find("session.ended", "")) >= 5 }) {
		t.Fatal("the fifth session did not end")
	}
	if n := e.gw.IdleUpstreams(); n != 3 {
		t.Fatalf("%d kept upstream connections, want 3: one per TLS key and the plaintext one, none for TLS without a key", n)
	}
}
