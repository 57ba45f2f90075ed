// Command httpload is the load generator of bench/http.sh: -c clients,
// each sending one request at a time over its own keep-alive HTTP/1.1
// connection for -d (after -warmup, whose requests are not counted). It
// prints one line of JSON, then the same figures for a human:
//
//	{"url":…,"concurrency":32,"duration_s":10,"requests":…,"errors":…,"rps":…,"p50_us":…,"p90_us":…,"p99_us":…,"max_us":…}
//
// errors counts transport errors and responses outside 2xx/3xx (the first
// of each is printed on stderr).
//
// With -idle N it measures nothing: it opens N connections, sends one
// request on each and reads the answer (so the server holds them as idle
// keep-alive connections), prints "ready N" and holds them until its
// standard input is closed. bench/http.sh reads the server's RSS meanwhile.
// With -idle N -ws the request on each is a WebSocket upgrade (answered
// 101) and the connection is then held as an idle WebSocket: nothing is
// sent or read after the handshake (point -url at an endpoint that sends
// nothing unasked, like httpapp's /ws?idle=1).
// With -idle N -stream each request is a streaming one (a Kubernetes
// watch, GET …?watch=1): the answer must be 200, its head is read and its
// body never is, and the connection is held with the stream open.
//
// Written by hand rather than taking wrk or hey: neither is packaged here,
// and this one reports the figures the script needs as JSON.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

// result is the JSON line.
type result struct {
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Requests    int     `json:"requests"`
	Errors      int64   `json:"errors"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
}

func main() {
	rawURL := flag.String("url", "", "URL to request (required)")
	conc := flag.Int("c", 1, "concurrent clients (one connection each)")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up before -d")
	method := flag.String("method", "GET", "request method")
	var hdrs headers
	flag.Var(&hdrs, "H", `request header "Name: value" (repeatable)`)
	connect := flag.String("connect", "", "dial this host:port instead of the URL's (the URL's host stays the Host header and TLS name)")
	caFile := flag.String("cacert", "", "PEM CA file to verify an https server with")
	insecure := flag.Bool("insecure", false, "do not verify an https server's certificate")
	noKeepAlive := flag.Bool("no-keepalive", false, "a new connection per request")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	idle := flag.Int("idle", 0, "open this many idle keep-alive connections, print ready, hold them until stdin closes")
	ws := flag.Bool("ws", false, "with -idle: open idle WebSockets instead (each request an upgrade answered 101)")
	stream := flag.Bool("stream", false, "with -idle: hold streaming answers open (a watch): read each 200's head only")
	flag.Parse()
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("-url must be an http:// or https:// URL")
	}
	if *conc < 1 {
		fail("-c must be ≥ 1")
	}
	tlsConf := &tls.Config{InsecureSkipVerify: *insecure, ServerName: u.Hostname()}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail(err.Error())
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			fail("-cacert: no certificate in " + *caFile)
		}
	}
	h := http.Header{}
	for _, kv := range hdrs {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			fail(fmt.Sprintf("-H %q: want \"Name: value\"", kv))
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	dialAddr := u.Host
	if u.Port() == "" {
		dialAddr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	if *connect != "" {
		dialAddr = *connect
	}
	if *idle > 0 {
		if *ws {
			h.Set("Connection", "Upgrade")
			h.Set("Upgrade", "websocket")
			h.Set("Sec-WebSocket-Version", "13")
			h.Set("Sec-WebSocket-Key", "ZGhJbGUgd2Vic29ja2V0IQ==") // any 16 bytes, base64: nothing here checks the accept key
		}
		holdIdle(*idle, u, h, dialAddr, tlsConf, *ws, *stream)
		return
	}

	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dialAddr)
		},
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        *conc,
		MaxIdleConnsPerHost: *conc,
		DisableKeepAlives:   *noKeepAlive,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	client := &http.Client{
		Transport:     tr,
		Timeout:       *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		errs      atomic.Int64
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	lat := make([][]time.Duration, *conc)
	for i := range *conc {
		lat[i] = make([]time.Duration, 0, 1<<16)
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest(*method, u.String(), nil)
				req.Header = h.Clone()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode >= 400 {
						err = errors.New(resp.Status)
					}
				}
				el := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { fmt.Fprintln(os.Stderr, "httpload: first error:", err) })
					continue
				}
				lat[i] = append(lat[i], el)
			}
		})
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()

	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Nanoseconds()) / 1e3
	}
	r := result{
		URL: u.String(), Concurrency: *conc, DurationS: elapsed.Seconds(), Requests: len(all), Errors: errs.Load(),
		RPS: float64(len(all)) / elapsed.Seconds(), P50us: pct(0.50), P90us: pct(0.90), P99us: pct(0.99), MaxUs: pct(1),
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	fmt.Printf("%s c=%d: %.0f req/s, p50 %.0f µs, p90 %.0f µs, p99 %.0f µs, max %.0f µs, %d errors, %d requests in %.1fs\n",
		r.URL, r.Concurrency, r.RPS, r.P50us, r.P90us, r.P99us, r.MaxUs, r.Errors, r.Requests, r.DurationS)
	if len(all) == 0 {
		os.Exit(1)
	}
}

// holdIdle opens n connections, completes one request on each and holds
// them open until stdin reaches EOF.
func holdIdle(n int, u *url.URL, h http.Header, addr string, tlsConf *tls.Config, ws, stream bool) {
	req := &http.Request{Method: "GET", URL: u, Host: u.Host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := openIdle(req, addr, u.Scheme == "https", tlsConf, ws, stream)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fail(firstErr.Error())
	}
	fmt.Printf("ready %d\n", n)
	_, _ = io.Copy(io.Discard, os.Stdin)
	alive := 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		// A connection the server closed meanwhile reads EOF at once
		// (a stream's: once what it sent is read).
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				alive++
			}
			if err != nil || !stream {
				break
			}
		}
		c.Close()
	}
	fmt.Printf("closed %d (%d still open at the end)\n", n, alive)
}

func openIdle(req *http.Request, addr string, useTLS bool, tlsConf *tls.Config, ws, stream bool) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if useTLS {
		tc := tls.Client(c, tlsConf.Clone())
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err == nil && ws {
		// The 101's body is the WebSocket stream: read nothing more (the
		// server sends nothing unasked, so the bufio.Reader holds no frame).
		if resp.StatusCode != http.StatusSwitchingProtocols {
			err = fmt.Errorf("%s, want 101 Switching Protocols", resp.Status)
		}
	} else if err == nil && stream {
		// The body is the stream: left unread (what the server sends
		// meanwhile waits in the socket and the bufio.Reader).
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s, want 200 OK", resp.Status)
		}
	} else if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.Close || resp.StatusCode >= 400) {
			err = fmt.Errorf("%s (close %v)", resp.Status, resp.Close)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "httpload:", msg)
	os.Exit(2)
}
