package httpgw

import (
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/secrets"
)

// appsDoor serves web apps, each at its own host under the apps domain,
// to browsers (app cookie, console sign-in) and API clients (bearer
// token), checked against the access level's HTTP rules.
type appsDoor struct{ g *Gateway }

func (appsDoor) Kind() string                        { return airlock.KindHTTP }
func (appsDoor) Actions() (request, response string) { return "http.request", "http.response" }

// Route routes by host; the gateway's own paths, unclean paths and h2c
// upgrades are answered here.
func (d appsDoor) Route(w http.ResponseWriter, r *http.Request) *App {
	g := d.g
	host := hostOnly(r.Host)
	app, err := g.app(r.Context(), host)
	if err != nil {
		writeError(w, r, http.StatusNotFound, "airlock: no app is served at "+host)
		return nil
	}
	if strings.HasPrefix(r.URL.Path, ReservedPrefix) {
		g.reserved(w, r, app)
		return nil
	}
	if !airlock.CleanHTTPPath(r.URL.Path) {
		writeError(w, r, http.StatusBadRequest, "airlock: the request path must be clean (no //, . or .. segments, no backslash)")
		return nil
	}
	if UpgradesTo(r.Header, "h2c") {
		// An HTTP/2 tunnel to the app: its requests would bypass the
		// rules and the audit (h2c smuggling).
		writeError(w, r, http.StatusBadRequest, "airlock: h2c upgrades are not forwarded")
		return nil
	}
	return app
}

// Token is the app cookie, or a bearer token with Airlock's prefix.
func (appsDoor) Token(r *http.Request) (secrets.Secret, bool) { return requestToken(r) }

// Inspect applies the access level's HTTP rules.
func (appsDoor) Inspect(r *http.Request, t *Target) (any, *Refusal) {
	if !airlock.HTTPAllowed(t.Rules, r.Method, r.URL.Path) {
		return nil, &Refusal{Status: http.StatusForbidden, Denied: "access_level",
			Message: "airlock: " + t.Access + " access to " + t.Resource + " does not allow " + r.Method + " " + r.URL.Path}
	}
	return nil, nil
}

// Rewrite sets X-Forwarded-* and removes Airlock's cookies and any
// Forwarded header the client sent.
func (appsDoor) Rewrite(pr *httputil.ProxyRequest, _ *Target) {
	pr.SetXForwarded()
	stripCookies(pr.Out.Header)
	pr.Out.Header.Del("Forwarded")
}

// ModifyResponse keeps the app's cookies on its own host (no Domain: a
// cookie for the apps domain would reach every sibling app), drops any
// cookie in the gateway's name, and points redirects to the upstream's own
// address back at the app's public host.
func (d appsDoor) ModifyResponse(resp *http.Response, t *Target) error {
	h := resp.Header
	if cs := h.Values("Set-Cookie"); len(cs) > 0 {
		h.Del("Set-Cookie")
		for _, c := range cs {
			if c2, ok := hostOnlyCookie(c); ok {
				h.Add("Set-Cookie", c2)
			}
		}
	}
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", d.g.publicLocation(loc, t, resp.Request))
	}
	return nil
}

func (d appsDoor) Unauthenticated(w http.ResponseWriter, r *http.Request, app *App, reason string) {
	d.g.unauthenticated(w, r, app, reason)
}

func (appsDoor) Error(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeError(w, r, status, msg)
}
