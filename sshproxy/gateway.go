package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/sshca"
	"golang.org/x/crypto/ssh"
)

// Gateway implements the root package's gateway contract.
var _ airlock.Gateway = (*Gateway)(nil)

// DefaultAddr is where the gateway listens unless told otherwise.
const DefaultAddr = "127.0.0.1:7022"

// AuthRequest is what the gateway knows about a connecting user once their
// certificate has been verified and they proved possession of its key.
type AuthRequest struct {
	UserName   string // the certificate's principal: the Airlock user name
	GrantID    string // the certificate's airlock-grant@airlock.dev extension
	Resource   string // from the SSH user name
	Login      string // from the SSH user name or the certificate; may be ""
	SourceAddr string
	CertKeyID  string
	CertSerial uint64
}

// Authorizer decides whether an authenticated user may reach a resource.
// The server implements it: it checks that the grant is active, belongs to
// the user, covers the resource and that policy allows the login.
type Authorizer interface {
	// Authorize returns the target to connect to, or an *airlock.Error
	// (ENOTFOUND, EFORBIDDEN…) whose Message is shown to the user, e.g.
	// "no active grant for prod-web: run `airlock request prod-web --access ubuntu …`".
	Authorize(ctx context.Context, req AuthRequest) (*Target, error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, req AuthRequest) (*Target, error)

// Authorize implements Authorizer.
func (f AuthorizerFunc) Authorize(ctx context.Context, req AuthRequest) (*Target, error) {
	return f(ctx, req)
}

// Target is where an authorized connection goes and under which rules.
type Target struct {
	UserID, UserName string
	GrantID          string
	Resource         string
	Access           string // access level of the grant (informational)
	Login            string // OS account on the target; becomes the upstream certificate's principal
	Addr             string // host:port of the target's sshd
	// EndsAt is the grant's ends_at: the session is closed then.
	EndsAt time.Time
	// HostKey pins the target's host key. When nil the target must present
	// a host certificate from the Airlock host CA naming HostName (or the
	// host part of Addr).
	HostKey  ssh.PublicKey
	HostName string
	// Record records interactive sessions (shells and pty sessions);
	// RecordInput also records keystrokes.
	Record, RecordInput bool
	AllowPortForward    bool
	AllowAgentForward   bool
	// IdleTimeout closes the session after this long without data in
	// either direction; 0 disables it.
	IdleTimeout time.Duration
	// MaxConcurrent bounds live sessions of this user under this grant
	// on this gateway (0 = unlimited), like pgproxy.Target.MaxConcurrent:
	// a connection over it is refused during authentication (before the
	// target is dialled) and audited as session.denied with reason
	// max_concurrent.
	MaxConcurrent int
}

// SessionRecorder persists gateway sessions; airlock.SessionStore
// satisfies it.
type SessionRecorder interface {
	CreateSession(ctx context.Context, s *airlock.Session) error
	EndSession(ctx context.Context, s *airlock.Session) error
}

// Config configures a Gateway.
type Config struct {
	Addr       string     // listen address for ListenAndServe; DefaultAddr when empty
	HostSigner ssh.Signer // the gateway's host key, ideally certified (sshca.CA.HostSigner)
	CA         *sshca.CA  // verifies user certificates and signs upstream ones
	Auth       Authorizer
	Audit      airlock.Auditor // durable, fail-closed
	Sessions   SessionRecorder // optional
	Recordings recording.Store // required when any Target has Record
	Logger     *slog.Logger
	Now        func() time.Time
	Node       string // recorded in sessions (which replica holds them)

	// MaxUserCertLifetime rejects user certificates valid for longer
	// (not counting the sshca.Skew backdating). Default 5 minutes.
	MaxUserCertLifetime time.Duration
	// UpstreamCertLifetime is how long the per-session certificate for the
	// target lives after issue. Default 90 s: with the 30 s backdating the
	// validity window is 2 minutes.
	UpstreamCertLifetime time.Duration
	// HandshakeTimeout bounds the client's key exchange and authentication
	// (which includes connecting to the target). Default
	// netguard.DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// Pending bounds connections still in their key exchange or
	// authentication, per listener and per source address (defaults
	// netguard.DefaultMaxPending and DefaultMaxPendingPerSource); Serve
	// closes connections over them at once.
	Pending netguard.Limits
	// DialTimeout bounds connecting and authenticating to the target.
	// Default 10 s.
	DialTimeout time.Duration
	// Dial connects to targets; a net.Dialer when nil.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// NoticeTimeout bounds writing the closing notice before the
	// connection is cut. Default 300 ms.
	NoticeTimeout time.Duration
}

// Gateway is the SSH gateway: it authenticates users by Airlock
// certificate, connects them to targets with per-session certificates,
// relays, records and audits the sessions, and cuts them when their grant
// ends. Its methods are safe for concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // connections still authenticating
	closing   bool
	wg        sync.WaitGroup

	// sessions holds the live sessions, and the MaxConcurrent slots of the
	// sessions held or being set up, per user and grant.
	sessions gwsession.Registry
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.HostSigner == nil:
		return nil, errors.New("sshproxy: HostSigner is required")
	case cfg.CA == nil || cfg.CA.UserCA() == nil:
		return nil, errors.New("sshproxy: CA with a user CA key is required")
	case cfg.Auth == nil:
		return nil, errors.New("sshproxy: Auth is required")
	case cfg.Audit == nil:
		return nil, errors.New("sshproxy: Audit is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUserCertLifetime <= 0 {
		cfg.MaxUserCertLifetime = 5 * time.Minute
	}
	if cfg.UpstreamCertLifetime <= 0 {
		cfg.UpstreamCertLifetime = 90 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = netguard.DefaultHandshakeTimeout
	}
	cfg.Pending = cfg.Pending.WithDefaults()
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.NoticeTimeout <= 0 {
		cfg.NoticeTimeout = 300 * time.Millisecond
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	return &Gateway{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "sshproxy"),
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
	}, nil
}

// ListenAndServe listens on cfg.Addr and serves until ctx ends or Shutdown.
func (g *Gateway) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("sshproxy: listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends or Shutdown is called,
// then returns nil. It closes ln. It never stops on an accept error
// (EMFILE, ECONNABORTED, …): it backs off and serves on
// (netguard.Listener); it returns an error only when ln was closed by
// someone else. Connections over Config.Pending's bounds are closed at
// once.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	gl := netguard.NewListener(ln, "ssh", g.log)
	pending := netguard.NewPending("ssh", g.cfg.Pending, g.log)
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		gl.Close()
		return nil
	}
	g.listeners[gl] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, gl)
		g.mu.Unlock()
		gl.Close()
	}()
	closing := func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.closing
	}
	if err := netguard.AcceptLoop(ctx, gl, pending, closing, func(c net.Conn) { c.Close() },
		func(c net.Conn, release func()) { go g.serve(ctx, c, release) }); err != nil {
		return fmt.Errorf("sshproxy: accept: %w", err)
	}
	return nil
}

// ServeConn serves one client connection (a TCP connection, or stdio of
// a ProxyCommand) and returns when the session is over. It closes c.
func (g *Gateway) ServeConn(ctx context.Context, c net.Conn) { g.serve(ctx, c, func() {}) }

// serve is ServeConn; release gives back the connection's pending-handshake
// slot once it has authenticated (or ended).
func (g *Gateway) serve(ctx context.Context, c net.Conn, release func()) {
	defer release()
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		c.Close()
		return
	}
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	defer func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
	}()
	g.serveConn(ctx, c, release)
}

// Shutdown stops accepting connections, closes every live session with
// airlock.EndServerShutdown and waits for them to end or ctx to expire.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for ln := range g.listeners {
		ln.Close()
	}
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.sessions.Drain(airlock.EndServerShutdown)
	return gwsession.WaitGroup(ctx, &g.wg)
}

// CloseGrant closes every session under grantID, recording reason as
// their end reason (airlock.EndGrantRevoked when empty) and telling the
// user ("airlock: grant revoked — session closed"), and returns how many it
// closed. It returns once they are cut.
func (g *Gateway) CloseGrant(grantID string, reason airlock.EndReason) int {
	return g.sessions.CloseGrant(grantID, reason)
}

// CloseUser closes every session of userID, recording reason
// (airlock.EndUserDisabled when empty), and returns how many.
func (g *Gateway) CloseUser(userID string, reason airlock.EndReason) int {
	return g.sessions.CloseUser(userID, reason)
}

// CloseSession closes one session, recording reason (airlock.EndSessionKilled
// when empty), and reports whether it was live here.
func (g *Gateway) CloseSession(id string, reason airlock.EndReason) bool {
	return g.sessions.CloseSession(id, reason)
}

// ActiveSessions returns a snapshot of the live sessions on this gateway,
// oldest first.
func (g *Gateway) ActiveSessions() []airlock.Session { return g.sessions.ActiveSessions() }
