package httpgw

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Request smuggling and limits, raw HTTP/1.1 on a TCP connection to
// g.Serve.

const rawAuth = "Host: " + testHost + "\r\nAuthorization: Bearer " + testToken + "\r\n"

const smuggled = "GET /smuggled HTTP/1.1\r\n" + rawAuth + "\r\n"

// readAll reads responses off br until the connection closes (or its
// deadline passes) and returns their statuses.
func readAll(t *testing.T, br *bufio.Reader) []int {
	t.Helper()
	var out []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp.StatusCode)
	}
}

func TestSmuggling(t *testing.T) {
	for _, tc := range []struct {
		name, req string
		status    int // the first response's status; 0: any
	}{
		// CL.TE: a front end using Content-Length would forward the
		// pipelined request as part of the body.
		{"CL.TE", "POST /a HTTP/1.1\r\n" + rawAuth + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 0},
		// TE.CL: a front end using Transfer-Encoding; the chunk hides the
		// request from a Content-Length reader.
		{"TE.CL", "POST /a HTTP/1.1\r\n" + rawAuth + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" +
			"8\r\nSMUGGLED\r\n0\r\n\r\n" + smuggled, 0},
		{"two Content-Length", "POST /a HTTP/1.1\r\n" + rawAuth + "Content-Length: 4\r\nContent-Length: 40\r\n\r\nbody" + smuggled, 400},
		{"Content-Length list", "POST /a HTTP/1.1\r\n" + rawAuth + "Content-Length: 4, 40\r\n\r\nbody" + smuggled, 400},
		{"TE not chunked last", "POST /a HTTP/1.1\r\n" + rawAuth + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"two TE", "POST /a HTTP/1.1\r\n" + rawAuth + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"space before colon", "POST /a HTTP/1.1\r\n" + rawAuth + "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"bare LF chunk", "POST /a HTTP/1.1\r\n" + rawAuth + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + smuggled, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c, br := rawConn(t, h.raw())
			io.WriteString(c, tc.req)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			st := readAll(t, br)
			if len(st) == 0 {
				t.Fatal("no response")
			}
			if tc.status != 0 && st[0] != tc.status {
				t.Errorf("status %d, want %d", st[0], tc.status)
			}
			for _, u := range h.up.requests() {
				if u.Path == "/smuggled" || strings.Contains(u.Body, "GET /") {
					t.Errorf("upstream saw %s %s body %q", u.Method, u.Path, u.Body)
				}
			}
			if len(st) > 1 {
				t.Errorf("answered %d requests on the connection (%v): the one after a smuggling attempt must not be read", len(st), st)
			}
		})
	}
}

// What net/http does with CL+TE: it reads the body by Transfer-Encoding,
// drops the Content-Length, and the gateway forwards a body framed anew,
// so the upstream sees one well-formed request.
func TestCLTEForwardedFramedAnew(t *testing.T) {
	h := newHarness(t, nil)
	c, br := rawConn(t, h.raw())
	io.WriteString(c, "POST /a HTTP/1.1\r\n"+rawAuth+"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	resp, _ := readResponse(t, br, "POST")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Header.Get("Connection") != "close" && !resp.Close {
		t.Error("the connection stays open after a request with Transfer-Encoding")
	}
	u := h.up.last(t)
	if u.Body != "hello" || len(u.Header.Values("Content-Length")) > 1 {
		t.Errorf("upstream body %q CL %q TE %q", u.Body, u.Header.Values("Content-Length"), u.TE)
	}
	if u.ContentLength != -1 && u.ContentLength != 5 {
		t.Errorf("upstream ContentLength %d", u.ContentLength)
	}
}

func TestOversizedHeader(t *testing.T) {
	h := newHarness(t, func(_ *Target, c *Config) { c.MaxHeaderBytes = 4096 })
	addr := h.raw()
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\n"+rawAuth+"X-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	resp, _ := readResponse(t, br, "GET")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d", resp.StatusCode)
	}
	if n := len(h.up.requests()); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
	// Many small headers count too.
	c, br = rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\n"+rawAuth+strings.Repeat("X-A: b\r\n", 2000)+"\r\n")
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("many headers: status %d", resp.StatusCode)
	}
}

// HTTP/1.1 pipelining across the grant's end: the request read after the
// end is answered 401 and never forwarded.
func TestPipeliningAcrossGrantEnd(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.EndsAt = time.Now().Add(400 * time.Millisecond)
		tg.TokenExpiresAt = tg.EndsAt
	})
	c, br := rawConn(t, h.raw())
	io.WriteString(c, "GET /first HTTP/1.1\r\n"+rawAuth+"\r\nGET /slow HTTP/1.1\r\n"+rawAuth+"\r\nGET /after HTTP/1.1\r\n"+rawAuth+"\r\n")
	r1, _ := readResponse(t, br, "GET")
	r2, _ := readResponse(t, br, "GET")
	r3, _ := readResponse(t, br, "GET")
	if r1.StatusCode != 200 || r2.StatusCode != http.StatusUnauthorized || r3.StatusCode != http.StatusUnauthorized {
		t.Errorf("statuses %d %d %d, want 200 401 401", r1.StatusCode, r2.StatusCode, r3.StatusCode)
	}
	for _, u := range h.up.requests() {
		if u.Path == "/after" {
			t.Error("/after was forwarded after the grant's end")
		}
	}
}

// HTTP/1.1 pipelining across a revoke.
func TestPipeliningAcrossRevoke(t *testing.T) {
	h := newHarness(t, nil)
	revokeRefuses(h)
	c, br := rawConn(t, h.raw())
	io.WriteString(c, "GET /slow HTTP/1.1\r\n"+rawAuth+"\r\nGET /after HTTP/1.1\r\n"+rawAuth+"\r\n")
	h.up.waitStarted(t, "/slow")
	h.g.CloseSession(h.session().ID, "")
	r1, _ := readResponse(t, br, "GET")
	r2, _ := readResponse(t, br, "GET")
	if r1.StatusCode != http.StatusUnauthorized || r2.StatusCode != http.StatusUnauthorized {
		t.Errorf("statuses %d %d, want 401 401", r1.StatusCode, r2.StatusCode)
	}
	for _, u := range h.up.requests() {
		if u.Path == "/after" {
			t.Error("/after was forwarded after the revoke")
		}
	}
}

// An h2c upgrade would turn the connection into an HTTP/2 tunnel to the
// app whose requests the gateway neither checks against the rules nor
// audits (h2c smuggling): it is refused, not forwarded.
func TestH2CUpgradeRefused(t *testing.T) {
	h := newHarness(t, nil)
	for _, up := range []string{"h2c", "websocket, h2c", "H2C"} {
		c, br := rawConn(t, h.raw())
		io.WriteString(c, "GET /ws HTTP/1.1\r\n"+rawAuth+"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: "+up+"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode == http.StatusSwitchingProtocols {
			t.Errorf("Upgrade %s: switched protocols", up)
		}
	}
	for _, u := range h.up.requests() {
		if strings.Contains(strings.ToLower(u.Header.Get("Upgrade")), "h2c") {
			t.Errorf("the upstream saw Upgrade %q", u.Header.Get("Upgrade"))
		}
	}
}
