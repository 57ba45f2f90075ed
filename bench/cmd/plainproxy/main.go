// Command plainproxy is the baseline of bench/http.sh and bench/kube.sh: a
// plain net/http/httputil.ReverseProxy to -upstream with no
// authentication, audit or rewriting beyond X-Forwarded-* and the fixed
// headers -set gives. Its upstream transport keeps as many idle
// connections as the load has clients (the default of 2 per host would
// make it open and close connections at 32 clients and understate what a
// reverse proxy costs). With -bufpool its copy buffers come from a
// sync.Pool, as the Airlock gateway's do (httputil.ReverseProxy.BufferPool),
// for a like-for-like row beside the default one; -bufsize sets their size.
//
// For bench/kube.sh it stands where the Kubernetes gateway stands: -tls
// serves HTTPS (an ephemeral self-signed certificate, ECDSA P-256 like the
// gateway's), -upstream-ca trusts the API server's CA, an https upstream
// speaks HTTP/2 with the gateway's per-stream window (-h2-window), and -set
// puts the impersonator's token and Impersonate-* headers on every
// request. It prints "LISTENING <addr>" once listening.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
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

// headers is a repeatable "Name: value" flag.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8080 (required)")
	idle := flag.Int("upstream-idle", 256, "idle upstream connections kept")
	bufpool := flag.Bool("bufpool", false, "pool the copy buffers (ReverseProxy.BufferPool)")
	bufsize := flag.Int("bufsize", 32<<10, "with -bufpool: the copy buffers' size")
	serveTLS := flag.Bool("tls", false, "serve HTTPS with an ephemeral self-signed certificate")
	upstreamCA := flag.String("upstream-ca", "", "PEM file of the CA an https upstream's certificate is checked against")
	h2window := flag.Int("h2-window", 512<<10, "an HTTP/2 upstream's receive window per stream")
	noCompression := flag.Bool("no-compression", false, "do not ask the upstream for gzip (the gateways do not)")
	var set headers
	flag.Var(&set, "set", `"Name: value" put on every upstream request, replacing the client's (repeatable)`)
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintln(os.Stderr, "plainproxy: -upstream must be an http:// or https:// URL")
		os.Exit(2)
	}
	fixed := http.Header{}
	for _, h := range set {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "plainproxy: -set %q: want \"Name: value\"\n", h)
			os.Exit(2)
		}
		fixed.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = *idle
	tr.MaxIdleConnsPerHost = *idle
	tr.DisableCompression = *noCompression
	tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: *h2window}
	if *upstreamCA != "" {
		pem, err := os.ReadFile(*upstreamCA)
		if err != nil {
			fmt.Fprintln(os.Stderr, "plainproxy:", err)
			os.Exit(1)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "plainproxy: -upstream-ca: no certificate")
			os.Exit(1)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
			for k, v := range fixed {
				r.Out.Header[k] = v
			}
		},
		Transport:     tr,
		FlushInterval: -1, // stream: SSE and downloads are not held back
	}
	if *bufpool {
		size := *bufsize
		rp.BufferPool = &pool{p: sync.Pool{New: func() any { b := make([]byte, size); return &b }}}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "plainproxy:", err)
		os.Exit(1)
	}
	if *serveTLS {
		cert, err := selfSigned()
		if err != nil {
			fmt.Fprintln(os.Stderr, "plainproxy:", err)
			os.Exit(1)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "plainproxy:", srv.Serve(ln))
	os.Exit(1)
}

// selfSigned is a throwaway ECDSA P-256 certificate for 127.0.0.1 and
// localhost.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plainproxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
