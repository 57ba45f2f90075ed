// Command httpapp is the upstream web application the HTTP gateway's tests
// and bench/http.sh run behind Airlock: a small "internal tool" served by a
// real, separate process, so that what the gateway forwards is seen the way
// a real app sees it (its own TCP connections, its own net/http server).
//
// It is built and started by testenv.StartHTTPApp; run it by hand with
//
//	go run ./internal/testenv/httpapp -addr 127.0.0.1:8080 -v
//
// Once listening it prints "LISTENING <addr>" on stdout. With -tls-cert and
// -tls-key it serves https (HTTP/2 offered through ALPN).
//
// Endpoints:
//
//	GET  /                  HTML page: an absolute link to its own /next (built from
//	                        X-Forwarded-Proto/X-Forwarded-Host, else the request) and a
//	                        form that POSTs to /submit
//	GET  /next              HTML page linking back to /
//	POST /submit            HTML page showing the submitted "note" field
//	GET  /login-cookie      sets app_session (host-only, Path=/, HttpOnly) and, when the
//	                        host has a parent domain, app_parent with Domain=<parent>
//	GET  /whoami            JSON of the cookies received
//	GET  /redirect?to=P     302 to P exactly as given (default "/"; not validated, so
//	                        tests can make the app emit any Location)
//	GET  /redirect-abs      302 to an absolute URL on the request host (?path=, default /next)
//	ANY  /echo              JSON: method, path, raw query, host, all headers, body length
//	GET  /download?bytes=N  N deterministic pseudo-random bytes, streamed in 32 KiB
//	                        flushed chunks from one buffer (?seed=S, ?chunked=1 omits
//	                        Content-Length)
//	GET  /download-sum?bytes=N  sha256 hex of the same stream (same seed)
//	GET  /slow?ms=N         answers after N ms; if the client goes first, counts a
//	                        cancellation (?head=1 sends the headers at once)
//	GET  /status/{code}     answers with that status code
//	GET  /ws                WebSocket: echoes every message, and sends "tick N" every 100 ms
//	                        (?idle=1: no ticks, so a client that sends nothing holds an idle
//	                        WebSocket, for bench/http.sh's memory figure)
//	GET  /sse               Server-Sent Events: "tick" events every 100 ms until the client goes
//	GET  /stats             JSON counters (requests other than /stats, cancelled, open
//	                        and total websockets and SSE streams, requests per route)
//	GET  /api/items         JSON list; POST /api/items {"name":…} creates (201);
//	GET|DELETE /api/items/{id}
//
// The WebSocket endpoint accepts any Origin: the app trusts whatever is in
// front of it, which is what the gateway is for.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("tls-cert", "", "PEM certificate file: serve https (with -tls-key)")
	key := flag.String("tls-key", "", "PEM private key file")
	verbose := flag.Bool("v", false, "log every request on stderr")
	flag.Parse()
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(os.Stderr, "httpapp: -tls-cert and -tls-key go together")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpapp:", err)
		os.Exit(1)
	}
	a := newApp()
	var h http.Handler = a.routes()
	if *verbose {
		h = logRequests(log, h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	done := make(chan error, 1)
	go func() {
		if *cert != "" {
			done <- srv.ServeTLS(ln, *cert, *key)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		fmt.Fprintln(os.Stderr, "httpapp:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx) // long-lived streams are cut when it times out
}

// app holds the counters /stats reports and the /api/items store.
type app struct {
	requests  atomic.Int64
	cancelled atomic.Int64
	wsOpen    atomic.Int64
	wsTotal   atomic.Int64
	sseOpen   atomic.Int64
	sseTotal  atomic.Int64

	mu      sync.Mutex
	byRoute map[string]int64 // "METHOD pattern" → requests
	items   []item
	nextID  int
}

type item struct {
	ID      int       `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

func newApp() *app {
	return &app{byRoute: map[string]int64{}, nextID: 1}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			a.requests.Add(1)
			path := r.Pattern
			if _, p, ok := strings.Cut(r.Pattern, " "); ok {
				path = p // drop the pattern's method: the request's is the one counted
			}
			a.mu.Lock()
			a.byRoute[r.Method+" "+path]++
			a.mu.Unlock()
			h(w, r)
		})
	}
	handle("GET /{$}", a.index)
	handle("GET /next", a.next)
	handle("POST /submit", a.submit)
	handle("GET /login-cookie", a.loginCookie)
	handle("GET /whoami", a.whoami)
	handle("GET /redirect", a.redirect)
	handle("GET /redirect-abs", a.redirectAbs)
	handle("/echo", a.echo)
	handle("GET /download", a.download)
	handle("GET /download-sum", a.downloadSum)
	handle("GET /slow", a.slow)
	handle("GET /status/{code}", a.status)
	handle("GET /ws", a.ws)
	handle("GET /sse", a.sse)
	handle("GET /api/items", a.listItems)
	handle("POST /api/items", a.createItem)
	handle("GET /api/items/{id}", a.getItem)
	handle("DELETE /api/items/{id}", a.deleteItem)
	mux.HandleFunc("GET /stats", a.stats) // not counted: polling it must not move the figures
	return mux
}

// origin returns scheme and host the client used, honouring the first
// value of X-Forwarded-Proto and X-Forwarded-Host.
func origin(r *http.Request) (scheme, host string) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v != "" {
		scheme = v
	}
	host = r.Host
	if v := firstValue(r.Header.Get("X-Forwarded-Host")); v != "" {
		host = v
	}
	return scheme, host
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

var pages = template.Must(template.New("").Parse(`
{{define "index"}}<!doctype html>
<html><head><title>Ops console</title></head>
<body>
<h1>Ops console</h1>
<p>Served for <span id="host">{{.Host}}</span>.</p>
<p><a id="next" href="{{.Next}}">Next page</a></p>
<form id="note-form" method="post" action="/submit">
<input type="text" name="note" id="note">
<button type="submit" id="send">Send</button>
</form>
</body></html>
{{end}}
{{define "next"}}<!doctype html>
<html><head><title>Next</title></head>
<body><h1 id="title">Next page</h1><p><a id="home" href="/">Home</a></p></body></html>
{{end}}
{{define "submitted"}}<!doctype html>
<html><head><title>Submitted</title></head>
<body><h1>Submitted</h1><p>Note: <span id="note">{{.}}</span></p><p><a href="/">Home</a></p></body></html>
{{end}}
`))

func (a *app) index(w http.ResponseWriter, r *http.Request) {
	scheme, host := origin(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pages.ExecuteTemplate(w, "index", map[string]string{
		"Host": host,
		"Next": scheme + "://" + host + "/next",
	})
}

func (a *app) next(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pages.ExecuteTemplate(w, "next", nil)
}

func (a *app) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pages.ExecuteTemplate(w, "submitted", r.PostForm.Get("note"))
}

// parentDomain returns the parent of host ("a.apps.localhost" →
// "apps.localhost"), or "" for IP addresses and single-label names.
func parentDomain(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	_, parent, ok := strings.Cut(host, ".")
	if !ok || parent == "" {
		return ""
	}
	return parent
}

func (a *app) loginCookie(w http.ResponseWriter, r *http.Request) {
	value := "s-" + strconv.FormatUint(rand.Uint64(), 36)
	set := []map[string]string{{"name": "app_session", "value": value}}
	http.SetCookie(w, &http.Cookie{Name: "app_session", Value: value, Path: "/", HttpOnly: true})
	_, host := origin(r)
	if parent := parentDomain(host); parent != "" {
		http.SetCookie(w, &http.Cookie{Name: "app_parent", Value: value, Path: "/", Domain: parent})
		set = append(set, map[string]string{"name": "app_parent", "value": value, "domain": parent})
	}
	writeJSON(w, http.StatusOK, map[string]any{"set": set})
}

func (a *app) whoami(w http.ResponseWriter, r *http.Request) {
	type cookie struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	cookies := []cookie{}
	for _, c := range r.Cookies() {
		cookies = append(cookies, cookie{c.Name, c.Value})
	}
	writeJSON(w, http.StatusOK, map[string]any{"cookies": cookies})
}

func (a *app) redirect(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	if to == "" {
		to = "/"
	}
	// Set by hand: http.Redirect would clean and absolutise the path.
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusFound)
}

func (a *app) redirectAbs(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if !strings.HasPrefix(path, "/") {
		path = "/next"
	}
	scheme, host := origin(r)
	w.Header().Set("Location", scheme+"://"+host+path)
	w.WriteHeader(http.StatusFound)
}

// echoReply is what /echo answers.
type echoReply struct {
	Method           string              `json:"method"`
	Path             string              `json:"path"`
	RawQuery         string              `json:"raw_query"`
	Host             string              `json:"host"`
	Proto            string              `json:"proto"`
	TLS              bool                `json:"tls"`
	RemoteAddr       string              `json:"remote_addr"`
	Headers          map[string][]string `json:"headers"`
	TransferEncoding []string            `json:"transfer_encoding,omitempty"`
	ContentLength    int64               `json:"content_length"`
	BodyLength       int64               `json:"body_length"`
}

func (a *app) echo(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, echoReply{
		Method:           r.Method,
		Path:             r.URL.Path,
		RawQuery:         r.URL.RawQuery,
		Host:             r.Host,
		Proto:            r.Proto,
		TLS:              r.TLS != nil,
		RemoteAddr:       r.RemoteAddr,
		Headers:          r.Header,
		TransferEncoding: r.TransferEncoding,
		ContentLength:    r.ContentLength,
		BodyLength:       n,
	})
}

// stream is the deterministic byte stream /download serves and
// /download-sum hashes: ChaCha8 keyed by the seed.
func stream(seed uint64) io.Reader {
	var key [32]byte
	for i := range 4 {
		for j := range 8 {
			key[i*8+j] = byte(seed >> (8 * j))
		}
		seed = seed*6364136223846793005 + 1442695040888963407
	}
	return rand.NewChaCha8(key)
}

func downloadParams(r *http.Request) (n int64, seed uint64, err error) {
	n, err = strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || n < 0 {
		return 0, 0, errors.New("bytes must be a whole number ≥ 0")
	}
	if s := r.URL.Query().Get("seed"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, 0, errors.New("seed must be a whole number")
		}
	}
	return n, seed, nil
}

const chunkSize = 32 << 10

func (a *app) download(w http.ResponseWriter, r *http.Request) {
	n, seed, err := downloadParams(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="download.bin"`)
	if r.URL.Query().Get("chunked") != "1" {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	rc := http.NewResponseController(w)
	src := stream(seed)
	buf := make([]byte, chunkSize)
	for n > 0 {
		b := buf[:min(n, chunkSize)]
		_, _ = io.ReadFull(src, b)
		if _, err := w.Write(b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		n -= int64(len(b))
	}
}

func (a *app) downloadSum(w http.ResponseWriter, r *http.Request) {
	n, seed, err := downloadParams(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := sha256.New()
	if _, err := io.CopyN(h, stream(seed), n); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, hex.EncodeToString(h.Sum(nil)))
}

func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		http.Error(w, "ms must be a whole number ≥ 0", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.URL.Query().Get("head") == "1" {
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintf(w, "slept %d ms\n", ms)
	case <-r.Context().Done():
		a.cancelled.Add(1)
	}
}

func (a *app) status(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		http.Error(w, "status code must be 200–599", http.StatusBadRequest)
		return
	}
	http.Error(w, http.StatusText(code), code)
}

func (a *app) ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered
	}
	a.wsOpen.Add(1)
	a.wsTotal.Add(1)
	defer a.wsOpen.Add(-1)
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if r.URL.Query().Get("idle") != "1" {
		go a.tick(ctx, cancel, c)
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// tick sends "tick N" on c every 100 ms until ctx ends or a write fails,
// then cancels.
func (a *app) tick(ctx context.Context, cancel context.CancelFunc, c *websocket.Conn) {
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("tick "+strconv.Itoa(n))); err != nil {
			return
		}
	}
}

func (a *app) sse(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	a.sseOpen.Add(1)
	a.sseTotal.Add(1)
	defer a.sseOpen.Add(-1)
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: tick\ndata: {\"n\":%d}\n\n", n, n); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// Stats is what /stats answers.
type Stats struct {
	Requests       int64            `json:"requests"`
	Cancelled      int64            `json:"cancelled"`
	WebSocketsOpen int64            `json:"websockets_open"`
	WebSockets     int64            `json:"websockets"`
	SSEOpen        int64            `json:"sse_open"`
	SSE            int64            `json:"sse"`
	Routes         map[string]int64 `json:"routes"`
}

func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	s := Stats{
		Requests:       a.requests.Load(),
		Cancelled:      a.cancelled.Load(),
		WebSocketsOpen: a.wsOpen.Load(),
		WebSockets:     a.wsTotal.Load(),
		SSEOpen:        a.sseOpen.Load(),
		SSE:            a.sseTotal.Load(),
		Routes:         map[string]int64{},
	}
	a.mu.Lock()
	for k, v := range a.byRoute {
		s.Routes[k] = v
	}
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, s)
}

func (a *app) listItems(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	items := append([]item{}, a.items...)
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, items)
}

func (a *app) createItem(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Name == "" {
		http.Error(w, `want a JSON body {"name": "…"}`, http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	it := item{ID: a.nextID, Name: in.Name, Created: time.Now().UTC()}
	a.nextID++
	a.items = append(a.items, it)
	a.mu.Unlock()
	w.Header().Set("Location", "/api/items/"+strconv.Itoa(it.ID))
	writeJSON(w, http.StatusCreated, it)
}

func (a *app) findItem(r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return 0, false
	}
	i := sort.Search(len(a.items), func(i int) bool { return a.items[i].ID >= id })
	return i, i < len(a.items) && a.items[i].ID == id
}

func (a *app) getItem(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	i, ok := a.findItem(r)
	var it item
	if ok {
		it = a.items[i]
	}
	a.mu.Unlock()
	if !ok {
		http.Error(w, "no such item", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (a *app) deleteItem(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	i, ok := a.findItem(r)
	if ok {
		a.items = append(a.items[:i], a.items[i+1:]...)
	}
	a.mu.Unlock()
	if !ok {
		http.Error(w, "no such item", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack (WebSockets).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "status", rec.code,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}
