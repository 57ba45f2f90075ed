package web

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/identity"
)

//go:embed static templates
var content embed.FS

// Config wires the pages to the services.
type Config struct {
	API       *api.Server
	Identity  *identity.Service
	Access    *access.Service
	PublicURL string
	Logger    *slog.Logger
}

var pages = template.Must(template.ParseFS(content, "templates/*.html"))

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

// Handler returns the pages' handler, mounted at "/".
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(content, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	render := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := pages.ExecuteTemplate(w, name, map[string]any{"PublicURL": cfg.PublicURL}); err != nil && cfg.Logger != nil {
				cfg.Logger.Error("render", "page", name, "err", err)
			}
		}
	}
	mux.HandleFunc("GET /{$}", render("index.html"))
	mux.HandleFunc("GET /webauthn", render("webauthn.html"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}
