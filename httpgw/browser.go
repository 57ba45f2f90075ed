package httpgw

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/secrets"
)

// StateHash is what the console binds a sign-in code to: the unpadded
// base64url SHA-256 of the state cookie's value.
func StateHash(state string) string {
	h := sha256.Sum256([]byte(state))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// unauthenticated answers a request without a usable app session. A
// browser navigating is sent to the console to sign in (and, if it has no
// grant, to ask for one); an API client gets 401 with the reason.
func (g *Gateway) unauthenticated(w http.ResponseWriter, r *http.Request, app *App, reason string) {
	if !isNavigation(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="airlock"`)
		msg := "airlock: sign in first: `airlock proxy http " + app.Resource + "` attaches a token for you"
		if reason != "" {
			msg = "airlock: " + strings.TrimPrefix(reason, "airlock: ")
		}
		writeError(w, r, http.StatusUnauthorized, msg)
		return
	}
	state := randomState()
	http.SetCookie(w, &http.Cookie{Name: StateCookieName, Value: state, Path: "/", MaxAge: int(DefaultStateTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	next := r.URL.RequestURI()
	if !airlock.SafeRedirect(next) {
		next = "/"
	}
	q := url.Values{"app": {app.Resource}, "state": {StateHash(state)}, "next": {next}}
	if reason != "" {
		q.Set("reason", reason)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.cfg.ConsoleURL+"/apps/open?"+q.Encode(), http.StatusSeeOther)
}

// isNavigation reports whether r looks like a browser loading a page.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("Authorization") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func randomState() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// reserved answers the gateway's own paths on an app host.
func (g *Gateway) reserved(w http.ResponseWriter, r *http.Request, app *App) {
	switch r.URL.Path {
	case CallbackPath:
		g.callback(w, r, app)
	case SignOutPath:
		g.signOut(w, r, app)
	default:
		writeError(w, r, http.StatusNotFound, "airlock: not found")
	}
}

// callback exchanges the console's single-use code, bound to this
// browser's state cookie, for an app session cookie. A fresh token is
// minted every time, whatever cookie the browser held (no fixation).
func (g *Gateway) callback(w http.ResponseWriter, r *http.Request, app *App) {
	if r.Method != http.MethodGet {
		writeError(w, r, http.StatusMethodNotAllowed, "airlock: method not allowed")
		return
	}
	code := r.URL.Query().Get("code")
	st, err := r.Cookie(StateCookieName)
	if code == "" || err != nil || st.Value == "" {
		g.page(w, http.StatusBadRequest, "This sign-in did not start in this browser",
			"Open the app again to sign in.", "/")
		return
	}
	tok, t, next, err := g.cfg.Auth.Redeem(r.Context(), RedeemRequest{App: app, Code: secrets.Secret(code), State: secrets.Secret(st.Value), SourceAddr: r.RemoteAddr})
	clearState := &http.Cookie{Name: StateCookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	http.SetCookie(w, clearState)
	if err != nil {
		msg := airlock.ErrorMessage(err)
		g.page(w, http.StatusForbidden, "Sign-in refused", msg, "/")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok.Reveal(), Path: "/", Expires: t.TokenExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if !airlock.SafeRedirect(next) {
		next = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut revokes the browser's app token and ends its session here.
func (g *Gateway) signOut(w http.ResponseWriter, r *http.Request, app *App) {
	if r.Method != http.MethodPost {
		g.page(w, http.StatusOK, "Sign out of "+app.Resource+"?", "", "")
		return
	}
	if c, err := r.Cookie(CookieName); err == nil && strings.HasPrefix(c.Value, TokenPrefix) {
		tok := secrets.Secret(c.Value)
		g.mu.Lock()
		s := g.sessions[tokenKey(tok)]
		g.mu.Unlock()
		if s != nil && s.isOpen() {
			s.end(airlock.EndClientTerminated)
		}
		if err := g.cfg.Auth.Revoke(r.Context(), tok); err != nil {
			g.log.Error("revoke on sign-out", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	g.page(w, http.StatusOK, "Signed out of "+app.Resource, "", "")
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} — Airlock</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}a,button{color:#0b5fff}</style>
</head><body><h1>{{.Title}}</h1>{{if .Text}}<p>{{.Text}}</p>{{end}}
{{if .Link}}<p><a href="{{.Link}}">Open the app</a></p>{{end}}
{{if .SignOut}}<form method="post"><button type="submit">Sign out</button></form>{{end}}
</body></html>`))

// page answers with a small HTML page of the gateway's own.
func (g *Gateway) page(w http.ResponseWriter, status int, title, text, link string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	pageTmpl.Execute(w, map[string]any{"Title": title, "Text": text, "Link": link, "SignOut": strings.HasPrefix(title, "Sign out of")})
}
