package mysqlproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/mysqlwire"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/secrets"
)

// The gateway against real MariaDB, with its Authenticator and audit
// pipeline faked: the invariants that need a failing or slow audit log,
// which the end-to-end tests cannot arrange.

func TestMain(m *testing.M) { testenv.RunMain(m) }

type auth struct{ t *Target }

func (a auth) Authenticate(_ context.Context, req AuthRequest) (*Target, error) {
	if req.Token.Reveal() != "ct_good" {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "bad token")
	}
	c := *a.t
	return &c, nil
}

type receipt struct {
	done chan struct{}
	err  error
}

func (r *receipt) Done() <-chan struct{} { return r.done }
func (r *receipt) Err() error            { return r.err }
func (r *receipt) Seq() int64            { return 0 }

// pipeline settles receipts at once, failing the events fail picks, or
// holds them until release when hold is set.
type pipeline struct {
	mu     sync.Mutex
	fail   func(airlock.Event) bool
	hold   bool
	held   []*receipt
	events []airlock.Event
}

func (p *pipeline) Submit(e airlock.Event) airlock.AuditPending {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	r := &receipt{done: make(chan struct{})}
	switch {
	case p.fail != nil && p.fail(e):
		r.err = errors.New("disk full")
		close(r.done)
	case p.hold && e.Action == "db.query":
		p.held = append(p.held, r)
	default:
		close(r.done)
	}
	return r
}
func (p *pipeline) Flush() {}
func (p *pipeline) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.held {
		close(r.done)
	}
	p.held = nil
}
func (p *pipeline) ended() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.Action == "session.ended" {
			return string(e.Details)
		}
	}
	return ""
}

func startGateway(t *testing.T, edit func(*Target), audit *pipeline) (*Gateway, *mysqlwire.ClientConn) {
	t.Helper()
	return startGatewayWith(t, edit, audit, nil)
}

// startGatewayWith is startGateway with the gateway's metrics in reg.
func startGatewayWith(t *testing.T, edit func(*Target), audit *pipeline, reg prometheus.Registerer) (*Gateway, *mysqlwire.ClientConn) {
	t.Helper()
	m := testenv.MariaDB(t)
	db := m.NewDatabase(t)
	user := "gwt" + strings.ReplaceAll(db, "_", "")[len(db)-6:]
	m.CreateUser(t, user, "pw-1", "ALL ON `"+db+"`.*")
	tg := &Target{UserID: "usr_a", UserName: "alice", GrantID: "gr_1", Resource: "prod-mysql", Access: "write",
		EndsAt: time.Now().Add(time.Hour), UpstreamAddr: m.Addr, UpstreamDatabase: db, Databases: []string{db},
		UpstreamUser: user, UpstreamPassword: secrets.Secret("pw-1")}
	if edit != nil {
		edit(tg)
	}
	caPEM, cert := testenv.ServerTLS(t)
	g, err := New(Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Auth: auth{tg}, Audit: audit, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go g.Serve(ctx, ln)
	t.Cleanup(func() { cancel(); g.Shutdown(context.Background()) })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := mysqlwire.Dial(context.Background(), "tcp", ln.Addr().String(), mysqlwire.ClientConfig{User: "alice", Password: []byte("ct_good"),
		Database: "prod-mysql", TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatalf("dial the gateway: %v", err)
	}
	t.Cleanup(func() { c.Net.Close() })
	return g, c
}

// query runs sql and returns the server's answer (nil error: OK or rows).
func query(c *mysqlwire.ClientConn, sql string) (*mysqlwire.Result, error) {
	c.Conn.ResetSeq()
	p := mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, sql)
	if err := c.Conn.WritePacket(p); err != nil {
		return nil, err
	}
	tr := mysqlwire.NewResponseTracker(c.Capabilities)
	if _, err := tr.Begin(p, c.Conn.Seq()); err != nil {
		return nil, err
	}
	for {
		h, prefix, err := c.Conn.Next()
		if err != nil {
			return nil, err
		}
		step, err := tr.Feed(h, prefix)
		if err != nil {
			return nil, err
		}
		if err := c.Conn.Discard(); err != nil {
			return nil, err
		}
		if step == mysqlwire.StepDone {
			r := tr.Result()
			return &r, nil
		}
	}
}

// Invariant 7: a statement event the audit log cannot keep closes the
// session (end reason audit_unavailable).
func TestAuditFailureClosesSession(t *testing.T) {
	audit := &pipeline{fail: func(e airlock.Event) bool { return e.Action == "db.query" }}
	_, c := startGateway(t, nil, audit)
	query(c, "SELECT 1") // its event fails; the session is closed under it
	testenv.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(audit.ended(), string(airlock.EndAuditUnavailable))
	}, "session.ended with audit_unavailable; got %q", audit.ended())
	if _, err := query(c, "SELECT 2"); err == nil {
		t.Fatal("the session still runs statements after its audit failed")
	}
}

// Invariant 7, strict mode: a statement is not forwarded before its event
// is durable.
func TestStrictAuditHoldsStatement(t *testing.T) {
	audit := &pipeline{hold: true}
	_, c := startGateway(t, func(tg *Target) { tg.StrictAudit = true }, audit)
	done := make(chan *mysqlwire.Result, 1)
	go func() { r, _ := query(c, "SELECT 1"); done <- r }()
	select {
	case <-done:
		t.Fatal("a strict session answered before the statement's event was durable")
	case <-time.After(300 * time.Millisecond):
	}
	audit.release()
	select {
	case r := <-done:
		if r == nil || r.Err != nil || r.Rows != 1 {
			t.Fatalf("after the event is durable: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the statement never ran")
	}
}

// Invariant 3: a revocation cuts a running statement within 1 s, and the
// client is told why.
func TestCloseGrantCutsStatement(t *testing.T) {
	audit := &pipeline{}
	g, c := startGateway(t, nil, audit)
	done := make(chan error, 1)
	go func() {
		r, err := query(c, "SELECT SLEEP(30)")
		if err == nil && r.Err != nil {
			err = r.Err
		}
		done <- err
	}()
	testenv.Eventually(t, 5*time.Second, func() bool {
		audit.mu.Lock()
		defer audit.mu.Unlock()
		for _, e := range audit.events {
			if e.Action == "db.query" {
				return true
			}
		}
		return false
	}, "the statement was never forwarded")
	if n := g.CloseGrant("gr_1", airlock.EndGrantRevoked); n != 1 {
		t.Fatalf("CloseGrant closed %d sessions", n)
	}
	select {
	case err := <-done:
		var se *mysqlwire.ServerError
		if !errors.As(err, &se) || !strings.Contains(se.Message, "grant revoked") {
			t.Fatalf("the client got %v, want the reason", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the statement was not cut")
	}
}

// The idle timeout ends a session with no command for that long, telling
// the client why, but never one whose statement is still running.
func TestIdleTimeout(t *testing.T) {
	audit := &pipeline{}
	_, c := startGateway(t, func(tg *Target) { tg.IdleTimeout = 400 * time.Millisecond }, audit)
	r, err := query(c, "SELECT SLEEP(1.5)") // longer than the timeout, busy all along
	if err != nil || r.Err != nil {
		t.Fatalf("a statement longer than the idle timeout was cut: %v %+v", err, r)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(audit.ended(), string(airlock.EndIdleTimeout))
	}, "session.ended with idle_timeout; got %q", audit.ended())
	if _, err := query(c, "SELECT 1"); err == nil {
		t.Fatal("the idle session still runs statements")
	}
}

// The gateway's metrics are the shared set (dbmetrics.Metrics), named
// airlock_mysql_…: live sessions, statements, connections by result,
// upstream logins, bytes at the end.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, c := startGatewayWith(t, nil, &pipeline{}, reg)
	for _, q := range []string{"SELECT 1", "SELECT 2"} {
		if r, err := query(c, q); err != nil || r.Err != nil {
			t.Fatalf("%s: %v %+v", q, err, r)
		}
	}
	gather := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				total += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		return total
	}
	if v := gather("airlock_mysql_sessions_active"); v != 1 {
		t.Errorf("sessions_active %v", v)
	}
	if v := gather("airlock_mysql_statements_total"); v != 2 {
		t.Errorf("statements_total %v", v)
	}
	if v := gather("airlock_mysql_upstream_connections_total"); v != 1 {
		t.Errorf("upstream_connections_total %v", v)
	}
	if v := gather("airlock_mysql_connections_total"); v != 1 {
		t.Errorf("connections_total %v (one ok)", v)
	}
	g.CloseGrant("gr_1", airlock.EndGrantRevoked)
	testenv.Eventually(t, 5*time.Second, func() bool { return gather("airlock_mysql_sessions_active") == 0 }, "sessions_active back to 0")
	if v := gather("airlock_mysql_bytes_total"); v <= 0 {
		t.Errorf("bytes_total %v", v)
	}
}
