package httpgw

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func TestUnauthenticatedNavigation(t *testing.T) {
	h := newHarness(t, nil)
	resp, _ := h.get("/dash/x?y=1", "Authorization", "", "Accept", "text/html,application/xhtml+xml", "Sec-Fetch-Mode", "navigate")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var state *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == StateCookieName {
			state = c
		}
	}
	if state == nil || state.Value == "" || !state.Secure || !state.HttpOnly || state.Path != "/" || state.Domain != "" {
		t.Fatalf("state cookie %+v", state)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != "https" || loc.Host != "console.example" || loc.Path != "/apps/open" {
		t.Errorf("Location %s", loc)
	}
	q := loc.Query()
	if q.Get("app") != "grafana" || q.Get("state") != StateHash(state.Value) || q.Get("next") != "/dash/x?y=1" {
		t.Errorf("query %v", q)
	}
	if len(h.up.requests()) != 0 {
		t.Error("forwarded without a session")
	}
}

func TestUnauthenticatedAPI(t *testing.T) {
	h := newHarness(t, nil)
	for _, hdr := range [][]string{
		{"Authorization", "", "Accept", "application/json"},
		{"Authorization", "", "Authorization", "Bearer alh_unknown"},
		{"Authorization", "", "Authorization", "Basic eDp5"},
	} {
		resp, body := h.get("/api", hdr...)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%v: status %d", hdr, resp.StatusCode)
			continue
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%v: no WWW-Authenticate", hdr)
		}
		var v struct {
			Error struct{ Code, Message string }
		}
		if resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &v) != nil || v.Error.Message == "" {
			t.Errorf("%v: body %q (%s)", hdr, body, resp.Header.Get("Content-Type"))
		}
	}
	if len(h.up.requests()) != 0 {
		t.Error("forwarded without a session")
	}
}

func TestCallback(t *testing.T) {
	h := newHarness(t, nil)
	exp := time.Now().Add(30 * time.Minute).Truncate(time.Second)
	nt := *h.target()
	nt.TokenExpiresAt = exp
	h.auth.redeemTok, h.auth.redeemT, h.auth.redeemNxt = "alh_browser", &nt, "/dash?x=1"

	// No state cookie: refused before Redeem.
	resp, _ := h.get(CallbackPath+"?code=c1", "Authorization", "")
	if resp.StatusCode != http.StatusBadRequest || len(h.auth.redeems) != 0 {
		t.Fatalf("without state: %d, %d redeems", resp.StatusCode, len(h.auth.redeems))
	}

	resp, _ = h.get(CallbackPath+"?code=c1", "Authorization", "", "Cookie", StateCookieName+"=st4te")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dash?x=1" {
		t.Fatalf("callback %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(h.auth.redeems) != 1 || h.auth.redeems[0].State.Reveal() != "st4te" || h.auth.redeems[0].Code.Reveal() != "c1" {
		t.Fatalf("redeems %+v", h.auth.redeems)
	}
	var app, st *http.Cookie
	for _, c := range resp.Cookies() {
		switch c.Name {
		case CookieName:
			app = c
		case StateCookieName:
			st = c
		}
	}
	if app == nil || app.Value != "alh_browser" || !app.HttpOnly || !app.Secure || app.SameSite != http.SameSiteLaxMode ||
		app.Path != "/" || app.Domain != "" || !app.Expires.Equal(exp) {
		t.Errorf("app cookie %+v", app)
	}
	if st == nil || st.MaxAge >= 0 {
		t.Errorf("state cookie not cleared: %+v", st)
	}
	if raw := strings.Join(resp.Header.Values("Set-Cookie"), "\n"); strings.Contains(strings.ToLower(raw), "domain=") {
		t.Errorf("a cookie with Domain: %s", raw)
	}

	for _, next := range []string{"//evil.com", "https://evil.com", "/\\evil.com", "", "evil", "/a\r\nX: y", "javascript:alert(1)"} {
		h.auth.redeemNxt = next
		resp, _ = h.get(CallbackPath+"?code=c2", "Authorization", "", "Cookie", StateCookieName+"=st4te")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("next %q: %d Location %q", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// A refused code: no app cookie.
	h.auth.redeemErr = airlock.Errorf(airlock.EUNAUTHORIZED, "code used")
	resp, _ = h.get(CallbackPath+"?code=c3", "Authorization", "", "Cookie", StateCookieName+"=st4te")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("refused code: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == CookieName && c.Value != "" {
			t.Errorf("app cookie on a refused code: %+v", c)
		}
	}
	// POST is refused.
	if resp, _ := h.do(h.req("POST", CallbackPath+"?code=c1", nil, "Authorization", "", "Cookie", StateCookieName+"=st4te")); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST callback: %d", resp.StatusCode)
	}
}

func TestBrowserCookieSession(t *testing.T) {
	h := newHarness(t, nil)
	resp, _ := h.get("/page", "Authorization", "", "Cookie", CookieName+"="+testToken, "Accept", "text/html")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	d := details(t, h.audit.wait(t, "session.started", 1)[0])
	if d["browser"] != true {
		t.Errorf("session.started %v", d)
	}
}

func TestSignOut(t *testing.T) {
	h := newHarness(t, nil)
	h.get("/page", "Authorization", "", "Cookie", CookieName+"="+testToken)
	resp, _ := h.do(h.req("POST", SignOutPath, nil, "Authorization", "", "Cookie", CookieName+"="+testToken))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e := h.audit.wait(t, "session.ended", 1)[0]
	if d := details(t, e); d["end_reason"] != string(airlock.EndClientTerminated) {
		t.Errorf("ended %v", d)
	}
	if r := h.auth.revokedTokens(); len(r) == 0 || r[0] != testToken {
		t.Errorf("revoked %v", r)
	}
}

// After the session's end a browser is sent back to the console with the
// reason (where it can request access again), not shown an error.
func TestBrowserAfterEnd(t *testing.T) {
	h := newHarness(t, nil)
	nav := []string{"Authorization", "", "Cookie", CookieName + "=" + testToken, "Accept", "text/html", "Sec-Fetch-Mode", "navigate"}
	if resp, _ := h.get("/page", nav...); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.auth.setRefuse(testToken, airlock.Errorf(airlock.EUNAUTHORIZED, "the grant was revoked"))
	h.g.CloseGrant("gra_1", "")
	resp, _ := h.get("/page", nav...)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the end: %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Path != "/apps/open" || loc.Query().Get("reason") != "the grant was revoked" || loc.Query().Get("next") != "/page" {
		t.Errorf("Location %s", loc)
	}
}
