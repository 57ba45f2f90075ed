package mysqlproxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbmetrics"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/internal/mysqlwire"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/secrets"
)

// Gateway implements the root package's gateway contract.
var _ airlock.Gateway = (*Gateway)(nil)

// ErrGatewayClosed is returned by Serve after Shutdown.
var ErrGatewayClosed = errors.New("mysqlproxy: gateway closed")

// serverVersion is what clients are told they talk to: MariaDB's
// compatibility prefix, so clients pick the MySQL 5.5+ dialect.
const serverVersion = "5.5.5-10.11.0-Airlock"

// Gateway is the MySQL/MariaDB gateway. Its methods are safe for
// concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger
	reg gwsession.Registry
	m   *dbmetrics.Metrics

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	byConnID  map[uint32]*session // live sessions by the connection id clients were told
	wg        sync.WaitGroup      // connections being handled
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.TLS == nil:
		return nil, errors.New("mysqlproxy: TLS is required (the connect token is accepted only inside TLS)")
	case cfg.Auth == nil:
		return nil, errors.New("mysqlproxy: Auth is required")
	case cfg.Audit == nil:
		return nil, errors.New("mysqlproxy: Audit is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = netguard.DefaultHandshakeTimeout
	}
	m, err := dbmetrics.New(cfg.Registerer, "mysql", "MySQL")
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: cfg.Logger.With("gateway", "mysql"), m: m, listeners: map[net.Listener]struct{}{}, byConnID: map[uint32]*session{}}, nil
}

// Serve accepts clients on ln until ctx is done or Shutdown; it never
// stops on a temporary accept error (netguard.Listener).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	gl := netguard.NewListener(ln, "mysql", g.log)
	pending := netguard.NewPending("mysql", g.cfg.Pending, g.log)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		gl.Close()
		return ErrGatewayClosed
	}
	g.listeners[gl] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, gl)
		g.mu.Unlock()
	}()
	err := netguard.AcceptLoop(ctx, gl, pending, g.isClosed, func(c net.Conn) {
		// Over the pending bounds: an ERR before anything is read.
		g.m.Refused("too_many_pending")
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		mysqlwire.NewConn(c).WritePacket((&mysqlwire.ServerError{Code: mysqlwire.ErConCount, State: "08004",
			Message: "airlock: too many pending connections; try again shortly"}).Append(nil))
		c.Close()
	}, func(c net.Conn, release func()) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			release()
			c.Close()
			return
		}
		g.wg.Add(1)
		g.mu.Unlock()
		go g.handle(c, release)
	})
	if err != nil {
		return fmt.Errorf("mysqlproxy: accept: %w", err)
	}
	return ErrGatewayClosed
}

func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// connID returns a fresh connection id not in use here.
func (g *Gateway) connID() uint32 {
	for {
		var b [4]byte
		rand.Read(b[:])
		id := binary.LittleEndian.Uint32(b[:]) & 0x7fffffff
		g.mu.Lock()
		_, used := g.byConnID[id]
		g.mu.Unlock()
		if id != 0 && !used {
			return id
		}
	}
}

// Shutdown stops accepting, ends every session with EndServerShutdown and
// waits for them (or ctx).
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	for l := range g.listeners {
		l.Close()
	}
	g.mu.Unlock()
	g.reg.Drain(airlock.EndServerShutdown)
	return gwsession.WaitGroup(ctx, &g.wg)
}

// CloseGrant ends every live session under grantID.
func (g *Gateway) CloseGrant(grantID string, reason airlock.EndReason) int {
	return g.reg.CloseGrant(grantID, reason)
}

// CloseUser ends every live session of userID.
func (g *Gateway) CloseUser(userID string, reason airlock.EndReason) int {
	return g.reg.CloseUser(userID, reason)
}

// CloseSession ends the live session id.
func (g *Gateway) CloseSession(id string, reason airlock.EndReason) bool {
	return g.reg.CloseSession(id, reason)
}

// ActiveSessions returns a snapshot of the live sessions.
func (g *Gateway) ActiveSessions() []airlock.Session { return g.reg.ActiveSessions() }

// refusal is what a client is told when it may not in.
var errBadToken = &mysqlwire.ServerError{Code: mysqlwire.ErAccessDenied, State: "28000",
	Message: "airlock: invalid or expired connect token (mint one: airlock mysql RESOURCE, or airlock connect RESOURCE)"}

// handle runs one client connection: handshake, authentication, the
// upstream login, then the session.
func (g *Gateway) handle(nc net.Conn, release func()) {
	defer g.wg.Done()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.HandshakeTimeout)
	defer cancel()
	nc.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	mc := mysqlwire.NewConn(nc)
	mc.MaxPacket = mysqlwire.PreAuthMaxPacket
	fail := func(e *mysqlwire.ServerError) { mc.WritePacket(e.Append(nil)) }

	scramble, err := mysqlwire.NewScramble()
	if err != nil {
		return
	}
	connID := g.connID()
	hs := &mysqlwire.ServerHandshake{ServerVersion: serverVersion, ConnectionID: connID, Scramble: scramble,
		Capabilities: mysqlwire.ServerCapabilities | mysqlwire.CapSSL, Charset: mysqlwire.DefaultCharset,
		Status: mysqlwire.StatusAutocommit, AuthPlugin: mysqlwire.NativePassword}
	if mc.WritePacket(hs.Append(nil)) != nil {
		return
	}
	p, err := mc.ReadPacket()
	if err != nil {
		return
	}
	if !mysqlwire.IsSSLRequest(p) {
		// Never ask for the token outside TLS: clients would send it.
		g.m.Refused("tls_required")
		fail(&mysqlwire.ServerError{Code: mysqlwire.ErAccessDenied, State: "28000",
			Message: "airlock: connect with TLS: the connect token is only accepted inside TLS (mariadb --ssl-verify-server-cert --ssl-ca CA; airlock mysql does it for you)"})
		return
	}
	tc, err := mc.StartTLS(ctx, nc, g.cfg.TLS, true)
	if err != nil {
		return
	}
	if p, err = mc.ReadPacket(); err != nil {
		return
	}
	hr, err := mysqlwire.ParseHandshakeResponse(p)
	if err != nil {
		fail(&mysqlwire.ServerError{Code: mysqlwire.ErHandshakeError, State: "08S01", Message: "airlock: bad handshake"})
		return
	}
	caps, err := mysqlwire.Negotiate(hs.Capabilities, hr.Capabilities)
	if err != nil {
		var se *mysqlwire.ServerError
		if errors.As(err, &se) {
			fail(se)
		}
		return
	}
	if mc.WritePacket(mysqlwire.AppendAuthSwitchRequest(nil, mysqlwire.ClearPassword, nil)) != nil {
		return
	}
	if p, err = mc.ReadPacket(); err != nil {
		return
	}
	pw, err := mysqlwire.ParseClearPassword(p)
	if err != nil {
		fail(errBadToken)
		return
	}
	source := nc.RemoteAddr().String()
	t, err := g.cfg.Auth.Authenticate(ctx, AuthRequest{User: hr.User, Database: hr.Database, Token: secrets.Secret(pw), SourceAddr: source})
	clear(pw)
	if err != nil {
		switch airlock.ErrorCode(err) {
		case airlock.EFORBIDDEN:
			g.m.Refused("refused")
			fail(&mysqlwire.ServerError{Code: mysqlwire.ErDBAccessDenied, State: "42000", Message: "airlock: " + airlock.ErrorMessage(err)})
		case airlock.EUNAVAILABLE:
			g.m.Refused("unavailable")
			fail(&mysqlwire.ServerError{Code: mysqlwire.ErUnknownError, State: "HY000", Message: "airlock: the server cannot check the token now; try again"})
		default:
			g.m.Refused("auth_failed")
			fail(errBadToken)
		}
		return
	}
	release()
	released = true
	s := newSession(g, t, mc, tc, connID, caps, source, hr)
	s.run(ctx)
}
