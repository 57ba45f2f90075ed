package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// WebLoginStart answers POST /api/v1/login/web/start: the CLI shows URL
// and UserCode and keeps PollToken (a secret never put in a URL).
type WebLoginStart struct {
	URL             string    `json:"url"`
	UserCode        string    `json:"user_code"`
	PollToken       string    `json:"poll_token"`
	ExpiresAt       time.Time `json:"expires_at"`
	IntervalSeconds int       `json:"interval_seconds"`
}

// WebLoginPoll is the body of POST /api/v1/login/web/poll.
type WebLoginPoll struct {
	PollToken string `json:"poll_token"`
}

// PushBegin answers a started push: the requesting screen shows Number.
type PushBegin struct {
	ID        string    `json:"id"`
	Number    int       `json:"number"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PushHandler serves the browser-login endpoints for the CLI
// (/api/v1/login/web/…) and push step-up (/api/v1/push/…). Mount it on
// those prefixes next to Handler. publicURL is the console's base URL;
// push may be nil (push disabled).
func (s *Server) PushHandler(publicURL string, push *identity.Push) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST "+RouteWebLoginStart, func(w http.ResponseWriter, r *http.Request) {
		code, tok, exp, err := s.Identity.StartWebLogin(r.Context(), sourceAddr(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, WebLoginStart{URL: strings.TrimRight(publicURL, "/") + "/device?code=" + code, UserCode: code,
			PollToken: tok, ExpiresAt: exp, IntervalSeconds: 2})
	})
	m.HandleFunc("POST "+RouteWebLoginPoll, func(w http.ResponseWriter, r *http.Request) {
		var in WebLoginPoll
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.Identity.PollWebLogin(r.Context(), in.PollToken, sourceAddr(r))
		if errors.Is(err, identity.ErrWebLoginPending) {
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending"})
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.loginResponse(res))
	})
	m.HandleFunc("POST "+RoutePushVerifyBegin, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if push == nil {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
			return
		}
		ch, err := push.BeginStepUp(r.Context(), p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, PushBegin{ID: ch.ID, Number: ch.Number, ExpiresAt: ch.ExpiresAt})
	}))
	m.HandleFunc("POST "+RoutePushVerify, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if push == nil {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
			return
		}
		st, err := push.StepUpStatus(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if st == identity.PushApproved {
			if err := push.VerifyPush(r.Context(), p, r.PathValue("id")); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"state": st})
	}))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return m
}
