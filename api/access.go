package api

import (
	"net/http"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
)

// PolicyFiles carries policy source files (name -> YAML).
type PolicyFiles struct {
	Files map[string]string `json:"files"`
	OTP   string            `json:"otp,omitempty"`
}

// RevokeRequest ends a grant early.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ConnectRequest asks for a connect token or SSH certificate.
type ConnectRequest struct {
	Resource  string `json:"resource"`
	Access    string `json:"access,omitempty"`
	OTP       string `json:"otp,omitempty"`
	PublicKey string `json:"public_key,omitempty"` // ssh: authorized_keys line of the ephemeral key
}

func files(in map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(in))
	for k, v := range in {
		out[k] = []byte(v)
	}
	return out
}

func (s *Server) routesAccess() {
	m := s.mux
	a := s.Access
	m.HandleFunc("GET /api/v1/admin/resources", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		rs, err := a.ListResources(r.Context(), p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rs)
	}))
	m.HandleFunc("POST /api/v1/admin/resources", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in access.ResourceInput
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := a.AddResource(r.Context(), p, in)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, access.View(res))
	}))
	m.HandleFunc("DELETE /api/v1/admin/resources/{name}", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: r.URL.Query().Get("otp")}); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := a.RemoveResource(r.Context(), p, r.PathValue("name")); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("name")})
	}))
	m.HandleFunc("POST /api/v1/policy/check", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in PolicyFiles
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, _, err := a.CheckPolicy(r.Context(), p, files(in.Files))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	m.HandleFunc("POST /api/v1/policy", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in PolicyFiles
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := a.ApplyPolicy(r.Context(), p, files(in.Files))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	m.HandleFunc("GET /api/v1/policy", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		info, err := a.ShowPolicy(r.Context(), p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	}))
	m.HandleFunc("GET /api/v1/resources", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		res, err := a.Resources(r.Context(), p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	m.HandleFunc("POST /api/v1/requests", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in access.RequestInput
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := a.Request(r.Context(), p, in)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		st := http.StatusCreated
		if in.DryRun {
			st = http.StatusOK
		}
		writeJSON(w, st, res)
	}))
	m.HandleFunc("GET /api/v1/requests", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		q := r.URL.Query()
		f := access.RequestsFilter{Mine: q.Has("mine"), ToReview: q.Has("to_review"), ReviewNeeded: q.Has("review_needed")}
		res, err := a.ListRequests(r.Context(), p, f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	m.HandleFunc("GET /api/v1/requests/{id}", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		res, err := a.GetRequest(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	for _, dec := range []string{airlock.DecisionApprove, airlock.DecisionDeny} {
		m.HandleFunc("POST /api/v1/requests/{id}/"+dec, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
			var in access.ReviewInput
			if err := decode(r, &in); err != nil {
				s.writeError(w, r, err)
				return
			}
			in.Decision = dec
			res, err := a.Review(r.Context(), p, r.PathValue("id"), in)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, res)
		}))
	}
	m.HandleFunc("GET /api/v1/grants", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		gs, err := a.ListGrants(r.Context(), p, r.URL.Query().Has("all"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, gs)
	}))
	m.HandleFunc("POST /api/v1/grants/{id}/revoke", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in RevokeRequest
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		g, err := a.Revoke(r.Context(), p, r.PathValue("id"), in.Reason)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	}))
	m.HandleFunc("POST /api/v1/grants/{id}/ack", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in struct {
			Comment string `json:"comment,omitempty"`
			OTP     string `json:"otp,omitempty"`
		}
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
			s.writeError(w, r, err)
			return
		}
		g, err := a.Acknowledge(r.Context(), p, r.PathValue("id"), in.Comment)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	}))
	m.HandleFunc("POST /api/v1/break-glass", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in access.RequestInput
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := a.BreakGlass(r.Context(), p, in)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, res)
	}))
	m.HandleFunc("POST /api/v1/connect-tokens", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in ConnectRequest
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		t, err := a.MintConnectToken(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, t)
	}))
	m.HandleFunc("GET /api/v1/sessions", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		ss, err := a.ListSessions(r.Context(), p, r.URL.Query().Has("active"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ss)
	}))
	m.HandleFunc("GET /api/v1/sessions/{id}", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		ss, err := a.Session(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ss)
	}))
	m.HandleFunc("POST /api/v1/sessions/{id}/kill", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in OTPRequest
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := a.KillSession(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
}
