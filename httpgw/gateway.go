package httpgw

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/secrets"
)

// Gateway implements the root package's gateway contract.
var _ airlock.Gateway = (*Gateway)(nil)

// ErrGatewayClosed is returned by Serve after Shutdown.
var ErrGatewayClosed = errors.New("httpgw: gateway closed")

// Gateway is the HTTP gateway: it serves each app at its own host,
// authenticates every request by app cookie or bearer token, audits it
// before forwarding it with the brokered credential and a signed identity,
// and cuts the app's sessions when their grant ends. Its methods are safe
// for concurrent use.
type Gateway struct {
	cfg  Config
	door Door
	log  *slog.Logger
	// reqAction and respAction are the door's audit actions.
	reqAction, respAction string
	proxy                 *httputil.ReverseProxy
	srv                   *http.Server

	// reg holds every live session until its end is recorded (the
	// gateway contract's closes, ActiveSessions, Shutdown's drain);
	// sessions maps tokens to the session they open on this node.
	reg      gwsession.Registry
	mu       sync.Mutex
	sessions map[[32]byte]*session // by token hash
	apps     map[string]appEntry   // by host
	closed   bool
	wg       sync.WaitGroup // sessions' end recording

	tmu        sync.Mutex
	transports map[string]*http.Transport
}

type appEntry struct {
	app *App
	err error
	at  time.Time
}

// appCacheTTL is how long a host's app lookup is reused.
const appCacheTTL = 2 * time.Second

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	apps := cfg.Door == nil
	switch {
	case cfg.Auth == nil:
		return nil, errors.New("httpgw: Auth is required")
	case cfg.Audit == nil:
		return nil, errors.New("httpgw: Audit is required")
	case apps && cfg.Identity == nil:
		return nil, errors.New("httpgw: Identity is required")
	case apps && cfg.Domain == "":
		return nil, errors.New("httpgw: Domain is required")
	case apps && cfg.ConsoleURL == "":
		return nil, errors.New("httpgw: ConsoleURL is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = 2 * time.Minute
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultRecheck
	}
	if cfg.CopyBufferSize <= 0 {
		cfg.CopyBufferSize = DefaultCopyBufferSize
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	cfg.ConsoleURL = strings.TrimRight(cfg.ConsoleURL, "/")
	g := &Gateway{cfg: cfg, sessions: map[[32]byte]*session{}, apps: map[string]appEntry{}, transports: map[string]*http.Transport{}}
	if apps {
		g.cfg.Door = appsDoor{g}
	}
	g.door = g.cfg.Door
	g.reqAction, g.respAction = g.door.Actions()
	g.log = cfg.Logger.With("gateway", g.door.Kind())
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      roundTripperFunc(g.roundTrip),
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		// A response of unknown length or an event stream is flushed
		// after every write (the proxy does that whatever this says:
		// watches, logs -f, SSE). One of known length is written through
		// the connection's buffer and flushed at least every
		// knownLengthFlush: a small response leaves in one write with its
		// headers, where an immediate flush would send the headers on
		// their own from a timer goroutine.
		FlushInterval: knownLengthFlush,
		BufferPool:    newCopyBuffers(cfg.CopyBufferSize),
	}
	g.srv = &http.Server{
		Handler:           g,
		TLSConfig:         cfg.TLS,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleConnTimeout,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		// HTTP/1.1 only: upgrades (WebSocket) and the per-connection
		// bookkeeping below assume it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return g, nil
}

// Serve answers requests on ln until Shutdown, then returns
// ErrGatewayClosed. Connections are TLS when Config.TLS is set. It never
// stops on a temporary accept error (netguard.Listener).
func (g *Gateway) Serve(ln net.Listener) error {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		ln.Close()
		return ErrGatewayClosed
	}
	var l net.Listener = netguard.NewListener(ln, "http", g.log)
	var err error
	if g.cfg.TLS != nil {
		err = g.srv.Serve(tls.NewListener(l, g.cfg.TLS))
	} else {
		err = g.srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return ErrGatewayClosed
	}
	return err
}

// Handler returns the gateway as an http.Handler (for tests and for
// serving it behind another listener).
func (g *Gateway) Handler() http.Handler { return g }

// ServeHTTP routes a request through the door to its app's session.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.TransferEncoding) > 0 {
		// net/http reads the body by Transfer-Encoding and has already
		// dropped a Content-Length sent with it, so a CL+TE request (a
		// smuggling attempt) looks like any chunked one here. Close the
		// connection after answering (RFC 9112 6.1): whatever a front end
		// framed differently is never read as a request.
		w.Header().Set("Connection", "close")
	}
	app := g.door.Route(w, r)
	if app == nil {
		return
	}
	tok, browser := g.door.Token(r)
	if tok.IsZero() {
		g.door.Unauthenticated(w, r, app, "")
		return
	}
	s, err := g.session(r.Context(), app, tok, browser, r.RemoteAddr)
	if err != nil {
		g.door.Unauthenticated(w, r, app, airlock.ErrorMessage(err))
		return
	}
	s.serve(w, r)
}

// UpgradesTo reports whether the Upgrade header lists protocol (any
// version).
func UpgradesTo(h http.Header, protocol string) bool {
	for _, v := range h.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
			if strings.EqualFold(name, protocol) {
				return true
			}
		}
	}
	return false
}

// app returns the app at host, from a short-lived cache.
func (g *Gateway) app(ctx context.Context, host string) (*App, error) {
	now := time.Now()
	g.mu.Lock()
	e, ok := g.apps[host]
	g.mu.Unlock()
	if ok && now.Sub(e.at) < appCacheTTL {
		return e.app, e.err
	}
	a, err := g.cfg.Auth.App(ctx, host)
	if err != nil && airlock.ErrorCode(err) != airlock.ENOTFOUND {
		return nil, err // an outage is not cached
	}
	g.mu.Lock()
	if len(g.apps) > 4096 { // unknown hosts are anyone's to send: bound them
		clear(g.apps)
	}
	g.apps[host] = appEntry{app: a, err: err, at: now}
	g.mu.Unlock()
	return a, err
}

// requestToken finds the Airlock token of a request: the app cookie, or a
// bearer token with Airlock's prefix.
func requestToken(r *http.Request) (secrets.Secret, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := bearerToken(h); ok {
			return secrets.Secret(t), false
		}
	}
	for _, c := range r.Cookies() {
		if c.Name == CookieName && strings.HasPrefix(c.Value, TokenPrefix) {
			return secrets.Secret(c.Value), true
		}
	}
	return "", false
}

func bearerToken(h string) (string, bool) {
	scheme, t, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	t = strings.TrimSpace(t)
	return t, strings.HasPrefix(t, TokenPrefix)
}

func tokenKey(t secrets.Secret) [32]byte { return sha256.Sum256([]byte(t.Reveal())) }

// session returns the live session of a token on this node, opening one
// (and validating the token) when there is none.
func (g *Gateway) session(ctx context.Context, app *App, tok secrets.Secret, browser bool, source string) (*session, error) {
	key := tokenKey(tok)
	for {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return nil, airlock.Errorf(airlock.EUNAVAILABLE, "the server is shutting down; try again")
		}
		s, ok := g.sessions[key]
		if !ok {
			s = newSession(g, key, tok, app)
			g.sessions[key] = s
			g.mu.Unlock()
			if err := s.open(ctx, browser, source); err != nil {
				g.remove(s)
				s.fail(err)
				return nil, err
			}
			return s, nil
		}
		g.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.openErr != nil {
			return nil, s.openErr
		}
		if s.app.Resource != app.Resource {
			return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "this token is for %s", s.app.Resource)
		}
		if err := s.check(ctx); err != nil {
			if errors.Is(err, errSessionEnded) {
				continue // ended meanwhile: open a new one if the token still holds
			}
			return nil, err
		}
		return s, nil
	}
}

func (g *Gateway) remove(s *session) {
	g.mu.Lock()
	if g.sessions[s.key] == s {
		delete(g.sessions, s.key)
	}
	g.mu.Unlock()
}

// Shutdown stops accepting, ends every live session with
// EndServerShutdown (cancelling requests in flight and closing streams)
// and waits for their ends to be recorded or ctx to be done.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.reg.Drain(airlock.EndServerShutdown)
	err := g.srv.Shutdown(ctx)
	if werr := g.reg.Wait(ctx); werr != nil {
		return werr
	}
	if werr := gwsession.WaitGroup(ctx, &g.wg); werr != nil {
		return werr
	}
	g.tmu.Lock()
	for _, t := range g.transports {
		t.CloseIdleConnections()
	}
	g.tmu.Unlock()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// CloseGrant ends every live session under grantID, recording reason
// (airlock.EndGrantRevoked when empty), a session whose token has run out
// and only streams remain included.
func (g *Gateway) CloseGrant(grantID string, reason airlock.EndReason) int {
	return g.reg.CloseGrant(grantID, reason)
}

// CloseUser ends every live session of userID (airlock.EndUserDisabled
// when reason is empty).
func (g *Gateway) CloseUser(userID string, reason airlock.EndReason) int {
	return g.reg.CloseUser(userID, reason)
}

// CloseSession ends the live session id (airlock.EndSessionKilled when
// reason is empty); its token is revoked too, so the browser or client
// must sign in again.
func (g *Gateway) CloseSession(id string, reason airlock.EndReason) bool {
	return g.reg.CloseSession(id, reason)
}

// ActiveSessions returns a snapshot of the live sessions.
func (g *Gateway) ActiveSessions() []airlock.Session { return g.reg.ActiveSessions() }

// hostOnly is the lower-cased host of a Host header, without its port.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// transport returns the shared transport for a target's TLS settings
// (and, with Config.UpstreamHTTP2, for whether r upgrades: an upgrade
// needs an HTTP/1.1 connection).
func (g *Gateway) transport(t *Target, r *http.Request) http.RoundTripper {
	if g.cfg.Transport != nil {
		return g.cfg.Transport
	}
	h2 := g.cfg.UpstreamHTTP2 && r.Header.Get("Upgrade") == ""
	key := t.UpstreamTLSKey
	if h2 {
		key += "\x00h2"
	}
	g.tmu.Lock()
	defer g.tmu.Unlock()
	if tr, ok := g.transports[key]; ok {
		return tr
	}
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy: the app is reached directly
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       t.UpstreamTLS,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // long polls and slow apps are the app's business
	}
	if h2 {
		// A copy: the HTTP/2 transport adds "h2" to the config's
		// NextProtos, which the HTTP/1.1 transport's connections must
		// never offer.
		if tr.TLSClientConfig != nil {
			tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
		tr.Protocols.SetHTTP2(true)
		tr.HTTP2 = &http.HTTP2Config{
			MaxReceiveBufferPerStream: UpstreamHTTP2StreamWindow,
			// A connection every stream shares is checked when it
			// goes quiet, instead of hanging all of them on a dead peer.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	}
	g.transports[key] = tr
	return tr
}

// copyBuffers lends the reverse proxy its copy buffers (Config.
// CopyBufferSize). Without a pool it allocates one per request, and
// collecting them was the largest single cost of a small request
// (bench/http.sh's profile). A streamed response (a watch, SSE) holds its
// buffer for its whole life.
type copyBuffers struct {
	size int
	pool *sync.Pool
}

func newCopyBuffers(size int) copyBuffers {
	return copyBuffers{size: size, pool: &sync.Pool{New: func() any { b := make([]byte, size); return &b }}}
}

func (c copyBuffers) Get() []byte { return *c.pool.Get().(*[]byte) }

func (c copyBuffers) Put(b []byte) {
	if cap(b) != c.size {
		return
	}
	b = b[:c.size]
	c.pool.Put(&b)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (g *Gateway) roundTrip(r *http.Request) (*http.Response, error) {
	rs := requestStateFrom(r.Context())
	if rs == nil {
		return nil, fmt.Errorf("httpgw: request without a session")
	}
	return g.transport(rs.t, r).RoundTrip(r)
}

// writeError answers with a short text (or JSON for API clients) error.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		// The message may carry the client's own path: encode it as JSON,
		// never with Go quoting.
		json.NewEncoder(w).Encode(map[string]map[string]string{"error": {
			"code": strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), "message": msg}})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return !strings.Contains(a, "text/html") && (strings.Contains(a, "json") || r.Header.Get("Authorization") != "")
}
