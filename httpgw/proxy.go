package httpgw

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/jsonenc"
)

// requestState travels with a forwarded request through the reverse
// proxy's hooks.
type requestState struct {
	s      *session
	t      *Target
	n      int64
	status int
	jwt    string
	err    error

	noteMu sync.Mutex
	notes  []any // a StreamDoor's fields for the response event
}

// streamSession is the session as one request's stream sees it.
type streamSession struct {
	*session
	rs *requestState
}

func (ss streamSession) Note(fields any) {
	ss.rs.noteMu.Lock()
	ss.rs.notes = append(ss.rs.notes, fields)
	ss.rs.noteMu.Unlock()
}

type stateKey struct{}

func requestStateFrom(ctx context.Context) *requestState {
	rs, _ := ctx.Value(stateKey{}).(*requestState)
	return rs
}

// requestDetails are an http.request event's details.
type requestDetails struct {
	N             int64  `json:"n"`
	Method        string `json:"method"`
	Host          string `json:"host"`
	Path          string `json:"path"`
	Query         string `json:"query,omitempty"`
	QueryOmitted  bool   `json:"query_omitted,omitempty"`
	ContentLength int64  `json:"content_length,omitempty"`
	Upgrade       string `json:"upgrade,omitempty"`
	Denied        string `json:"denied,omitempty"`
}

// appendJSON appends d as json.Marshal encodes it, without reflection:
// two events per request made json.Marshal a measurable share of the
// gateway's cost (TestDetailsJSON and FuzzDetailsJSON compare the two).
func (d *requestDetails) appendJSON(b []byte) []byte {
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, d.N, 10)
	b = append(b, `,"method":`...)
	b = jsonenc.AppendString(b, d.Method)
	b = append(b, `,"host":`...)
	b = jsonenc.AppendString(b, d.Host)
	b = append(b, `,"path":`...)
	b = jsonenc.AppendString(b, d.Path)
	if d.Query != "" {
		b = append(b, `,"query":`...)
		b = jsonenc.AppendString(b, d.Query)
	}
	if d.QueryOmitted {
		b = append(b, `,"query_omitted":true`...)
	}
	if d.ContentLength != 0 {
		b = append(b, `,"content_length":`...)
		b = strconv.AppendInt(b, d.ContentLength, 10)
	}
	if d.Upgrade != "" {
		b = append(b, `,"upgrade":`...)
		b = jsonenc.AppendString(b, d.Upgrade)
	}
	if d.Denied != "" {
		b = append(b, `,"denied":`...)
		b = jsonenc.AppendString(b, d.Denied)
	}
	return append(b, '}')
}

// json is d's encoding in a buffer of its own.
func (d *requestDetails) json() []byte {
	return d.appendJSON(make([]byte, 0, 96+len(d.Method)+len(d.Host)+len(d.Path)+len(d.Query)+len(d.Upgrade)))
}

// responseDetails are an http.response event's details.
type responseDetails struct {
	N          int64  `json:"n"`
	Status     int    `json:"status"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// serve forwards one request in the session: it checks the access
// level's rules and the session's concurrency bound, enters http.request
// into the audit pipeline (waiting for it to be durable under strict
// audit), forwards, and records http.response.
func (s *session) serve(w http.ResponseWriter, r *http.Request) {
	// Held for the whole request, refusals included: the session's end
	// waits for it before closing the audit receipts queue.
	s.wg.Add(1)
	defer s.wg.Done()
	t := s.target()
	host := hostOnly(r.Host)
	d := requestDetails{Method: r.Method, Host: host, Path: r.URL.Path, ContentLength: r.ContentLength}
	if r.URL.RawQuery != "" {
		if t.LogQuery {
			d.Query = r.URL.RawQuery
		} else {
			d.QueryOmitted = true
		}
	}
	if up := r.Header.Get("Upgrade"); up != "" {
		d.Upgrade = strings.ToLower(up)
	}
	g := s.g
	fields, refusal := g.door.Inspect(r, t)
	if refusal != nil {
		d.Denied = refusal.Denied
		s.submit(s.event(g.reqAction, airlock.OutcomeDenied, mergeJSON(d.json(), fields)))
		status := refusal.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		g.door.Error(w, r, status, refusal.Message)
		return
	}
	n := s.inflight.Add(1)
	defer func() {
		s.lastUse.Store(time.Now().UnixNano())
		s.requestDone()
	}()
	if t.MaxConcurrent > 0 && n > int64(t.MaxConcurrent) {
		d.Denied = "max_concurrent"
		s.submit(s.event(g.reqAction, airlock.OutcomeDenied, mergeJSON(d.json(), fields)))
		w.Header().Set("Retry-After", "1")
		g.door.Error(w, r, http.StatusTooManyRequests, "airlock: too many requests in flight in this session (the policy allows "+strconv.Itoa(t.MaxConcurrent)+")")
		return
	}
	d.N = s.requests.Add(1)
	p, ok := s.submit(s.event(g.reqAction, airlock.OutcomeSuccess, mergeJSON(d.json(), fields)))
	if !ok {
		g.door.Unauthenticated(w, r, s.app, "the session has ended")
		return
	}
	if t.StrictAudit {
		s.g.cfg.Audit.Flush()
		select {
		case <-p.Done():
		case <-s.ctx.Done():
		case <-r.Context().Done():
			return
		}
		if p.Err() != nil || s.ctx.Err() != nil {
			g.door.Error(w, r, http.StatusServiceUnavailable, "airlock: audit log unavailable — request not forwarded")
			return
		}
	}
	var jwt string
	if g.cfg.Identity != nil {
		var err error
		if jwt, err = s.identity(r.Context()); err != nil {
			g.log.Error("sign identity", "session", s.id, "err", err)
			g.door.Error(w, r, http.StatusServiceUnavailable, "airlock: cannot sign the identity for the app; try again")
			return
		}
	}

	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel) // the session's end cancels the request
	defer stop()
	defer cancel()
	// One allocation for the request's state and its counting wrappers.
	f := &forwarded{rs: requestState{s: s, t: t, n: d.N, jwt: jwt}, out: countingWriter{w: w, s: s, r: r},
		body: countingBody{rc: r.Body, n: &s.bytesIn}}
	rs, out, body := &f.rs, &f.out, &f.body
	out.rs = rs
	ctx = context.WithValue(ctx, stateKey{}, rs)
	start := time.Now()
	r2 := r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		r2.Body = body
	}
	// Deferred: the reverse proxy aborts a response cut mid-body (a stream
	// at the session's end) with panic(http.ErrAbortHandler).
	defer func() {
		aborted := recover()
		rd := responseDetails{N: d.N, Status: out.status, BytesIn: body.total.Load(), BytesOut: out.total, DurationMS: time.Since(start).Milliseconds()}
		if out.hijacked != nil {
			rd.BytesIn += out.hijacked.in.Load()
			rd.BytesOut += out.hijacked.out.Load()
		}
		outcome := airlock.OutcomeSuccess
		if rs.err != nil {
			outcome = airlock.OutcomeFailure
			rd.Error = rs.err.Error()
		} else if aborted != nil {
			outcome = airlock.OutcomeFailure
			rd.Error = "response aborted"
		}
		resp := rd.json()
		rs.noteMu.Lock()
		for _, n := range rs.notes {
			resp = mergeJSON(resp, n)
		}
		rs.noteMu.Unlock()
		s.submit(s.event(g.respAction, outcome, resp))
		if aborted != nil {
			panic(aborted)
		}
	}()
	g.proxy.ServeHTTP(out, r2)
}

// forwarded is what serve allocates for a forwarded request.
type forwarded struct {
	rs   requestState
	out  countingWriter
	body countingBody
}

// appendJSON appends d as json.Marshal encodes it (see
// requestDetails.appendJSON).
func (d *responseDetails) appendJSON(b []byte) []byte {
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, d.N, 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(d.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, d.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, d.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendInt(b, d.DurationMS, 10)
	if d.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.AppendString(b, d.Error)
	}
	return append(b, '}')
}

// json is d's encoding in a buffer of its own.
func (d *responseDetails) json() []byte {
	return d.appendJSON(make([]byte, 0, 112+len(d.Error)))
}

// mergeJSON adds the fields of JSON object extra (a door's) to JSON
// object base (the core's).
func mergeJSON(base []byte, extra any) []byte {
	if extra == nil {
		return base
	}
	e, err := json.Marshal(extra)
	if err != nil {
		return base
	}
	if len(e) < 3 || e[0] != '{' || len(base) < 2 {
		return base
	}
	if len(base) == 2 { // {}
		return e
	}
	out := make([]byte, 0, len(base)+len(e))
	out = append(out, base[:len(base)-1]...)
	out = append(out, ',')
	return append(out, e[1:]...)
}

// rewrite builds the upstream request: the upstream's URL, the brokered
// credential and the identity assertion; Airlock's own token and any
// identity header the client sent are removed; then the door's own edits.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	rs := requestStateFrom(pr.In.Context())
	t := rs.t
	pr.SetURL(t.Upstream)
	h := pr.Out.Header
	if as := h.Values("Authorization"); len(as) > 0 {
		keep := as[:0:0]
		for _, a := range as {
			if _, ours := bearerToken(a); !ours {
				keep = append(keep, a)
			}
		}
		h.Del("Authorization")
		if len(keep) > 0 {
			h["Authorization"] = keep
		}
	}
	h.Del(IdentityHeader)
	g.door.Rewrite(pr, t)
	for k, vs := range t.Header {
		h[http.CanonicalHeaderKey(k)] = vs // replaces the client's header of that name
	}
	if rs.jwt != "" {
		h.Set(IdentityHeader, rs.jwt)
	}
}

// stripCookies removes the gateway's cookies from a Cookie header.
func stripCookies(h http.Header) {
	cs := h.Values("Cookie")
	if len(cs) == 0 {
		return
	}
	var keep []string
	for _, line := range cs {
		for _, part := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name == "" || isOurCookie(name) {
				continue
			}
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

func isOurCookie(name string) bool { return strings.HasPrefix(strings.ToLower(name), "__host-airlock") }

// modifyResponse remembers the status, drops any identity header the app
// echoed, and hands the response to the door.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	rs := requestStateFrom(resp.Request.Context())
	rs.status = resp.StatusCode
	resp.Header.Del(IdentityHeader)
	return g.door.ModifyResponse(resp, rs.t)
}

// hostOnlyCookie rewrites a Set-Cookie value without its Domain
// attribute; ok is false for a cookie the app may not set.
func hostOnlyCookie(v string) (string, bool) {
	parts := strings.Split(v, ";")
	name, _, _ := strings.Cut(strings.TrimSpace(parts[0]), "=")
	if name == "" || isOurCookie(name) {
		return "", false
	}
	out := parts[:1]
	for _, a := range parts[1:] {
		k, _, _ := strings.Cut(a, "=")
		if strings.EqualFold(strings.TrimSpace(k), "domain") { // browsers trim the name (RFC 6265 5.2)
			continue
		}
		out = append(out, a)
	}
	return strings.Join(out, ";"), true
}

// publicLocation rewrites an absolute redirect to the upstream's own
// scheme and host into the app's public URL; other locations are kept.
func (g *Gateway) publicLocation(loc string, t *Target, out *http.Request) string {
	prefix := t.Upstream.Scheme + "://" + t.Upstream.Host
	if !strings.HasPrefix(loc, prefix) {
		return loc
	}
	rest := loc[len(prefix):]
	if rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#' {
		return loc
	}
	return g.appURL(out.Header.Get("X-Forwarded-Host")) + rest
}

// appURL is the public base URL of an app host.
func (g *Gateway) appURL(host string) string {
	h := hostOnly(host)
	if g.cfg.PublicPort != "" && g.cfg.PublicPort != "443" {
		h = net.JoinHostPort(h, g.cfg.PublicPort)
	}
	return "https://" + h
}

// proxyError answers a request the app did not answer.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rs := requestStateFrom(r.Context())
	if rs != nil {
		rs.err = err
		if rs.s.ctx.Err() != nil {
			rs.status = http.StatusUnauthorized
			g.door.Error(w, r, http.StatusUnauthorized, "airlock: the session ended ("+rs.s.reasonText()+")")
			return
		}
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	g.log.Warn("app unreachable", "host", r.Host, "err", err)
	if rs != nil {
		rs.status = http.StatusBadGateway
	}
	g.door.Error(w, r, http.StatusBadGateway, "airlock: the app did not answer")
}

func (s *session) reasonText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endReason.Text()
}

// countingBody counts the request body bytes read.
type countingBody struct {
	rc    io.ReadCloser
	n     *atomic.Int64
	total atomic.Int64 // the transport may still read after the response (RoundTrip's contract)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.total.Add(int64(n))
	b.n.Add(int64(n))
	return n, err
}
func (b *countingBody) Close() error { return b.rc.Close() }

// countingWriter counts response bytes, remembers the status, and hands
// out counted, tracked connections on Hijack (upgrades).
type countingWriter struct {
	w        http.ResponseWriter
	s        *session
	r        *http.Request
	rs       *requestState
	status   int
	total    int64
	hijacked *countedConn
}

func (c *countingWriter) Header() http.Header { return c.w.Header() }
func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 || code >= 200 {
		c.status = code
	}
	c.w.WriteHeader(code)
}
func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.w.Write(p)
	c.total += int64(n)
	c.s.bytesOut.Add(int64(n))
	return n, err
}

// Flush flushes the client connection. The reverse proxy calls it after
// every write of a stream, so it asks the writer directly instead of
// allocating a ResponseController each time.
func (c *countingWriter) Flush() {
	switch f := c.w.(type) {
	case interface{ FlushError() error }:
		_ = f.FlushError()
	case http.Flusher:
		f.Flush()
	default:
		_ = http.NewResponseController(c.w).Flush()
	}
}
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.w }

// Hijack hands the reverse proxy the client connection for an upgrade,
// tracked by the session (its end closes it) and counted.
func (c *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	cc := &countedConn{Conn: conn, s: c.s}
	var out net.Conn = cc
	if sd, ok := c.s.g.door.(StreamDoor); ok {
		out = sd.Stream(c.r, c.rs.t, cc, streamSession{c.s, c.rs})
	}
	// The outermost conn is the one the session's end closes, so that a
	// door's wrapper can tell the client why first.
	untrack, ok := c.s.track(out)
	if !ok {
		conn.Close()
		return nil, nil, errSessionEnded
	}
	cc.untrack = untrack
	c.hijacked = cc
	c.status = http.StatusSwitchingProtocols
	return out, brw, nil
}

type countedConn struct {
	net.Conn
	s       *session
	in, out atomic.Int64
	untrack func()
	closed  atomic.Bool
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	c.s.bytesIn.Add(int64(n))
	return n, err
}
func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	c.s.bytesOut.Add(int64(n))
	return n, err
}

// upgradeBufferSize is the buffer each direction of an upgraded
// connection (a WebSocket) is copied through. The reverse proxy's io.Copy
// would take 32 KiB each way, held for as long as the stream is open even
// when idle; frames are small, and 8 KiB each way keeps an idle WebSocket
// well under the 64 KiB the gateway allows itself per stream.
const upgradeBufferSize = 8 << 10

// ReadFrom copies r to the client (the reverse proxy's copy from the app
// after an upgrade), counted, through an upgradeBufferSize buffer.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{r}, make([]byte, upgradeBufferSize))
}

// WriteTo copies what the client sends to w (the reverse proxy's copy to
// the app after an upgrade), counted, through an upgradeBufferSize buffer.
func (c *countedConn) WriteTo(w io.Writer) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{c}, make([]byte, upgradeBufferSize))
}

// NetConn is the connection countedConn counts (a door closing a stream
// may need to close what is under TLS).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.untrack != nil {
		c.untrack()
	}
	return c.Conn.Close()
}
