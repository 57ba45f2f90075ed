package httpgw

import (
	"github.com/airlockhq/airlock"

	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever SafeNext accepts, sent as the callback's redirect
// on an app host, resolves to that same host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c#d", "//evil.com", "/\\evil.com", "/%2F/evil.com", "/.//evil.com",
		"/a/..//evil.com", "https://evil.com", "/\t/evil.com", "/#//evil", "/?//evil", "/ /evil", "/@evil.com", "/..;/x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/.airlock/callback?code=x")
	f.Fuzz(func(t *testing.T, next string) {
		if !airlock.SafeRedirect(next) {
			return
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatalf("SafeNext accepted unparsable %q: %v", next, err)
		}
		if got := base.ResolveReference(u); got.Host != "app.example" || got.Scheme != "https" {
			t.Fatalf("airlock.SafeRedirect(%q): resolves to %s", next, got)
		}
		// What the callback actually sends (http.Redirect cleans the path).
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest("GET", base.String(), nil), next, http.StatusSeeOther)
		loc := w.Header().Get("Location")
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location %q from %q: %v", loc, next, err)
		}
		if got := base.ResolveReference(lu); got.Host != "app.example" {
			t.Fatalf("airlock.SafeRedirect(%q): Location %q resolves to %s", next, loc, got)
		}
		if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			t.Fatalf("airlock.SafeRedirect(%q): Location %q is scheme-relative", next, loc)
		}
	})
}

// FuzzParseRule: ParseRule never panics, String round-trips, and Allows
// never admits a path outside the rule's prefix.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"GET,HEAD /", "* /api/", "* /api", "get /x", "GET,GET /a/b", "POST /a/../b", "GET //x", " PUT  /x ", "ſ /", "GET /a b"} {
		f.Add(s, "GET", "/api/x")
	}
	f.Fuzz(func(t *testing.T, text, method, p string) {
		r, err := airlock.ParseHTTPRule(text)
		if err != nil {
			return
		}
		r2, err := airlock.ParseHTTPRule(r.String())
		if err != nil || r2.String() != r.String() || r2.Path != r.Path || len(r2.Methods) != len(r.Methods) {
			t.Fatalf("airlock.ParseHTTPRule(%q) = %q; reparsed %q, %v", text, r.String(), r2.String(), err)
		}
		if !airlock.CleanHTTPPath(r.Path) {
			t.Fatalf("airlock.ParseHTTPRule(%q): unclean path %q", text, r.Path)
		}
		if !r.Allows(method, p) {
			return
		}
		if r.Methods != nil && !contains(r.Methods, method) {
			t.Fatalf("%q allows method %q", r.String(), method)
		}
		// p must be the rule's path (with or without its trailing slash)
		// or below it as a whole segment.
		dir := strings.TrimSuffix(r.Path, "/")
		if p != r.Path && p != dir && !strings.HasPrefix(p, dir+"/") {
			t.Fatalf("%q allows %q", r.String(), p)
		}
	})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// FuzzCookies: what stripCookies forwards and hostOnlyCookie passes back
// never carries the gateway's cookie, and never a Domain attribute.
func FuzzCookies(f *testing.F) {
	for _, s := range []string{"a=1; __Host-airlock=alh_x", "__Host-airlock=x; Domain=apps.example", "a=1; Domain=apps.example",
		"a=1; domain =x", " __HOST-AIRLOCK=x", "=__Host-airlock=x", "a=1;;__Host-airlock-state=y", "a=1; Domain\t=x; Path=/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Cookie": {v, v}}
		stripCookies(h)
		r := &http.Request{Header: h}
		for _, c := range r.Cookies() {
			if isOurCookie(c.Name) {
				t.Fatalf("stripCookies(%q) forwarded %q", v, c.Name)
			}
		}
		for _, line := range h.Values("Cookie") {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(part, "=")
				if isOurCookie(strings.TrimSpace(name)) {
					t.Fatalf("stripCookies(%q) forwarded %q", v, part)
				}
			}
		}

		out, ok := hostOnlyCookie(v)
		if !ok {
			return
		}
		parts := strings.Split(out, ";")
		// As a browser reads it (RFC 6265 5.2): name and attribute names
		// trimmed of whitespace.
		name, _, hasEq := strings.Cut(parts[0], "=")
		if isOurCookie(strings.TrimSpace(name)) {
			t.Fatalf("hostOnlyCookie(%q) passed %q", v, out)
		}
		if !hasEq && isOurCookie(strings.TrimSpace(parts[0])) {
			// A nameless cookie whose value looks like a prefixed name.
			t.Fatalf("hostOnlyCookie(%q) passed nameless %q", v, out)
		}
		for _, a := range parts[1:] {
			k, _, _ := strings.Cut(a, "=")
			if strings.EqualFold(strings.Trim(k, " \t"), "domain") {
				t.Fatalf("hostOnlyCookie(%q) = %q keeps Domain", v, out)
			}
		}
		if c, err := http.ParseSetCookie(out); err == nil && (c.Domain != "" || isOurCookie(c.Name)) {
			t.Fatalf("hostOnlyCookie(%q) = %q: %+v", v, out, c)
		}
	})
}
