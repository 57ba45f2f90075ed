package api

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// OIDCPollRequest asks for the result of a browser SSO login the CLI
// started with GET /api/v1/oidc/start?cli=POLL.
type OIDCPollRequest struct {
	Poll string `json:"poll"`
}

// OIDCPending answers a callback whose result waits for the CLI's poll.
type OIDCPending struct {
	Pending bool   `json:"pending"`
	Message string `json:"message"`
}

var ssoPage = template.Must(template.New("sso").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Airlock sign-in</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Link}}<p><a href="{{.Link}}">Continue to the console</a></p>{{end}}
</body></html>`))

type ssoPageData struct{ Title, Message, Link string }

func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/html") && !strings.Contains(a, "application/json")
}

func writeSSOPage(w http.ResponseWriter, status int, d ssoPageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	ssoPage.Execute(w, d)
}

// loginOrChallenge writes a completed login, or the mfa_required challenge
// exactly as POST /api/v1/login does.
func (s *Server) loginOrChallenge(w http.ResponseWriter, r *http.Request, res *identity.LoginResult) {
	if res.Challenge != "" {
		s.writeError(w, r, &airlock.Error{Code: airlock.EMFAREQUIRED, Message: "a second factor is required",
			Details: map[string]any{"challenge": res.Challenge, "methods": res.Methods, "action": "login"}})
		return
	}
	writeJSON(w, http.StatusOK, s.loginResponse(res))
}

// routesOIDC registers the single sign-on endpoints.
func (s *Server) routesOIDC() {
	s.mux.HandleFunc("GET "+RouteOIDCStart, func(w http.ResponseWriter, r *http.Request) {
		u, err := s.Identity.BeginOIDC(r.Context(), r.URL.Query().Get("cli"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u, http.StatusFound)
	})
	s.mux.HandleFunc("GET "+RouteOIDCCallback, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		res, err := s.Identity.FinishOIDC(r.Context(), q.Get("state"), q.Get("code"), sourceAddr(r))
		html := wantsHTML(r)
		switch {
		case err != nil && html:
			writeSSOPage(w, HTTPStatus(err), ssoPageData{Title: "Sign-in failed", Message: airlock.ErrorMessage(err)})
		case err != nil:
			s.writeError(w, r, err)
		case res.Pending && html:
			writeSSOPage(w, http.StatusOK, ssoPageData{Title: "Signed in", Message: "You can close this tab and return to your terminal."})
		case res.Pending:
			writeJSON(w, http.StatusOK, OIDCPending{Pending: true, Message: "return to the CLI, which will collect the login"})
		case html && res.Login.Challenge != "":
			writeSSOPage(w, http.StatusUnauthorized, ssoPageData{Title: "Second factor required",
				Message: "Airlock still needs your own second factor: sign in with `airlock login --sso` from a terminal."})
		case html:
			http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: res.Login.Token, Path: "/", HttpOnly: true,
				Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, Expires: res.Login.Session.ExpiresAt})
			writeSSOPage(w, http.StatusOK, ssoPageData{Title: "Signed in", Message: "You are signed in to Airlock.", Link: "/"})
		default:
			s.loginOrChallenge(w, r, res.Login)
		}
	})
	s.mux.HandleFunc("POST "+RouteOIDCPoll, func(w http.ResponseWriter, r *http.Request) {
		var req OIDCPollRequest
		if err := decode(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.Identity.PollOIDC(r.Context(), req.Poll, sourceAddr(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.loginOrChallenge(w, r, res)
	})
}
