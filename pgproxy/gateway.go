package pgproxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbmetrics"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/internal/netguard"
)

// Gateway implements the root package's gateway contract.
var _ airlock.Gateway = (*Gateway)(nil)

// ErrGatewayClosed is returned by Serve after Shutdown.
var ErrGatewayClosed = errors.New("pgproxy: gateway closed")

// Messages the client sees. They never depend on why a token failed.
const (
	msgInvalidToken      = "airlock: invalid or expired connect token (run `airlock psql RESOURCE` to get a new one)"
	msgTLSRequired       = "airlock: TLS required: connect with sslmode=require (plaintext is only accepted from loopback when the server allows it)"
	msgRevoked           = "airlock: grant revoked — session closed"
	msgUserDisabled      = "airlock: user disabled — session closed"
	msgKilled            = "airlock: session killed by an administrator"
	msgShutdown          = "airlock: server shutting down — session closed"
	msgAuditFailed       = "airlock: audit log unavailable — session closed"
	msgTooLarge          = "airlock: message too large or malformed — session closed"
	msgDuringCopy        = "airlock: a message other than CopyData, CopyDone, CopyFail, Flush or Sync during COPY FROM STDIN — session closed"
	msgTooManyNames      = "airlock: too many prepared statements or portals open in one session — session closed"
	msgUnavailable       = "airlock: store unavailable — retry; GET /readyz on the Airlock server shows when it is back"
	msgUpstreamError     = "airlock: cannot connect to the resource's database; try again, or ask an administrator to check the resource"
	msgUpstreamCleartext = "airlock: the resource's database asked for a cleartext password over a connection whose server certificate is not verified; " +
		"refused without sending it (an administrator must set sslmode verify-full or verify-ca, or allow_cleartext_password, on the resource)"
)

// msgTooManyPending answers a connection over Config.Pending's bounds.
const msgTooManyPending = "airlock: too many pending connections; try again shortly"

// SQLSTATEs used in the gateway's FATAL messages.
const (
	codeInvalidPassword       = "28P01"
	codeInvalidAuth           = "28000"
	codeAdminShutdown         = "57P01"
	codeIdleTimeout           = "57P05"
	codeTooManyConns          = "53300"
	codeCannotConnect         = "57P03"
	codeProtocol              = "08P01"
	codeConnFailure           = "08006"
	codeFeature               = "0A000"
	codeInsufficientPrivilege = "42501"
)

// Gateway is the PostgreSQL gateway. It is safe for concurrent use.
type Gateway struct {
	cfg Config
	// hashKey keys the hash column masks (Config.ColumnHashKey).
	hashKey []byte
	log     *slog.Logger
	now     func() time.Time
	m       *dbmetrics.Metrics
	base    *pgconn.Config

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	pending   map[net.Conn]struct{} // connections still in the handshake
	// preauth bounds the audit events of refusals before authentication
	// (startup parameters): one per source and 10 s.
	preauth netguard.Budget
	byPID   map[uint32]*session // live sessions by client-facing pid

	sessions gwsession.Registry // live sessions

	scram scramCache    // upstream SCRAM keys
	pool  *upstreamPool // idle upstream connections; nil when disabled
	wg    sync.WaitGroup
}

// New validates cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Auth == nil {
		return nil, errors.New("pgproxy: Config.Auth is required")
	}
	if cfg.Audit == nil {
		return nil, errors.New("pgproxy: Config.Audit is required")
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
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = netguard.DefaultHandshakeTimeout
	}
	cfg.Pending = cfg.Pending.WithDefaults()
	if cfg.UpstreamIdle == 0 {
		cfg.UpstreamIdle = DefaultUpstreamIdle
	}
	if cfg.UpstreamIdleTimeout <= 0 {
		cfg.UpstreamIdleTimeout = time.Minute
	}
	if cfg.UpstreamLifetime <= 0 {
		cfg.UpstreamLifetime = time.Hour
	}
	m, err := dbmetrics.New(cfg.Registerer, "pg", "PostgreSQL")
	if err != nil {
		return nil, fmt.Errorf("pgproxy: register metrics: %w", err)
	}
	// A base upstream config parsed once; explicit settings override the
	// PG* environment, and every per-connection field is set in connect.
	base, err := pgconn.ParseConfig("host=127.0.0.1 port=5432 sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("pgproxy: base upstream config: %w", err)
	}
	base.Fallbacks = nil
	base.ValidateConnect = nil
	base.AfterConnect = nil
	base.OnNotice = nil
	base.OnNotification = nil
	g := &Gateway{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, m: m, base: base,
		preauth:   netguard.Budget{Interval: 10 * time.Second, MaxSources: 10000, Now: cfg.Now},
		listeners: map[net.Listener]struct{}{},
		pending:   map[net.Conn]struct{}{},
		byPID:     map[uint32]*session{},
	}
	if cfg.UpstreamIdle > 0 {
		g.pool = newUpstreamPool(cfg.UpstreamIdle, cfg.UpstreamIdleTimeout, cfg.UpstreamLifetime)
	}
	g.hashKey = cfg.ColumnHashKey
	if len(g.hashKey) == 0 {
		g.hashKey = make([]byte, 32)
		if _, err := rand.Read(g.hashKey); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// IdleUpstreams returns how many upstream connections wait for reuse.
func (g *Gateway) IdleUpstreams() int {
	if g.pool == nil {
		return 0
	}
	return g.pool.idleCount()
}

// ListenAndServe listens on Config.Addr and serves until ctx ends or
// Shutdown is called.
func (g *Gateway) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("pgproxy: listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends or Shutdown is called,
// then closes ln and returns ErrGatewayClosed. It never stops on an accept
// error (EMFILE, ECONNABORTED, …): it backs off and serves on
// (netguard.Listener); it returns another error only when ln was closed
// by someone else. Connections over Config.Pending's bounds are refused
// with FATAL 53300 before they are read. Ending ctx does not close live
// sessions; Shutdown does.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	gl := netguard.NewListener(ln, "pg", g.log)
	pending := netguard.NewPending("pg", g.cfg.Pending, g.log)
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
		g.m.Refused("too_many_pending")
		refusePending(c)
	}, func(c net.Conn, release func()) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			release()
			c.Close()
			return
		}
		g.pending[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		go g.handle(c, release)
	})
	if err != nil {
		return fmt.Errorf("pgproxy: accept: %w", err)
	}
	return ErrGatewayClosed
}

// refusePending answers a connection over the pending-handshake bounds
// with FATAL 53300 and closes it. The write goes to an empty socket
// buffer, so it does not block the accept loop (and is cut short if it
// would).
func refusePending(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.Write(fatal(codeTooManyConns, msgTooManyPending))
	c.Close()
}

func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Shutdown stops accepting, closes every live session with a FATAL
// "server shutting down" message and waits for them to end or ctx to be
// done.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if g.pool != nil {
		g.pool.close()
	}
	g.mu.Lock()
	g.closed = true
	for ln := range g.listeners {
		ln.Close()
	}
	for c := range g.pending {
		c.Close()
	}
	g.mu.Unlock()
	g.sessions.Drain(airlock.EndServerShutdown)
	return gwsession.WaitGroup(ctx, &g.wg)
}

// CloseGrant closes every live session under grantID, records reason as
// their end reason (airlock.EndGrantRevoked when empty) and sends the FATAL
// message for it ("airlock: grant revoked — session closed"). It returns
// how many it closed.
func (g *Gateway) CloseGrant(grantID string, reason airlock.EndReason) int {
	return g.sessions.CloseGrant(grantID, reason)
}

// CloseUser closes every live session of userID, recording reason
// (airlock.EndUserDisabled when empty), and returns how many it closed.
func (g *Gateway) CloseUser(userID string, reason airlock.EndReason) int {
	return g.sessions.CloseUser(userID, reason)
}

// CloseSession closes the live session id, recording reason
// (airlock.EndSessionKilled when empty), and reports whether it was live.
func (g *Gateway) CloseSession(id string, reason airlock.EndReason) bool {
	return g.sessions.CloseSession(id, reason)
}

// closeMsg is the FATAL message a session closed from outside gets.
func closeMsg(r airlock.EndReason) string {
	switch r {
	case airlock.EndGrantRevoked:
		return msgRevoked
	case airlock.EndUserDisabled:
		return msgUserDisabled
	case airlock.EndSessionKilled:
		return msgKilled
	case airlock.EndServerShutdown:
		return msgShutdown
	}
	return "airlock: " + r.Text() + " — session closed"
}

// ActiveSessions returns a snapshot of the live sessions, oldest first,
// with bytes and statements counted so far.
func (g *Gateway) ActiveSessions() []airlock.Session { return g.sessions.ActiveSessions() }

// handle runs one client connection: handshake, then the relay. release
// gives back the connection's pending-handshake slot; it is called once the
// client has authenticated, or when handle returns.
func (g *Gateway) handle(c net.Conn, release func()) {
	defer g.wg.Done()
	defer release()
	defer func() {
		g.mu.Lock()
		delete(g.pending, c)
		g.mu.Unlock()
	}()
	s, err := g.handshake(c, release)
	g.mu.Lock()
	delete(g.pending, c)
	g.mu.Unlock()
	if err != nil || s == nil {
		c.Close()
		if s != nil {
			s.client.Close()
		}
		return
	}
	s.run()
}

// conn is the client side during the handshake.
type clientConn struct {
	net.Conn
	r      *bufio.Reader
	tls    bool
	params map[string]string
	// authenticated gives back the pending-handshake slot.
	authenticated func()
}

// handshake negotiates TLS, reads the startup packet, authenticates the
// client, connects upstream and registers the session. It returns nil
// (and has answered the client) when the connection must end.
func (g *Gateway) handshake(raw net.Conn, authenticated func()) (*session, error) {
	deadline := time.Now().Add(g.cfg.HandshakeTimeout)
	_ = raw.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	cc := &clientConn{Conn: raw, r: bufio.NewReaderSize(raw, readBufSize), authenticated: authenticated}
	source := raw.RemoteAddr().String()
	for {
		pkt, err := readStartup(cc.r)
		if err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(pkt[:4])
		switch {
		case code == 80877103: // SSLRequest
			if cc.tls || cc.r.Buffered() > 0 {
				return nil, errProtocol // no data may follow before the answer
			}
			if g.cfg.TLS == nil {
				if _, err := cc.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := cc.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(raw, g.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, err
			}
			cc.Conn, cc.tls = tc, true
			cc.r.Reset(tc)
		case code == 80877104: // GSSENCRequest
			if cc.r.Buffered() > 0 {
				return nil, errProtocol
			}
			if _, err := cc.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code == 80877102: // CancelRequest
			g.cancel(pkt)
			return nil, nil
		case code>>16 == 3:
			return g.startup(ctx, cc, source, code, pkt[4:])
		default:
			writeFatal(cc, codeFeature, "airlock: unsupported frontend protocol")
			return nil, nil
		}
	}
}

// startup handles the StartupMessage through to the first ReadyForQuery.
func (g *Gateway) startup(ctx context.Context, cc *clientConn, source string, version uint32, body []byte) (*session, error) {
	params := map[string]string{}
	var unknownOpts []string
	for len(body) > 1 {
		k, rest, ok := cstring(body)
		if !ok {
			return nil, errProtocol
		}
		v, rest2, ok := cstring(rest)
		if !ok {
			return nil, errProtocol
		}
		body = rest2
		if len(params) > 64 {
			return nil, errProtocol
		}
		if len(k) > 3 && string(k[:4]) == "_pq_" {
			unknownOpts = append(unknownOpts, string(k))
			continue
		}
		params[string(k)] = string(v)
	}
	cc.params = params
	user, database := params["user"], params["database"]
	if database == "" {
		database = user
	}
	if user == "" {
		writeFatal(cc, codeInvalidAuth, "airlock: no user: connect with your Airlock user name as the user and the resource name as the database")
		return nil, nil
	}
	if !cc.tls && !(g.cfg.AllowLoopbackPlaintext && isLoopback(cc.RemoteAddr())) {
		g.m.Refused("tls_required")
		writeFatal(cc, codeInvalidAuth, msgTLSRequired)
		return nil, nil
	}
	if r := checkStartupParams(params); r != nil {
		// Before authentication: no token is used up by a client that
		// would be refused anyway.
		g.m.Refused("startup_parameter")
		resource, _, _ := strings.Cut(database, "/")
		// Anyone can send this: audit the first per source and 10 s,
		// so that no unauthenticated client floods the log.
		if g.preauth.Allow(cc.RemoteAddr()) {
			g.cfg.Audit.Submit(airlock.Event{Actor: airlock.Actor{Name: truncateUTF8(user, 64)}, Action: "connect.refused",
				Resource: truncateUTF8(resource, 128), SourceAddr: source, Outcome: airlock.OutcomeDenied,
				Details: airlock.EventDetails("why", "startup parameter not allowed", "parameter", truncateUTF8(r.Parameter, 64))})
		}
		writeFatal(cc, codeInvalidAuth, r.Message)
		return nil, nil
	}
	var out []byte
	if version != pgproto3.ProtocolVersion30 || len(unknownOpts) > 0 {
		out, _ = (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknownOpts}).Encode(out)
	}
	req := AuthRequest{User: user, Database: database, SourceAddr: source, TLS: cc.tls}
	var t *Target
	var authDone []byte // sent just before AuthenticationOk
	var err error
	if sa, ok := g.cfg.Auth.(SCRAMAuthenticator); ok && !cc.tls {
		t, authDone, err = g.scramAuthenticate(ctx, cc, sa, req, out)
	} else {
		t, err = g.passwordAuthenticate(ctx, cc, req, out)
	}
	if err != nil || t == nil {
		return nil, err
	}
	cc.authenticated() // a session now, bounded by its grant: free the slot
	s := newSession(g, t, cc)
	if !g.now().Before(t.EndsAt) {
		g.m.Refused("expired")
		g.auditRefusal(s, "grant_expired")
		writeFatal(cc, codeAdminShutdown, expiredMsg(t.EndsAt))
		return nil, nil
	}

	s.app = params["application_name"]
	if msg := g.reserve(s); msg != "" {
		g.m.Refused("too_many")
		g.auditRefusal(s, "max_concurrent")
		writeFatal(cc, codeTooManyConns, msg)
		return nil, nil
	}
	ok := false
	defer func() {
		if !ok {
			g.unregister(s)
		}
	}()

	up, err := g.connectUpstream(ctx, t, params)
	if err != nil {
		g.m.Refused("upstream")
		g.log.Warn("pgproxy: upstream connect failed", "session", s.id, "resource", t.Resource, "err", err)
		if errors.Is(err, ErrCleartextRefused) {
			g.auditRefusal(s, "upstream_cleartext_refused")
			writeFatal(cc, codeInvalidAuth, msgUpstreamCleartext)
			return nil, nil
		}
		g.auditRefusal(s, "upstream_unavailable")
		writeFatal(cc, codeConnFailure, msgUpstreamError)
		return nil, nil
	}
	if t.Statements.HasMasks() {
		cat, err := loadCatalog(up, t.Statements, maskCatalogTimeout)
		if err != nil {
			up.conn.Close()
			g.m.Refused("upstream")
			g.log.Warn("pgproxy: masking catalog", "session", s.id, "resource", t.Resource, "err", err)
			g.auditRefusal(s, "mask_catalog_unavailable")
			writeFatal(cc, codeConnFailure, "airlock: cannot read the database's catalog to mask columns; try again later")
			return nil, nil
		}
		s.guard.cat = cat
		s.mask = &maskState{cat: cat, key: g.hashKey}
	}
	s.attachUpstream(up)
	if g.cfg.Sessions != nil {
		if err := g.cfg.Sessions.CreateSession(ctx, &s.info); err != nil {
			up.conn.Close()
			g.log.Error("pgproxy: record session", "session", s.id, "err", err)
			writeFatal(cc, codeConnFailure, "airlock: cannot record the session; try again later")
			return nil, nil
		}
	}
	s.start() // session.started + receipt watcher + deadline timers

	out = append(out[:0], authDone...)
	out, _ = (&pgproto3.AuthenticationOk{}).Encode(out)
	for _, k := range sortedKeys(up.params) {
		out, _ = (&pgproto3.ParameterStatus{Name: k, Value: up.params[k]}).Encode(out)
	}
	out, _ = (&pgproto3.BackendKeyData{ProcessID: s.clientPID, SecretKey: s.clientSecret[:]}).Encode(out)
	out, _ = (&pgproto3.ReadyForQuery{TxStatus: up.txStatus}).Encode(out)
	if _, err := s.cw.Write(out); err != nil {
		s.kill(airlock.EndClientClosed, "", "")
	}
	_ = cc.SetDeadline(time.Time{})
	ok = true
	return s, nil
}

// expiredMsg is the FATAL message of a session cut at its grant's end.
func expiredMsg(t time.Time) string {
	return "airlock: grant expired at " + t.UTC().Format(time.RFC3339) + " — session closed"
}

// reserve registers s unless the gateway is closing or the user is over
// MaxConcurrent for the grant; it returns the refusal message.
func (g *Gateway) reserve(s *session) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return msgShutdown
	}
	release, ok := g.sessions.Reserve(s.t.UserID, s.t.GrantID, s.t.MaxConcurrent)
	if !ok {
		return fmt.Sprintf("airlock: too many concurrent sessions under this grant (limit %d); close one and retry", s.t.MaxConcurrent)
	}
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) &^ (1 << 31) // positive, like a real pid
		if _, taken := g.byPID[pid]; taken || pid == 0 {
			continue
		}
		s.clientPID = pid
		copy(s.clientSecret[:], b[4:])
		g.byPID[pid] = s
		break
	}
	if !g.sessions.Add(&s.live) {
		release()
		delete(g.byPID, s.clientPID)
		return msgShutdown
	}
	s.releaseSlot = release
	return ""
}

func (g *Gateway) unregister(s *session) {
	if s.releaseSlot != nil {
		s.releaseSlot() // before Remove: once not listed, the slot is free
	}
	g.sessions.Remove(&s.live)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byPID[s.clientPID] == s {
		delete(g.byPID, s.clientPID)
	}
}

// auditRefusal records a connection refused after authentication.
func (g *Gateway) auditRefusal(s *session, reason string) {
	e := s.event("session.denied", airlock.OutcomeDenied, struct {
		Reason string `json:"reason"`
	}{reason})
	g.cfg.Audit.Submit(e)
}

// cancel forwards a client's CancelRequest to the upstream backend of the
// session it names, if the client-facing key matches.
func (g *Gateway) cancel(pkt []byte) {
	if len(pkt) != 12 {
		return
	}
	pid := binary.BigEndian.Uint32(pkt[4:8])
	g.mu.Lock()
	s := g.byPID[pid]
	g.mu.Unlock()
	if s == nil || subtle.ConstantTimeCompare(pkt[8:12], s.clientSecret[:]) != 1 {
		return
	}
	s.mu.Lock()
	upPID, upSecret := s.upPID, s.upSecret
	if upSecret != nil {
		s.cancels.Add(1) // the upstream is not reused until this is sent
	}
	s.mu.Unlock()
	if upSecret == nil {
		return
	}
	defer s.cancels.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sendCancel(ctx, s.t, upPID, upSecret); err != nil {
		// It may still arrive later: never hand this backend on.
		s.cancelFailed.Store(true)
		g.log.Warn("pgproxy: forward cancel", "session", s.id, "err", err)
		return
	}
	s.submit(s.event("db.cancel", airlock.OutcomeSuccess, nil))
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
