package httpgw

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// h2Upstream is an https upstream that offers HTTP/2 and notes the
// protocol and client address of each request; /ws upgrades (only over
// HTTP/1.1) and echoes, /sse streams until the request ends.
type h2Upstream struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []string // "PROTO REMOTE PATH"
	ready chan string
}

func newH2Upstream(t *testing.T) *h2Upstream {
	u := &h2Upstream{ready: make(chan string, 4)}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Proto+" "+r.RemoteAddr+" "+r.URL.Path)
		u.mu.Unlock()
		switch r.URL.Path {
		case "/ws":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				http.Error(w, "cannot upgrade over "+r.Proto, http.StatusBadRequest)
				return
			}
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			u.ready <- "/ws"
			io.Copy(c, brw)
		case "/sse":
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "data: hello\n\n")
			w.(http.Flusher).Flush()
			u.ready <- "/sse"
			<-r.Context().Done()
		default:
			io.WriteString(w, "ok "+r.Proto)
		}
	}))
	u.EnableHTTP2 = true
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *h2Upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// newH2Harness is a gateway whose target is an h2Upstream (verified
// against its certificate), with Config.UpstreamHTTP2 as given.
func newH2Harness(t *testing.T, h2 bool, ends time.Time) (*harness, *h2Upstream, *tls.Config) {
	up := newH2Upstream(t)
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	upTLS := &tls.Config{RootCAs: pool, ServerName: "example.com"}
	h := newHarness(t, func(tg *Target, cfg *Config) {
		tg.Upstream, _ = url.Parse(up.URL)
		tg.UpstreamTLS, tg.UpstreamTLSKey = upTLS, "h2-upstream"
		if !ends.IsZero() {
			tg.EndsAt, tg.TokenExpiresAt = ends, ends
		}
		cfg.UpstreamHTTP2 = h2
	})
	return h, up, upTLS
}

// With UpstreamHTTP2, requests share one HTTP/2 connection to the
// upstream; an upgrade still gets an HTTP/1.1 connection of its own and
// works; the target's TLS config is left as it was (the HTTP/1.1
// transport never offers h2). Without it, the upstream sees HTTP/1.1.
func TestUpstreamHTTP2(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		h, up, upTLS := newH2Harness(t, true, time.Time{})
		var remote string
		for i := range 3 {
			resp, body := h.get("/x")
			if resp.StatusCode != http.StatusOK || body != "ok HTTP/2.0" {
				t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
			}
			rs := up.requests()
			_, r, _ := strings.Cut(rs[len(rs)-1], " ")
			if remote == "" {
				remote = r
			} else if r != remote {
				t.Errorf("request %d on another upstream connection: %s, first %s", i, r, remote)
			}
		}
		c, br := rawConn(t, strings.TrimPrefix(h.srv.URL, "http://"))
		io.WriteString(c, "GET /ws HTTP/1.1\r\n"+rawAuth+"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade through an HTTP/2 upstream transport: %v %v", resp, err)
		}
		<-up.ready
		io.WriteString(c, "echo me")
		got := make([]byte, len("echo me"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "echo me" {
			t.Fatalf("upgraded stream: %q %v", got, err)
		}
		rs := up.requests()
		if last := rs[len(rs)-1]; !strings.HasPrefix(last, "HTTP/1.1 ") || !strings.HasSuffix(last, " /ws") {
			t.Errorf("the upgrade reached the upstream as %q, want HTTP/1.1", last)
		}
		if len(upTLS.NextProtos) != 0 {
			t.Errorf("the target's TLS config was changed: NextProtos %q", upTLS.NextProtos)
		}
	})
	t.Run("off", func(t *testing.T) {
		h, _, _ := newH2Harness(t, false, time.Time{})
		if resp, body := h.get("/x"); resp.StatusCode != http.StatusOK || body != "ok HTTP/1.1" {
			t.Fatalf("GET: %d %q", resp.StatusCode, body)
		}
	})
}

// A stream on the shared HTTP/2 connection is still cut at the grant's
// end, and the session's end is recorded.
func TestUpstreamHTTP2StreamCutAtGrantEnd(t *testing.T) {
	h, up, _ := newH2Harness(t, true, time.Now().Add(400*time.Millisecond))
	resp, err := http.DefaultClient.Do(h.req("GET", "/sse", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-up.ready
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: hello\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(done) }()
	closedWithin(t, done, 1400*time.Millisecond, "an HTTP/2 upstream stream at the grant's end")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndGrantExpired) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}
