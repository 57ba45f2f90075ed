// Command plainproxy is the baseline of bench/http.sh: a plain
// net/http/httputil.ReverseProxy to -upstream with no authentication,
// audit or rewriting beyond X-Forwarded-*. Its upstream transport keeps as
// many idle connections as the load has clients (the default of 2 per host
// would make it open and close connections at 32 clients and understate
// what a reverse proxy costs). With -bufpool its copy buffers come from a
// sync.Pool, as the Airlock gateway's do (httputil.ReverseProxy.BufferPool),
// for a like-for-like row beside the default one. It prints
// "LISTENING <addr>" once listening.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// pool is a ReverseProxy.BufferPool.
type pool struct{ p sync.Pool }

func (p *pool) Get() []byte { return *p.p.Get().(*[]byte) }
func (p *pool) Put(b []byte) {
	b = b[:cap(b)]
	p.p.Put(&b)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8080 (required)")
	idle := flag.Int("upstream-idle", 256, "idle upstream connections kept")
	bufpool := flag.Bool("bufpool", false, "pool the 32 KiB copy buffers (ReverseProxy.BufferPool)")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintln(os.Stderr, "plainproxy: -upstream must be an http:// or https:// URL")
		os.Exit(2)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = *idle
	tr.MaxIdleConnsPerHost = *idle
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1, // stream: SSE and downloads are not held back
	}
	if *bufpool {
		rp.BufferPool = &pool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "plainproxy:", err)
		os.Exit(1)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "plainproxy:", srv.Serve(ln))
	os.Exit(1)
}
