package web

import (
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/identity"
)

//go:embed static templates
var content embed.FS

// Config wires the pages to the services.
type Config struct {
	API      *api.Server
	Identity *identity.Service
	Access   *access.Service
	// Push delivers push challenges to registered browsers (nil: push disabled).
	Push      *identity.Push
	PublicURL string
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cookie names. The session cookie is the API's, so the console's small
// scripts can call the JSON API with it.
const (
	sessionCookie   = api.SessionCookie
	challengeCookie = "airlock_login"  // login challenge between password and factor
	deviceCookie    = "airlock_device" // push device token
)

var funcs = template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur": func(d time.Duration) string {
		return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
	},
	"join": strings.Join,
	"inc":  func(i int) int { return i + 1 },
	"list": func(s ...string) []string { return s },
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"details": func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return ""
		}
		return string(raw)
	},
}

// pages maps a page file to its template set (layout + page). The
// templates are parsed on first use (Handler asks at once), not at
// package init: every CLI command links this package, and parsing them
// cost each one about 1.5 ms of start-up (kubectl's exec plugin runs on
// every kubectl call).
var pages = sync.OnceValue(func() map[string]*template.Template {
	out := map[string]*template.Template{}
	names, err := fs.Glob(content, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		out[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(content, "templates/layout.html", n))
	}
	return out
})

// securityHeaders sets the headers every page carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// console holds the handlers' shared state.
type console struct {
	cfg    Config
	secure bool
}

// Handler returns the console's handler, mounted at "/". Every
// state-changing request passes http.CrossOriginProtection (CSRF).
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages() // a template that does not parse stops the server at its start, not at a first page
	c := &console{cfg: cfg, secure: strings.HasPrefix(cfg.PublicURL, "https://")}
	mux := http.NewServeMux()
	static, _ := fs.Sub(content, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	c.routes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { c.renderStatus(w, r, http.StatusNotFound, "Not found") })
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	User   *airlock.User
	Admin  bool
	Device bool // this browser is a push device
	Flash  string
	Error  string
	Data   any
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := pages()[name]
	if t == nil {
		c.cfg.Logger.Error("render: no template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p.Flash == "" {
		p.Flash = flashes[r.URL.Query().Get("done")]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", p); err != nil {
		c.cfg.Logger.Error("render", "page", name, "err", err)
	}
}

func (c *console) renderStatus(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "status.html", page{Title: msg, Error: msg})
}

// flashes are the messages a redirect may ask for with ?done=…
var flashes = map[string]string{
	"approved":  "Approved.",
	"denied":    "Denied.",
	"revoked":   "Grant revoked.",
	"requested": "Request submitted.",
	"acked":     "Break-glass grant acknowledged.",
	"killed":    "Session ended.",
	"verified":  "Second factor verified.",
	"confirmed": "Authenticator confirmed.",
	"passkey":   "Passkey registered.",
	"removed":   "Factor removed.",
	"device":    "This browser now receives push requests.",
	"weblogin":  "The command line is signed in. You can return to your terminal.",

	"user-added":       "User added.",
	"user-disabled":    "User disabled; their sessions and grants ended.",
	"user-enabled":     "User enabled.",
	"resource-added":   "Resource added; its credentials are sealed and will not be shown again.",
	"resource-removed": "Resource removed.",
	"policy-applied":   "Policy applied.",
}

func (c *console) setCookie(w http.ResponseWriter, name, value, path string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: c.secure, SameSite: sameSite})
}

func (c *console) clearCookie(w http.ResponseWriter, name, path string) {
	c.setCookie(w, name, "", path, -1, http.SameSiteLaxMode)
}

func cookie(r *http.Request, name string) string {
	if ck, err := r.Cookie(name); err == nil {
		return ck.Value
	}
	return ""
}

// safeNext returns next when it is a local path, else "/".
func safeNext(next string) string {
	if !airlock.SafeRedirect(next) {
		return "/"
	}
	return next
}

// principal authenticates the session cookie.
func (c *console) principal(r *http.Request) (*identity.Principal, error) {
	return c.cfg.Identity.Authenticate(r.Context(), cookie(r, sessionCookie), r.RemoteAddr)
}

type handler func(w http.ResponseWriter, r *http.Request, p *identity.Principal)

// signedIn wraps h: without a valid session a page load redirects to
// sign-in (returning here afterwards) and anything else gets 401.
// Sessions without a second factor may only reach the factors pages.
func (c *console) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := c.principal(r)
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.renderStatus(w, r, http.StatusUnauthorized, "Your session ended: sign in again.")
			return
		}
		if c.cfg.Identity.RequireEnrolled(p) != nil && !strings.HasPrefix(r.URL.Path, "/factors") {
			http.Redirect(w, r, "/factors", http.StatusSeeOther)
			return
		}
		h(w, r, p)
	}
}

// base fills the layout fields for p.
func (c *console) base(r *http.Request, p *identity.Principal, title, nav string) page {
	pg := page{Title: title, Nav: nav, User: p.User, Admin: p.User.IsAdmin()}
	if c.cfg.Push != nil {
		if _, err := c.cfg.Push.Device(r.Context(), p, cookie(r, deviceCookie)); err == nil {
			pg.Device = true
		}
	}
	return pg
}

// errMessage is the user-safe text of err.
func (c *console) errMessage(r *http.Request, err error) string {
	code := airlock.ErrorCode(err)
	if code == airlock.EINTERNAL || code == airlock.EUNAVAILABLE {
		c.cfg.Logger.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return airlock.ErrorMessage(err)
}

// writeJSON answers the console's scripts.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (c *console) jsonError(w http.ResponseWriter, r *http.Request, err error) {
	api.SetRetryAfter(w, err)
	writeJSON(w, api.HTTPStatus(err), map[string]any{"error": map[string]string{"code": airlock.ErrorCode(err), "message": c.errMessage(r, err)}})
}

// decodeJSON reads a small JSON body.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return airlock.Errorf(airlock.EINVALID, "malformed request")
	}
	return nil
}
