package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

func newTestHandler(publicURL string) http.Handler {
	return Handler(Config{Identity: identity.New(identity.Deps{}, identity.Config{}), PublicURL: publicURL})
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "/",
		"/requests/req_1":        "/requests/req_1",
		"/device?code=ABCD-EFGH": "/device?code=ABCD-EFGH",
		"//evil.example/x":       "/",
		"/\\evil.example":        "/",
		"https://evil.example/":  "/",
		"javascript:alert(1)":    "/",
		"requests":               "/",
		"/ok\r\nSet-Cookie: x=1": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	f.Add("/requests/req_1")
	f.Add("//evil.example")
	f.Fuzz(func(t *testing.T, s string) {
		got := safeNext(s)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeNext(%q) = %q is not a local path", s, got)
		}
	})
}

func TestSignedOutRedirectsToSignIn(t *testing.T) {
	h := newTestHandler("http://localhost:8080")
	for _, path := range []string{"/", "/requests/req_abc", "/audit?user=bob"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/signin?next="+url.QueryEscape(path) {
			t.Errorf("GET %s: %d → %q", path, rec.Code, rec.Header().Get("Location"))
		}
	}
	// A state-changing request without a session is refused, not redirected.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/grants/gr_x/revoke", strings.NewReader("reason=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", rec.Code)
	}
}

func TestSecurityHeadersAndCSRF(t *testing.T) {
	h := newTestHandler("http://localhost:8080")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="signin-form"`) {
		t.Fatalf("sign-in page: %d", rec.Code)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers: %v", rec.Header())
	}
	// No inline script or style anywhere in the page.
	if body := rec.Body.String(); strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "onclick") {
		t.Fatalf("inline script or style in the page")
	}
	for _, hdr := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/signin", strings.NewReader("user=a&password=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("cross-origin POST with %v: %d, want 403", hdr, rec.Code)
		}
	}
}

func TestCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		url    string
		secure bool
	}{{"https://airlock.example.com", true}, {"http://localhost:8080", false}} {
		c := &console{secure: strings.HasPrefix(tc.url, "https://")}
		rec := httptest.NewRecorder()
		c.setCookie(rec, sessionCookie, "al_x", "/", 60, http.SameSiteLaxMode)
		ck := rec.Result().Cookies()[0]
		if !ck.HttpOnly || ck.Secure != tc.secure || ck.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: cookie %+v", tc.url, ck)
		}
	}
}

func TestTemplatesParse(t *testing.T) {
	for _, name := range []string{"signin.html", "factor.html", "home.html", "factors.html", "request.html", "my.html", "approvals.html",
		"request_detail.html", "sessions.html", "session.html", "audit.html", "device.html", "status.html",
		"admin_users.html", "admin_resources.html", "admin_policy.html"} {
		if pages()[name] == nil {
			t.Errorf("no template %s", name)
		}
	}
}

// TestJSONErrorRetryAfter: the console's scripts get the API's status for
// a code, and a throttled attempt says when to retry, like the API.
func TestJSONErrorRetryAfter(t *testing.T) {
	c := &console{}
	rec := httptest.NewRecorder()
	c.jsonError(rec, httptest.NewRequest("POST", "/signin/webauthn", nil),
		&airlock.Error{Code: airlock.ELOCKED, Message: "too many failed attempts", Details: map[string]any{"retry_after_seconds": 7}})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "7" {
		t.Fatalf("status %d, Retry-After %q; want 429 and 7", rec.Code, rec.Header().Get("Retry-After"))
	}
	rec = httptest.NewRecorder()
	c.jsonError(rec, httptest.NewRequest("GET", "/", nil), airlock.Errorf(airlock.ENOTIMPL, "not here"))
	if rec.Code != http.StatusNotImplemented || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("ENOTIMPL: status %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}
