package httpgw

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
)

func TestForwardHeaders(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.get("/dash?x=1",
		"Cookie", "__Host-airlock=alh_other; app=1; __Host-airlock-state=s; theme=dark",
		"X-Airlock-Identity", "forged",
		"X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=6.6.6.6",
		"Connection", "keep-alive, X-Hop",
		"X-Hop", "hop",
		"Keep-Alive", "timeout=5",
		"Proxy-Authorization", "Basic eHg=",
		"Te", "trailers, deflate",
		"X-Other", "kept",
	)
	if resp.StatusCode != 200 || body != "ok /dash" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if resp.Header.Get(IdentityHeader) != "" {
		t.Error("identity header sent back to the client")
	}
	u := h.up.last(t)
	if u.Path != "/dash" || u.Query != "x=1" {
		t.Errorf("upstream got %s?%s", u.Path, u.Query)
	}
	if got := u.Header.Values("Authorization"); len(got) != 1 || got[0] != testSecret {
		t.Errorf("upstream Authorization %q, want the brokered header only", got)
	}
	if got := u.Header.Values(IdentityHeader); len(got) != 1 || got[0] != testJWT {
		t.Errorf("upstream identity %q, want %q", got, testJWT)
	}
	if got := u.Header.Get("Cookie"); got != "app=1; theme=dark" {
		t.Errorf("upstream Cookie %q", got)
	}
	if got := u.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if got := u.Header.Get("X-Forwarded-Host"); got != testHost {
		t.Errorf("X-Forwarded-Host %q", got)
	}
	if got := u.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto %q (plain listener)", got)
	}
	if te := u.Header.Get("Te"); te != "" && te != "trailers" { // ReverseProxy keeps "trailers" only
		t.Errorf("Te %q", te)
	}
	for _, k := range []string{"Forwarded", "X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := u.Header.Get(k); v != "" {
			t.Errorf("hop-by-hop %s reached the upstream: %q", k, v)
		}
	}
	if c := u.Header.Get("Connection"); c != "" {
		t.Errorf("Connection reached the upstream: %q", c)
	}
	if u.Header.Get("X-Other") != "kept" {
		t.Error("an ordinary header was dropped")
	}
}

// A non-Airlock Authorization is the app's own and passes when the access
// level brokers nothing.
func TestForwardForeignAuthorization(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.Header = nil })
	h.get("/", "Cookie", "__Host-airlock="+testToken, "Authorization", "", "Authorization", "Basic YXBwOnB3")
	if resp, _ := h.get("/x", "Cookie", "__Host-airlock="+testToken, "Authorization", "", "Authorization", "Basic YXBwOnB3"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	u := h.up.last(t)
	if got := u.Header.Values("Authorization"); len(got) != 1 || got[0] != "Basic YXBwOnB3" {
		t.Errorf("upstream Authorization %q", got)
	}
	if u.Header.Get("Cookie") != "" {
		t.Errorf("upstream Cookie %q", u.Header.Get("Cookie"))
	}
	// A bearer token in Airlock's form is never the app's, even lower case.
	h.get("/y", "Authorization", "", "Authorization", "bearer "+testToken)
	if got := h.up.last(t).Header.Values("Authorization"); len(got) != 0 {
		t.Errorf("upstream Authorization %q", got)
	}
}

// A second Authorization header carrying an Airlock token must not reach
// the app either.
func TestForwardSecondAuthorizationStripped(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) { tg.Header = nil })
	resp, _ := h.get("/z", "Cookie", "__Host-airlock="+testToken, "Authorization", "",
		"Authorization", "Basic YXBwOnB3", "Authorization", "Bearer alh_second")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, v := range h.up.last(t).Header.Values("Authorization") {
		if strings.Contains(v, TokenPrefix) {
			t.Errorf("an Airlock token reached the app: %q", v)
		}
	}
}

func TestRulesDenyPost(t *testing.T) {
	r, err := airlock.ParseHTTPRule("GET,HEAD /")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(tg *Target, _ *Config) { tg.Rules = []airlock.HTTPRule{r} })
	if resp, _ := h.get("/api/x"); resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	resp, body := h.do(h.req("POST", "/api/x", strings.NewReader("payload")))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	for _, u := range h.up.requests() {
		if u.Method == "POST" {
			t.Fatal("the POST reached the upstream")
		}
	}
	es := h.audit.wait(t, "http.request", 2)
	e := es[len(es)-1]
	d := details(t, e)
	if e.Outcome != airlock.OutcomeDenied || d["denied"] != "access_level" || d["method"] != "POST" || d["path"] != "/api/x" {
		t.Errorf("denied event %s %s", e.Outcome, e.Details)
	}
}

func TestRulesPrefix(t *testing.T) {
	r, _ := airlock.ParseHTTPRule("* /api")
	h := newHarness(t, func(tg *Target, _ *Config) { tg.Rules = []airlock.HTTPRule{r} })
	for path, want := range map[string]int{"/api": 200, "/api/": 200, "/api/v1": 200, "/apix": 403, "/": 403, "/other/api": 403} {
		if resp, _ := h.get(path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestUncleanPaths(t *testing.T) {
	h := newHarness(t, nil)
	addr := h.raw()
	for _, p := range []string{"/a/../b", "//x", "/a%2F..%2Fb", "/a/./b", "/a%5Cb", "/a/%2e%2e/b", "/x//y", "/a%00b"} {
		c, br := rawConn(t, addr)
		c.Write([]byte("GET " + p + " HTTP/1.1\r\nHost: " + testHost + "\r\nAuthorization: Bearer " + testToken + "\r\n\r\n"))
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	if n := len(h.up.requests()); n != 0 {
		t.Errorf("the upstream saw %d requests: %v", n, h.up.requests())
	}
}

func TestUpstreamCookies(t *testing.T) {
	h := newHarness(t, nil)
	resp, _ := h.get("/cookie")
	got := resp.Header.Values("Set-Cookie")
	if len(got) != 2 {
		t.Fatalf("Set-Cookie %q", got)
	}
	for _, c := range got {
		if strings.Contains(strings.ToLower(c), "domain") {
			t.Errorf("Domain kept: %q", c)
		}
		if strings.HasPrefix(strings.ToLower(c), "__host-airlock") {
			t.Errorf("the gateway's cookie name passed: %q", c)
		}
	}
	if !strings.HasPrefix(got[0], "app=1") || !strings.Contains(got[0], "HttpOnly") || !strings.HasPrefix(got[1], "plain=2") {
		t.Errorf("Set-Cookie %q", got)
	}
}

func TestHostOnlyCookieDomainWithSpaces(t *testing.T) {
	for _, v := range []string{"a=1; Domain=apps.example", "a=1; domain =apps.example", "a=1;  DOMAIN\t= apps.example; Path=/", "a=1; Domain"} {
		out, ok := hostOnlyCookie(v)
		if !ok {
			t.Errorf("%q dropped", v)
			continue
		}
		if strings.Contains(strings.ToLower(out), "domain") {
			t.Errorf("%q → %q keeps Domain", v, out)
		}
	}
}

func TestLocationRewrite(t *testing.T) {
	h := newHarness(t, func(_ *Target, c *Config) { c.PublicPort = "8443" })
	resp, _ := h.get("/redirect")
	if got, want := resp.Header.Get("Location"), "https://"+testHost+":8443/next?x=1"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	resp, _ = h.get("/redirect-away")
	if got := resp.Header.Get("Location"); got != "https://elsewhere.example/x" {
		t.Errorf("Location %q", got)
	}
}

func TestUnknownHost(t *testing.T) {
	h := newHarness(t, nil)
	r := h.req("GET", "/", nil)
	r.Host = "nope.apps.example"
	if resp, _ := h.do(r); resp.StatusCode != 404 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// A brokered header given with a non-canonical name still replaces the
// client's header of that name instead of travelling next to it.
func TestBrokeredHeaderNonCanonical(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.Header = http.Header{"authorization": {testSecret}}
	})
	h.get("/x", "Cookie", CookieName+"="+testToken, "Authorization", "", "Authorization", "Basic Y2xpZW50OnB3")
	u := h.up.last(t)
	var got []string
	for k, vs := range u.Header {
		if strings.EqualFold(k, "Authorization") {
			got = append(got, vs...)
		}
	}
	if len(got) != 1 || got[0] != testSecret {
		t.Errorf("upstream Authorization %q, want the brokered one only", got)
	}
}

// A token opens only the app it was issued for.
func TestTokenForOtherApp(t *testing.T) {
	h := newHarness(t, nil)
	h.auth.mu.Lock()
	h.auth.apps["logs.apps.example"] = &App{Resource: "logs", Host: "logs.apps.example"}
	h.auth.mu.Unlock()
	h.get("/x") // a session for grafana
	r := h.req("GET", "/x", nil)
	r.Host = "logs.apps.example"
	if resp, _ := h.do(r); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("grafana's token on logs: %d", resp.StatusCode)
	}
	// Also when it is the first use of the token.
	h2 := newHarness(t, nil)
	h2.auth.apps["logs.apps.example"] = &App{Resource: "logs", Host: "logs.apps.example"}
	r = h2.req("GET", "/x", nil)
	r.Host = "logs.apps.example"
	if resp, _ := h2.do(r); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("grafana's token on logs, first use: %d", resp.StatusCode)
	}
	if n := len(h2.up.requests()); n != 0 {
		t.Errorf("forwarded %d", n)
	}
}

// An app that answers before reading the request body: the transport may
// still be reading it when the response is done.
func TestUpstreamAnswersBeforeBody(t *testing.T) {
	h := newHarness(t, nil)
	for i := 0; i < 5; i++ {
		pr, pw := io.Pipe()
		go func() {
			chunk := make([]byte, 32<<10)
			for j := 0; j < 256; j++ {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, err := noRedirect.Do(h.req("POST", "/early", pr))
		pr.CloseWithError(io.ErrClosedPipe)
		if err != nil {
			continue // the gateway may close the connection while we write
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
	h.audit.wait(t, "http.response", 1)
}

// Servlet containers (Tomcat, Jetty) drop ";params" from a segment before
// resolving dot segments, so "/public/..;/admin" is /admin to them: a
// rule on /public/ must not let it through.
func TestDotSegmentWithParams(t *testing.T) {
	r, _ := airlock.ParseHTTPRule("GET /public/")
	h := newHarness(t, func(tg *Target, _ *Config) { tg.Rules = []airlock.HTTPRule{r} })
	addr := h.raw()
	for _, p := range []string{"/public/..;/admin", "/public/..;x=1/admin", "/public/%2e%2e;/admin", "/public/.;/x", "/public/x/..;"} {
		c, br := rawConn(t, addr)
		c.Write([]byte("GET " + p + " HTTP/1.1\r\n" + rawAuth + "\r\n"))
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	if n := len(h.up.requests()); n != 0 {
		t.Errorf("forwarded %d: %v", n, h.up.requests())
	}
	if resp, _ := h.get("/public/a;b/c"); resp.StatusCode != 200 {
		t.Errorf("a segment with params: %d", resp.StatusCode)
	}
}

// An API client's error body is valid JSON whatever path it sent.
func TestErrorBodyIsJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "http://dash.apps.example/x", nil)
	req.Header.Set("Accept", "application/json")
	writeError(rec, req, http.StatusForbidden, "airlock: read access does not allow POST /a\x01\"b\u2028")
	var v struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Error.Code != "forbidden" || !strings.Contains(v.Error.Message, "/a\x01\"b") {
		t.Fatalf("error body %q: %v %+v", rec.Body.String(), err, v)
	}
}
