package pgproxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/secrets"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// donePending is a receipt that is already settled.
type donePending struct{ err error }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p donePending) Done() <-chan struct{} { return closedCh }
func (p donePending) Err() error            { return p.err }
func (p donePending) Seq() int64            { return 0 }

// heldPending settles when released.
type heldPending struct {
	done chan struct{}
	err  error
}

func (p *heldPending) Done() <-chan struct{} { return p.done }
func (p *heldPending) Err() error            { return p.err }
func (p *heldPending) Seq() int64            { return 0 }

// sink collects events. fail, when set, decides which receipts fail;
// hold, when set, decides which receipts wait for Release; lazy holds
// every receipt until Flush, like an audit log whose MaxDelay never ends.
type sink struct {
	mu      sync.Mutex
	events  []airlock.Event
	held    []*heldPending
	fail    func(airlock.Event) bool
	hold    func(airlock.Event) bool
	notify  chan airlock.Event
	changed chan struct{} // closed (and dropped) by the next Submit; see await
	lazy    bool
	lazyQ   []*heldPending
	flushes int
}

// Flush settles the receipts held by lazy.
func (s *sink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	for _, p := range s.lazyQ {
		close(p.done)
	}
	s.lazyQ = nil
}

func (s *sink) Submit(e airlock.Event) airlock.AuditPending {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	if s.notify != nil {
		select {
		case s.notify <- e:
		default:
		}
	}
	if s.fail != nil && s.fail(e) {
		return donePending{err: errors.New("disk full")}
	}
	if s.hold != nil && s.hold(e) {
		p := &heldPending{done: make(chan struct{})}
		s.held = append(s.held, p)
		return p
	}
	if s.lazy {
		p := &heldPending{done: make(chan struct{})}
		s.lazyQ = append(s.lazyQ, p)
		return p
	}
	return donePending{}
}

// await checks cond now and after each Submit until it reports true, and
// reports whether it did within timeout. cond must not hold s.mu.
func (s *sink) await(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return cond()
		}
	}
}

// Release settles every held receipt.
func (s *sink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.held {
		close(p.done)
	}
	s.held = nil
}

func (s *sink) Events() []airlock.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]airlock.Event(nil), s.events...)
}

// Find returns the events with action (and, if non-empty, kind).
func (s *sink) Find(action, kind string) []airlock.Event {
	var out []airlock.Event
	for _, e := range s.Events() {
		if e.Action != action {
			continue
		}
		if kind != "" && detail(e, "kind") != kind {
			continue
		}
		out = append(out, e)
	}
	return out
}

func detail(e airlock.Event, key string) any {
	var m map[string]any
	_ = json.Unmarshal(e.Details, &m)
	return m[key]
}

// env is one gateway in front of a fresh database with two roles.
type env struct {
	pg       *testenv.PG
	db       string
	gw       *Gateway
	addr     string
	port     int
	sink     *sink
	logs     *syncBuffer
	targets  map[string]*Target
	readPW   string
	writePW  string
	reader   string
	writer   string
	tlsCA    *x509.CertPool
	tokensMu sync.Mutex
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type envOpt func(*Config)

// newEnv starts a gateway with tokens "read-token" and "write-token".
func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	e := &env{pg: pg, db: db, sink: &sink{}, logs: &syncBuffer{}, targets: map[string]*Target{}}
	e.reader, e.writer = db+"_ro", db+"_rw"
	e.readPW, e.writePW = "rpw-"+randHex(t), "wpw-"+randHex(t)
	pg.Exec(t, db, fmt.Sprintf(`
		CREATE ROLE %[1]s LOGIN PASSWORD '%[2]s';
		CREATE ROLE %[3]s LOGIN PASSWORD '%[4]s';
		CREATE TABLE items (id int PRIMARY KEY, name text);
		INSERT INTO items VALUES (1, 'one'), (2, 'two');
		GRANT SELECT ON items TO %[1]s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON items TO %[3]s;`, e.reader, e.readPW, e.writer, e.writePW))
	t.Cleanup(func() {
		pg.Exec(t, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		pg.Exec(t, "postgres", "DROP ROLE IF EXISTS "+e.reader+"; DROP ROLE IF EXISTS "+e.writer)
	})
	up := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	base := Target{UserID: "usr_alice", UserName: "alice", Resource: "prod-db", EndsAt: time.Now().Add(time.Hour),
		UpstreamAddr: up, UpstreamDatabase: db}
	rt, wt := base, base
	rt.GrantID, rt.Access, rt.UpstreamUser, rt.UpstreamPassword, rt.ReadOnly = "gr_read", "read", e.reader, secrets.Secret(e.readPW), true
	wt.GrantID, wt.Access, wt.UpstreamUser, wt.UpstreamPassword = "gr_write", "write", e.writer, secrets.Secret(e.writePW)
	e.targets["read-token"], e.targets["write-token"] = &rt, &wt

	cert, pool := selfSigned(t)
	e.tlsCA = pool
	cfg := Config{
		TLS:                    &tls.Config{Certificates: []tls.Certificate{cert}},
		AllowLoopbackPlaintext: true,
		Auth: AuthenticatorFunc(func(ctx context.Context, req AuthRequest) (*Target, error) {
			e.tokensMu.Lock()
			defer e.tokensMu.Unlock()
			tg, ok := e.targets[req.Token.Reveal()]
			if !ok || req.User != tg.UserName || req.Database != tg.Resource {
				return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "bad token")
			}
			c := *tg
			return &c, nil
		}),
		Audit:  e.sink,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Node:   "test",
	}
	for _, o := range opts {
		o(&cfg)
	}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gw.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	e.gw, e.addr, e.port = gw, ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
	return e
}

// target lets a test adjust a token's target.
func (e *env) target(token string, f func(*Target)) {
	e.tokensMu.Lock()
	defer e.tokensMu.Unlock()
	f(e.targets[token])
}

// dsn is a URL through the gateway.
func (e *env) dsn(token, sslmode string) string {
	return fmt.Sprintf("postgres://alice:%s@127.0.0.1:%d/prod-db?sslmode=%s", token, e.port, sslmode)
}

func (e *env) connect(t testing.TB, token string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), e.dsn(token, "disable"))
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// waitSessions waits until the gateway has n live sessions.
func (e *env) waitSessions(t *testing.T, n int) {
	t.Helper()
	if !testenv.Poll(10*time.Second, func() bool { return len(e.gw.ActiveSessions()) == n }) {
		t.Fatalf("want %d live sessions, have %d", n, len(e.gw.ActiveSessions()))
	}
}

// waitEvent waits until an event with action is recorded.
func (e *env) waitEvent(t *testing.T, action string) airlock.Event {
	t.Helper()
	var found []airlock.Event
	if !e.sink.await(10*time.Second, func() bool { found = e.sink.Find(action, ""); return len(found) > 0 }) {
		t.Fatalf("no %s event", action)
	}
	return found[len(found)-1]
}

// noUpstreamPasswords fails t when a brokered password appears in logs or
// in any audit event's details.
func (e *env) noUpstreamPasswords(t *testing.T, logs string) {
	t.Helper()
	for _, pw := range []string{e.readPW, e.writePW} {
		if strings.Contains(logs, pw) {
			t.Fatalf("upstream password in logs:\n%s", logs)
		}
		for _, ev := range e.sink.Events() {
			if strings.Contains(string(ev.Details), pw) {
				t.Fatalf("upstream password in audit event %s", ev.Action)
			}
		}
	}
}

func randHex(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }
