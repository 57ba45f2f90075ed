package httpgw

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/secrets"
)

// Test fakes: the gateway's dependencies (Authenticator, audit pipeline,
// Signer) are faked; the upstream is a real httptest.Server.

const (
	testHost   = "grafana.apps.example"
	testToken  = "alh_tok_alice"
	testJWT    = "signed.identity.alice"
	testSecret = "Bearer svc-brokered-secret"
)

// fakeAuth is an Authenticator whose tokens, refusals and redemptions the
// test controls.
type fakeAuth struct {
	mu        sync.Mutex
	apps      map[string]*App
	targets   map[string]*Target // by token
	refuse    map[string]error   // by token: Authenticate fails with this
	authCalls int
	redeems   []RedeemRequest
	redeemTok string
	redeemT   *Target
	redeemNxt string
	redeemErr error
	revoked   []string
	// revokeRefuses makes a revoked token fail Authenticate (as the
	// access service does); revokeDelay is Revoke's latency.
	revokeRefuses bool
	revokeDelay   time.Duration
}

func (a *fakeAuth) App(_ context.Context, host string) (*App, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if app, ok := a.apps[host]; ok {
		return app, nil
	}
	return nil, airlock.Errorf(airlock.ENOTFOUND, "no app at %s", host)
}

func (a *fakeAuth) Authenticate(_ context.Context, req AuthRequest) (*Target, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authCalls++
	tok := req.Token.Reveal()
	if err := a.refuse[tok]; err != nil {
		return nil, err
	}
	t, ok := a.targets[tok]
	if !ok {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "unknown token")
	}
	c := *t
	return &c, nil
}

func (a *fakeAuth) Redeem(_ context.Context, req RedeemRequest) (secrets.Secret, *Target, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.redeems = append(a.redeems, req)
	if a.redeemErr != nil {
		return "", nil, "", a.redeemErr
	}
	return secrets.Secret(a.redeemTok), a.redeemT, a.redeemNxt, nil
}

func (a *fakeAuth) Revoke(_ context.Context, tok secrets.Secret) error {
	a.mu.Lock()
	d := a.revokeDelay
	a.mu.Unlock()
	time.Sleep(d)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = append(a.revoked, tok.Reveal())
	if a.revokeRefuses {
		a.refuse[tok.Reveal()] = airlock.Errorf(airlock.EUNAUTHORIZED, "token revoked")
	}
	return nil
}

func (a *fakeAuth) setRefuse(tok string, err error) {
	a.mu.Lock()
	a.refuse[tok] = err
	a.mu.Unlock()
}

func (a *fakeAuth) revokedTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.revoked...)
}

// pending is a receipt that settles when done is closed.
type pending struct {
	done chan struct{}
	err  error
}

func (p *pending) Done() <-chan struct{} { return p.done }
func (p *pending) Err() error            { return p.err }
func (p *pending) Seq() int64            { return 0 }

// fakeAudit is an audit pipeline whose receipts the test controls: fail
// decides which fail; hold, when set, delays every receipt until it is
// closed.
type fakeAudit struct {
	mu     sync.Mutex
	events []airlock.Event
	fail   func(airlock.Event) bool
	hold   chan struct{}
}

func (f *fakeAudit) Submit(e airlock.Event) airlock.AuditPending {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	p := &pending{done: make(chan struct{})}
	if f.fail != nil && f.fail(e) {
		p.err = errors.New("audit store down")
	}
	if hold := f.hold; hold != nil {
		go func() { <-hold; close(p.done) }()
	} else {
		close(p.done)
	}
	return p
}

func (f *fakeAudit) Flush() {}

func (f *fakeAudit) setFail(fn func(airlock.Event) bool) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// byAction returns the events with action, in order.
func (f *fakeAudit) byAction(action string) []airlock.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []airlock.Event
	for _, e := range f.events {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// wait waits up to 3 s for n events with action and returns them.
func (f *fakeAudit) wait(t *testing.T, action string, n int) []airlock.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		es := f.byAction(action)
		if len(es) >= n {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d %s events, have %d: %v", n, action, len(es), f.actions())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fakeAudit) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, e.Action+"/"+e.Outcome)
	}
	return out
}

func details(t *testing.T, e airlock.Event) map[string]any {
	t.Helper()
	m := map[string]any{}
	if len(e.Details) > 0 {
		if err := json.Unmarshal(e.Details, &m); err != nil {
			t.Fatalf("%s details %s: %v", e.Action, e.Details, err)
		}
	}
	return m
}

type fakeSigner struct {
	mu sync.Mutex
	n  int
}

func (s *fakeSigner) Sign(_ context.Context, id Identity) (string, time.Time, error) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return "signed.identity." + id.UserName, time.Now().Add(time.Minute), nil
}

// upReq is what the upstream saw of one request.
type upReq struct {
	Method, Path, RawPath, Query string
	Header                       http.Header
	Body                         string
	ContentLength                int64
	TE                           []string
}

// upstream is a real HTTP server with the behaviours the tests need.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []upReq
	started chan string // path of each slow/stream request once it runs
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{started: make(chan string, 16), release: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Up", "1")
		io.WriteString(w, "ok "+r.URL.Path)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		u.started <- "/slow"
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
			io.WriteString(w, "slow done")
		}
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, "data: hello\n\n")
		w.(http.Flusher).Flush()
		u.started <- "/sse"
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tk.C:
				if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.HandleFunc("/dribble", func(w http.ResponseWriter, r *http.Request) {
		// A body of known length whose second half waits until the
		// client has read the first (the test says so on u.release).
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
			io.WriteString(w, "-last")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		// Switches to whatever was asked, as an h2c-capable app would.
		if r.Header.Get("Upgrade") == "" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+r.Header.Get("Upgrade")+"\r\nConnection: Upgrade\r\n\r\n")
		u.started <- "/ws"
		io.Copy(c, brw) // echo
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		// Answers without reading the request body.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Set-Cookie", "app=1; Domain=apps.example; Path=/; HttpOnly")
		h.Add("Set-Cookie", "__Host-airlock=alh_evil; Path=/; Secure")
		h.Add("Set-Cookie", "__Host-airlock-state=x; Path=/; Secure")
		h.Add("Set-Cookie", "plain=2; Path=/")
		io.WriteString(w, "cookies")
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", u.URL+"/next?x=1")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://elsewhere.example/x")
		w.WriteHeader(http.StatusFound)
	})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []byte
		if r.URL.Path != "/early" {
			b, _ = io.ReadAll(r.Body)
		}
		u.mu.Lock()
		u.reqs = append(u.reqs, upReq{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(b), ContentLength: r.ContentLength, TE: r.TransferEncoding})
		u.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []upReq {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upReq(nil), u.reqs...)
}

func (u *upstream) last(t *testing.T) upReq {
	t.Helper()
	rs := u.requests()
	if len(rs) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return rs[len(rs)-1]
}

func (u *upstream) waitStarted(t *testing.T, path string) {
	t.Helper()
	select {
	case p := <-u.started:
		if p != path {
			t.Fatalf("upstream started %s, want %s", p, path)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("upstream never started %s", path)
	}
}

// harness is a gateway in front of an upstream, served on an httptest
// server through Handler().
type harness struct {
	t     *testing.T
	g     *Gateway
	cfg   Config
	srv   *httptest.Server
	up    *upstream
	auth  *fakeAuth
	audit *fakeAudit
	app   *App
}

func (h *harness) target() *Target {
	h.auth.mu.Lock()
	defer h.auth.mu.Unlock()
	return h.auth.targets[testToken]
}

// newHarness builds a gateway; edit changes the default target (token
// testToken) and config before New.
func newHarness(t *testing.T, edit func(*Target, *Config)) *harness {
	t.Helper()
	up := newUpstream(t)
	u, _ := url.Parse(up.URL)
	app := &App{Resource: "grafana", Host: testHost}
	now := time.Now()
	tg := &Target{UserID: "usr_alice", UserName: "alice", Groups: []string{"sre"}, GrantID: "gra_1", Resource: "grafana",
		Access: "read", EndsAt: now.Add(time.Hour), TokenExpiresAt: now.Add(time.Hour), Upstream: u,
		Header: http.Header{"Authorization": {testSecret}}}
	auth := &fakeAuth{apps: map[string]*App{testHost: app}, targets: map[string]*Target{testToken: tg}, refuse: map[string]error{}}
	audit := &fakeAudit{}
	cfg := Config{Domain: "apps.example", ConsoleURL: "https://console.example/", Auth: auth, Audit: audit,
		Identity: &fakeSigner{}, Node: "node1"}
	if edit != nil {
		edit(tg, &cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
	})
	return &harness{t: t, g: g, cfg: cfg, srv: srv, up: up, auth: auth, audit: audit, app: app}
}

// req builds a request to the app host through the gateway, with the
// bearer token unless hdr sets Authorization ("" removes it).
func (h *harness) req(method, path string, body io.Reader, hdr ...string) *http.Request {
	h.t.Helper()
	r, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	r.Host = testHost
	r.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
			continue
		}
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true},
}

func (h *harness) do(r *http.Request) (*http.Response, string) {
	h.t.Helper()
	resp, err := noRedirect.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (h *harness) get(path string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	return h.do(h.req("GET", path, nil, hdr...))
}

// session returns the gateway's one live session.
func (h *harness) session() airlock.Session {
	h.t.Helper()
	ss := h.g.ActiveSessions()
	if len(ss) != 1 {
		h.t.Fatalf("want 1 live session, have %d", len(ss))
	}
	return ss[0]
}

// raw serves the gateway on a plain TCP listener (Config.TLS nil) and
// returns its address.
func (h *harness) raw() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go h.g.Serve(ln)
	return ln.Addr().String()
}

// rawConn dials addr; the connection's deadline bounds the test.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// readResponse reads one response off br (for a request of method).
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// closedWithin fails unless done is closed within d.
func closedWithin(t *testing.T, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s not closed within %v", what, d)
	}
}

var _ = fmt.Sprintf

func newLocalListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
