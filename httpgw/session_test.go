package httpgw

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// enders end the test session in each of the ways that must cut it.
var enders = []struct {
	name   string
	reason airlock.EndReason
	end    func(h *harness, id string)
}{
	{"CloseGrant", airlock.EndGrantRevoked, func(h *harness, _ string) {
		h.auth.setRefuse(testToken, airlock.Errorf(airlock.EUNAUTHORIZED, "grant revoked"))
		h.g.CloseGrant("gra_1", "")
	}},
	{"CloseUser", airlock.EndUserDisabled, func(h *harness, _ string) {
		h.auth.setRefuse(testToken, airlock.Errorf(airlock.EUNAUTHORIZED, "user disabled"))
		h.g.CloseUser("usr_alice", "")
	}},
	{"CloseSession", airlock.EndSessionKilled, func(h *harness, id string) {
		if !h.g.CloseSession(id, "") {
			h.t.Error("CloseSession: no such session")
		}
	}},
}

// revokeRefuses makes a revoked token fail Authenticate, like the access
// service.
func revokeRefuses(h *harness) { h.auth.revokeRefuses = true }

func TestEndCancelsSlowRequest(t *testing.T) {
	for _, e := range enders {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, nil)
			revokeRefuses(h)
			done := make(chan struct{})
			var status int
			go func() {
				defer close(done)
				resp, err := noRedirect.Do(h.req("GET", "/slow", nil))
				if err == nil {
					status = resp.StatusCode
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			h.up.waitStarted(t, "/slow")
			e.end(h, h.session().ID)
			closedWithin(t, done, time.Second, "slow request")
			if status != 0 && status != http.StatusUnauthorized {
				t.Errorf("cut request: status %d", status)
			}
			if resp, _ := h.get("/next"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("next request: %d", resp.StatusCode)
			}
			d := details(t, h.audit.wait(t, "session.ended", 1)[0])
			if d["end_reason"] != string(e.reason) {
				t.Errorf("end_reason %v, want %s", d["end_reason"], e.reason)
			}
			for _, u := range h.up.requests() {
				if u.Path == "/next" {
					t.Error("/next was forwarded")
				}
			}
		})
	}
}

func TestGrantEndCutsRequest(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.EndsAt = time.Now().Add(300 * time.Millisecond)
		tg.TokenExpiresAt = tg.EndsAt
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	closedWithin(t, done, 1300*time.Millisecond, "slow request at the grant's end")
	if resp, _ := h.get("/next"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the end: %d", resp.StatusCode)
	}
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndGrantExpired) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}

func TestEndClosesWebSocket(t *testing.T) {
	for _, e := range enders {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c, br := rawConn(t, strings.TrimPrefix(h.srv.URL, "http://"))
			io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+testHost+"\r\nAuthorization: Bearer "+testToken+
				"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			h.up.waitStarted(t, "/ws")
			io.WriteString(c, "ping")
			buf := make([]byte, 4)
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("echo %q %v", buf, err)
			}
			// The echo is counted once its Write returns, which may be
			// just after the client read it.
			for deadline := time.Now().Add(time.Second); h.session().BytesOut < 4 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			e.end(h, h.session().ID)
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadAll(br); err != nil {
				t.Fatalf("the upgraded connection was not closed within 1 s: %v", err)
			}
			d := details(t, h.audit.wait(t, "session.ended", 1)[0])
			if d["end_reason"] != string(e.reason) {
				t.Errorf("end_reason %v", d["end_reason"])
			}
			r := h.audit.wait(t, "http.response", 1)[0]
			if rd := details(t, r); rd["status"] != float64(101) || rd["bytes_out"].(float64) < 4 || rd["bytes_in"].(float64) < 4 {
				t.Errorf("http.response %s", r.Details)
			}
		})
	}
}

func TestEndClosesSSE(t *testing.T) {
	for _, e := range enders {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, nil)
			resp, err := http.DefaultClient.Do(h.req("GET", "/sse", nil, "Accept", "text/event-stream"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, len("data: hello\n\n"))
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatalf("first event: %v", err)
			}
			h.up.waitStarted(t, "/sse")
			e.end(h, h.session().ID)
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, resp.Body); close(done) }()
			closedWithin(t, done, time.Second, "SSE stream")
			h.audit.wait(t, "session.ended", 1)
			// The stream's end is audited too.
			h.audit.wait(t, "http.response", 1)
		})
	}
}

func TestEvents(t *testing.T) {
	h := newHarness(t, nil)
	h.get("/a?secret=1", "X-Custom", "header-value-never-logged", "Cookie", "app=cookie-value-never-logged")
	h.do(h.req("POST", "/b", strings.NewReader("body-never-logged")))
	id := h.session().ID
	h.g.CloseSession(id, "")
	h.audit.wait(t, "session.ended", 1)

	st := h.audit.byAction("session.started")
	if len(st) != 1 {
		t.Fatalf("session.started %d", len(st))
	}
	d := details(t, st[0])
	for _, k := range []string{"access", "ends_at", "browser", "host", "upstream", "strict_audit"} {
		if _, ok := d[k]; !ok {
			t.Errorf("session.started lacks %s: %v", k, d)
		}
	}
	if d["host"] != testHost || d["access"] != "read" || d["upstream"] != h.up.URL {
		t.Errorf("session.started %v", d)
	}
	reqs := h.audit.byAction("http.request")
	if len(reqs) != 2 {
		t.Fatalf("http.request %d", len(reqs))
	}
	r0, r1 := details(t, reqs[0]), details(t, reqs[1])
	if r0["n"] != float64(1) || r0["method"] != "GET" || r0["path"] != "/a" || r0["host"] != testHost || r0["query_omitted"] != true || r0["query"] != nil {
		t.Errorf("http.request 1 %v", r0)
	}
	if r1["n"] != float64(2) || r1["method"] != "POST" || r1["content_length"] != float64(len("body-never-logged")) {
		t.Errorf("http.request 2 %v", r1)
	}
	resps := h.audit.byAction("http.response")
	if len(resps) != 2 {
		t.Fatalf("http.response %d", len(resps))
	}
	// A response event is recorded once its handler returns, which may be
	// after the client has the response and sent the next request.
	if details(t, resps[0])["n"] == float64(2) {
		resps[0], resps[1] = resps[1], resps[0]
	}
	p0 := details(t, resps[0])
	if p0["n"] != float64(1) || p0["status"] != float64(200) || p0["bytes_out"] != float64(len("ok /a")) {
		t.Errorf("http.response 1 %v", p0)
	}
	for _, k := range []string{"bytes_in", "duration_ms"} {
		if _, ok := p0[k]; !ok {
			t.Errorf("http.response lacks %s", k)
		}
	}
	p1 := details(t, resps[1])
	if p1["bytes_in"] != float64(len("body-never-logged")) {
		t.Errorf("http.response 2 %v", p1)
	}
	en := details(t, h.audit.byAction("session.ended")[0])
	if en["end_reason"] != "session_killed" || en["requests"] != float64(2) {
		t.Errorf("session.ended %v", en)
	}
	for _, k := range []string{"bytes_in", "bytes_out", "duration_ms"} {
		if _, ok := en[k]; !ok {
			t.Errorf("session.ended lacks %s", k)
		}
	}
	h.audit.mu.Lock()
	all, _ := json.Marshal(h.audit.events)
	h.audit.mu.Unlock()
	for _, secret := range []string{"svc-brokered-secret", testToken, testJWT, "header-value-never-logged", "cookie-value-never-logged", "body-never-logged", "secret=1"} {
		if strings.Contains(string(all), secret) {
			t.Errorf("the audit log holds %q", secret)
		}
	}
	for _, e := range st {
		if e.Actor.ID != "usr_alice" || e.Actor.Name != "alice" || e.GrantID != "gra_1" || e.SessionID != id || e.Resource != "grafana" || e.SourceAddr == "" {
			t.Errorf("event envelope %+v", e)
		}
	}
}

func TestEventsLogQuery(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.LogQuery = true })
	h.get("/a?q=1&b=2")
	d := details(t, h.audit.wait(t, "http.request", 1)[0])
	if d["query"] != "q=1&b=2" || d["query_omitted"] != nil {
		t.Errorf("http.request %v", d)
	}
}

func TestStrictAuditFailure(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.StrictAudit = true })
	h.audit.setFail(func(e airlock.Event) bool { return e.Action == "http.request" })
	resp, _ := h.get("/never")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d", resp.StatusCode)
	}
	if n := len(h.up.requests()); n != 0 {
		t.Errorf("the upstream saw %d requests", n)
	}
}

func TestStrictAuditWaitsForReceipt(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.StrictAudit = true })
	h.get("/first")
	hold := make(chan struct{})
	h.audit.mu.Lock()
	h.audit.hold = hold
	h.audit.mu.Unlock()
	done := make(chan int)
	go func() {
		resp, err := noRedirect.Do(h.req("GET", "/held", nil))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(150 * time.Millisecond)
	for _, u := range h.up.requests() {
		if u.Path == "/held" {
			t.Fatal("forwarded before its event was durable")
		}
	}
	close(hold)
	if s := <-done; s != 200 {
		t.Errorf("status %d", s)
	}
}

func TestNonStrictAuditFailureEndsSession(t *testing.T) {
	h := newHarness(t, nil)
	h.get("/first")
	h.audit.setFail(func(e airlock.Event) bool { return e.Action == "http.request" })
	h.get("/second")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndAuditUnavailable) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}

func TestSessionStartAuditFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.audit.setFail(func(e airlock.Event) bool { return e.Action == "session.started" })
	if resp, _ := h.get("/x"); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d", resp.StatusCode)
	}
	if len(h.up.requests()) != 0 {
		t.Error("forwarded without session.started")
	}
}

func TestMaxConcurrent(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.MaxConcurrent = 1 })
	go func() {
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	resp, _ := h.get("/second")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d", resp.StatusCode)
	}
	var denied bool
	for _, e := range h.audit.byAction("http.request") {
		if details(t, e)["denied"] == "max_concurrent" && e.Outcome == airlock.OutcomeDenied {
			denied = true
		}
	}
	if !denied {
		t.Error("no denied max_concurrent event")
	}
}

func TestRecheckRefusal(t *testing.T) {
	h := newHarness(t, func(_ *Target, c *Config) { c.Recheck = 100 * time.Millisecond })
	h.get("/first")
	e := airlock.Errorf(airlock.EUNAUTHORIZED, "user disabled")
	e.Details = map[string]any{"end_reason": string(airlock.EndUserDisabled)}
	h.auth.setRefuse(testToken, e)
	time.Sleep(150 * time.Millisecond)
	resp, body := h.get("/second")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "user disabled") {
		t.Errorf("status %d %s", resp.StatusCode, body)
	}
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndUserDisabled) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}

// A response of known length is not held back until it is complete: what
// the app has written reaches the client while the rest is still coming
// (a slow download, a long poll with a Content-Length).
func TestKnownLengthBodyStreams(t *testing.T) {
	h := newHarness(t, nil)
	type half struct {
		resp *http.Response
		got  string
	}
	got := make(chan half, 1)
	go func() {
		resp, err := http.DefaultClient.Do(h.req("GET", "/dribble", nil))
		if err != nil {
			got <- half{got: err.Error()}
			return
		}
		b := make([]byte, 5)
		_, err = io.ReadFull(resp.Body, b)
		got <- half{resp, fmt.Sprint(string(b), err)}
	}()
	var first half
	select {
	case first = <-got:
	case <-time.After(10 * time.Second):
		h.up.release <- struct{}{}
		t.Fatal("the first half of a known-length body did not reach the client before the rest was written")
	}
	if first.got != "first<nil>" {
		t.Fatalf("first half: %s", first.got)
	}
	defer first.resp.Body.Close()
	h.up.release <- struct{}{}
	rest, err := io.ReadAll(first.resp.Body)
	if string(rest) != "-last" || err != nil {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// A stream open when the revocation was lost on the way to this node is
// still cut within Recheck, with no new request to trigger the check.
func TestRecheckCutsStream(t *testing.T) {
	h := newHarness(t, func(_ *Target, c *Config) { c.Recheck = 100 * time.Millisecond })
	resp, err := http.DefaultClient.Do(h.req("GET", "/sse", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h.up.waitStarted(t, "/sse")
	e := airlock.Errorf(airlock.EUNAUTHORIZED, "revoked")
	e.Details = map[string]any{"end_reason": string(airlock.EndGrantRevoked)}
	h.auth.setRefuse(testToken, e)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(done) }()
	closedWithin(t, done, time.Second, "SSE stream after a refused recheck")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndGrantRevoked) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}

func TestCloseSessionRevokes(t *testing.T) {
	h := newHarness(t, nil)
	revokeRefuses(h)
	h.auth.revokeDelay = 100 * time.Millisecond // a store round trip
	h.get("/first")
	h.g.CloseSession(h.session().ID, "")
	// The next request right away must not open a new session with the
	// killed session's token.
	if resp, _ := h.get("/second"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after CloseSession: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(h.auth.revokedTokens()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r := h.auth.revokedTokens(); len(r) == 0 || r[0] != testToken {
		t.Errorf("revoked %v", r)
	}
}

func TestIdleTimeoutRevokes(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.IdleTimeout = 200 * time.Millisecond })
	revokeRefuses(h)
	h.get("/first")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndIdleTimeout) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
	if r := h.auth.revokedTokens(); len(r) == 0 || r[0] != testToken {
		t.Errorf("revoked %v", r)
	}
	if resp, _ := h.get("/second"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after idle timeout: %d", resp.StatusCode)
	}
}

func TestIdleTimeoutSparesBusySession(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.IdleTimeout = 200 * time.Millisecond })
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	time.Sleep(400 * time.Millisecond)
	if n := len(h.audit.byAction("session.ended")); n != 0 {
		t.Error("a session with a request in flight ended as idle")
	}
}

func TestActiveSessions(t *testing.T) {
	h := newHarness(t, nil)
	if n := len(h.g.ActiveSessions()); n != 0 {
		t.Fatalf("%d sessions before any request", n)
	}
	h.get("/x")
	h.get("/y")
	s := h.session()
	if s.GrantID != "gra_1" || s.UserID != "usr_alice" || s.UserName != "alice" || s.Resource != "grafana" ||
		s.Kind != airlock.KindHTTP || s.Access != "read" || s.Node != "node1" || s.StartedAt.IsZero() || s.Statements != 2 || s.ID == "" {
		t.Errorf("session %+v", s)
	}
	h.g.CloseGrant("gra_1", "")
	if n := len(h.g.ActiveSessions()); n != 0 {
		t.Errorf("%d sessions after CloseGrant", n)
	}
	if n := h.g.CloseGrant("gra_1", ""); n != 0 {
		t.Errorf("closed %d twice", n)
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, done, time.Second, "slow request at shutdown")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndServerShutdown) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
	if resp, _ := h.get("/after"); resp.StatusCode == 200 {
		t.Error("served after Shutdown")
	}
}

// The grant's ends_at closes an upgraded connection and an SSE stream.
func TestGrantEndClosesStreams(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.EndsAt = time.Now().Add(400 * time.Millisecond)
		tg.TokenExpiresAt = tg.EndsAt
	})
	c, br := rawConn(t, strings.TrimPrefix(h.srv.URL, "http://"))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+testHost+"\r\nAuthorization: Bearer "+testToken+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	h.up.waitStarted(t, "/ws")
	resp, err := http.DefaultClient.Do(h.req("GET", "/sse", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h.up.waitStarted(t, "/sse")
	ws, sse := make(chan struct{}), make(chan struct{})
	go func() { io.Copy(io.Discard, br); close(ws) }()
	go func() { io.Copy(io.Discard, resp.Body); close(sse) }()
	closedWithin(t, ws, 1400*time.Millisecond, "WebSocket at the grant's end")
	closedWithin(t, sse, 100*time.Millisecond, "SSE stream at the grant's end")
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndGrantExpired) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}

// A token that runs out before its grant stops opening new requests, but
// a stream in flight under it goes on (a watch or log stream outlives its
// token) and is still cut at the grant's end.
func TestTokenExpiryDrainsSession(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.TokenExpiresAt = time.Now().Add(200 * time.Millisecond)
		tg.EndsAt = time.Now().Add(1500 * time.Millisecond)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	id := h.session().ID
	<-time.After(time.Until(h.target().TokenExpiresAt.Add(100 * time.Millisecond))) // past the token's end, before the grant's
	select {
	case <-done:
		t.Fatal("the stream was cut when its token expired, before the grant's end")
	default:
	}
	if resp, _ := h.get("/next"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a new request with the expired token: %d, want 401", resp.StatusCode)
	}
	closedWithin(t, done, 2500*time.Millisecond, "stream at the grant's end")
	ends := h.audit.wait(t, "session.ended", 1)
	if ends[0].SessionID != id {
		t.Errorf("ended session %s, want %s", ends[0].SessionID, id)
	}
	if d := details(t, ends[0]); d["end_reason"] != string(airlock.EndGrantExpired) {
		t.Errorf("end_reason %v, want grant_expired", d["end_reason"])
	}
}

// A drained session with nothing in flight ends at once, as the client
// closing.
func TestTokenExpiryEndsIdleSession(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.TokenExpiresAt = time.Now().Add(200 * time.Millisecond)
	})
	if resp, _ := h.get("/echo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	d := details(t, h.audit.wait(t, "session.ended", 1)[0])
	if d["end_reason"] != string(airlock.EndClientClosed) {
		t.Errorf("end_reason %v, want client_closed", d["end_reason"])
	}
}

// A session whose token has run out is gone from the token table but not
// from the gateway: a revocation still cuts its streams at once.
func TestDrainedSessionIsRevocable(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.TokenExpiresAt = time.Now().Add(200 * time.Millisecond)
		tg.EndsAt = time.Now().Add(time.Hour)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := noRedirect.Do(h.req("GET", "/slow", nil)); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	h.up.waitStarted(t, "/slow")
	<-time.After(time.Until(h.target().TokenExpiresAt.Add(100 * time.Millisecond)))
	if len(h.g.ActiveSessions()) != 1 {
		t.Fatalf("the draining session is not listed: %v", h.g.ActiveSessions())
	}
	if n := h.g.CloseGrant("gra_1", ""); n != 1 {
		t.Fatalf("CloseGrant closed %d sessions, want the draining one", n)
	}
	closedWithin(t, done, time.Second, "stream of a drained session at revoke")
	if d := details(t, h.audit.wait(t, "session.ended", 1)[0]); d["end_reason"] != string(airlock.EndGrantRevoked) {
		t.Errorf("end_reason %v", d["end_reason"])
	}
}
