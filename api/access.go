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
	m.HandleFunc("GET "+RouteAdminResources, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.ListResources(r.Context(), p))
	}))
	m.HandleFunc("POST "+RouteAdminResources, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in access.ResourceInput) (any, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, in.StepUp); err != nil {
				return nil, err
			}
			res, err := a.AddResource(r.Context(), p, in)
			if err != nil {
				return nil, err
			}
			return access.View(res), nil
		})
	}))
	m.HandleFunc("GET "+RouteResourceCheck, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.CheckResource(r.Context(), p, r.PathValue("name")))
	}))
	m.HandleFunc("POST "+RouteResourceRotate, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in OTPRequest) (map[string]string, error) {
			name := r.PathValue("name")
			return map[string]string{"rotated": name}, a.RotateProvisioner(r.Context(), p, name, identity.StepUp{OTP: in.OTP})
		})
	}))
	m.HandleFunc("DELETE "+RouteAdminResource, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: r.URL.Query().Get("otp")}); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.respond(w, r, http.StatusOK)(map[string]string{"removed": r.PathValue("name")}, a.RemoveResource(r.Context(), p, r.PathValue("name")))
	}))
	m.HandleFunc("POST "+RoutePolicyCheck, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in PolicyFiles) (*access.CheckResult, error) {
			res, _, err := a.CheckPolicy(r.Context(), p, files(in.Files))
			return res, err
		})
	}))
	m.HandleFunc("POST "+RoutePolicy, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in PolicyFiles) (*access.CheckResult, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
				return nil, err
			}
			return a.ApplyPolicy(r.Context(), p, files(in.Files))
		})
	}))
	m.HandleFunc("GET "+RoutePolicy, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.ShowPolicy(r.Context(), p))
	}))
	m.HandleFunc("GET "+RouteResources, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.Resources(r.Context(), p))
	}))
	m.HandleFunc("POST "+RouteRequests, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		var in access.RequestInput
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		st := http.StatusCreated
		if in.DryRun {
			st = http.StatusOK
		}
		s.respond(w, r, st)(a.Request(r.Context(), p, in))
	}))
	m.HandleFunc("GET "+RouteRequests, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		q := r.URL.Query()
		f := access.RequestsFilter{Mine: q.Has("mine"), ToReview: q.Has("to_review"), ReviewNeeded: q.Has("review_needed")}
		s.respond(w, r, http.StatusOK)(a.ListRequests(r.Context(), p, f))
	}))
	m.HandleFunc("GET "+RouteRequest, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.GetRequest(r.Context(), p, r.PathValue("id")))
	}))
	for _, dec := range []string{airlock.DecisionApprove, airlock.DecisionDeny} {
		m.HandleFunc("POST "+RouteRequest+"/"+dec, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
			serve(s, w, r, http.StatusOK, func(in access.ReviewInput) (*access.RequestResult, error) {
				in.Decision = dec
				return a.Review(r.Context(), p, r.PathValue("id"), in)
			})
		}))
	}
	m.HandleFunc("GET "+RouteStatements, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.ListHolds(r.Context(), p))
	}))
	m.HandleFunc("GET "+RouteStatement, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.GetHold(r.Context(), p, r.PathValue("id")))
	}))
	for _, dec := range []string{airlock.DecisionApprove, airlock.DecisionDeny} {
		m.HandleFunc("POST "+RouteStatement+"/"+dec, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
			serve(s, w, r, http.StatusOK, func(in access.ReviewInput) (*access.StatementHold, error) {
				in.Decision = dec
				return a.DecideHold(r.Context(), p, r.PathValue("id"), in)
			})
		}))
	}
	m.HandleFunc("GET "+RouteGrants, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.ListGrants(r.Context(), p, r.URL.Query().Has("all")))
	}))
	m.HandleFunc("POST "+RouteGrantRevoke, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in RevokeRequest) (*airlock.Grant, error) {
			return a.Revoke(r.Context(), p, r.PathValue("id"), in.Reason)
		})
	}))
	m.HandleFunc("POST "+RouteGrantAck, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in struct {
			Comment string `json:"comment,omitempty"`
			OTP     string `json:"otp,omitempty"`
		}) (*airlock.Grant, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
				return nil, err
			}
			return a.Acknowledge(r.Context(), p, r.PathValue("id"), in.Comment)
		})
	}))
	m.HandleFunc("POST "+RouteBreakGlass, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in access.RequestInput) (*access.RequestResult, error) {
			return a.BreakGlass(r.Context(), p, in)
		})
	}))
	m.HandleFunc("POST "+RouteConnectTokens, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in ConnectRequest) (*access.ConnectToken, error) {
			return a.MintConnectToken(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP})
		})
	}))
	m.HandleFunc("POST "+RouteDBCredentials, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in ConnectRequest) (*access.DirectCredential, error) {
			return a.DeliverDBCredential(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP})
		})
	}))
	m.HandleFunc("GET "+RouteSessions, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.ListSessions(r.Context(), p, r.URL.Query().Has("active")))
	}))
	m.HandleFunc("GET "+RouteSession, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(a.Session(r.Context(), p, r.PathValue("id")))
	}))
	m.HandleFunc("POST "+RouteSessionKill, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in OTPRequest) (*access.KillResult, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: in.OTP}); err != nil {
				return nil, err
			}
			return a.KillSession(r.Context(), p, r.PathValue("id"))
		})
	}))
}
