package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// BootstrapRequest creates the first admin.
type BootstrapRequest struct {
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginRequest is the first login step (and, with OTP, the only one).
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	identity.FactorInput
}

// LoginFactorRequest completes a login with a second factor.
type LoginFactorRequest struct {
	Challenge string `json:"challenge"`
	identity.FactorInput
}

// LoginResponse answers a completed login.
type LoginResponse struct {
	Token     string        `json:"token"`
	User      *airlock.User `json:"user"`
	ExpiresAt time.Time     `json:"expires_at"`
	MFAMethod string        `json:"mfa_method,omitempty"`
	// NeedsEnrollment is true when the user has no second factor yet.
	NeedsEnrollment bool `json:"needs_enrollment,omitempty"`
}

// WhoAmI describes the caller.
type WhoAmI struct {
	User       *airlock.User    `json:"user"`
	SessionID  string           `json:"session_id"`
	MFAAt      time.Time        `json:"mfa_at,omitzero"`
	MFAMethod  string           `json:"mfa_method,omitempty"`
	MFAAgeSecs int64            `json:"mfa_age_seconds"`
	ExpiresAt  time.Time        `json:"expires_at"`
	Enrolled   bool             `json:"enrolled"`
	FreshFor   map[string]int64 `json:"fresh_for_seconds"` // action -> seconds of freshness left (0 = stale)
}

// TOTPEnrollResponse is a pending TOTP factor.
type TOTPEnrollResponse struct {
	Factor *airlock.Factor `json:"factor"`
	URI    string          `json:"otpauth_uri"`
	QR     string          `json:"qr"`
}

// WebAuthnBegin is a started WebAuthn ceremony.
type WebAuthnBegin struct {
	Ceremony string          `json:"ceremony"`
	Options  json.RawMessage `json:"options"`
}

// WebAuthnFinish carries the browser's response to a ceremony.
type WebAuthnFinish struct {
	Ceremony string          `json:"ceremony"`
	Name     string          `json:"name,omitempty"`
	Response json.RawMessage `json:"response"`
}

// CreateUserRequest adds a user.
type CreateUserRequest struct {
	Name     string   `json:"name"`
	Password string   `json:"password,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	OTP      string   `json:"otp,omitempty"`
}

// OTPRequest carries an optional inline step-up code.
type OTPRequest struct {
	OTP string `json:"otp,omitempty"`
}

func (s *Server) loginResponse(res *identity.LoginResult) LoginResponse {
	return LoginResponse{Token: res.Token, User: res.User, ExpiresAt: res.Session.ExpiresAt, MFAMethod: res.Session.MFAMethod,
		NeedsEnrollment: res.Session.MFAAt.IsZero()}
}

func (s *Server) routesIdentity() {
	m := s.mux
	m.HandleFunc("POST "+RouteBootstrap, func(w http.ResponseWriter, r *http.Request) {
		serve(s, w, r, http.StatusCreated, func(req BootstrapRequest) (*airlock.User, error) {
			return s.Identity.Bootstrap(r.Context(), req.Token, req.User, req.Password, sourceAddr(r))
		})
	})
	m.HandleFunc("POST "+RouteLogin, func(w http.ResponseWriter, r *http.Request) {
		var req LoginRequest
		if err := decode(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.Identity.Login(r.Context(), req.User, req.Password, req.FactorInput, sourceAddr(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if res.Challenge != "" {
			s.writeError(w, r, &airlock.Error{Code: airlock.EMFAREQUIRED, Message: "a second factor is required",
				Details: map[string]any{"challenge": res.Challenge, "methods": res.Methods, "action": "login"}})
			return
		}
		writeJSON(w, http.StatusOK, s.loginResponse(res))
	})
	m.HandleFunc("POST "+RouteLoginFactor, func(w http.ResponseWriter, r *http.Request) {
		serve(s, w, r, http.StatusOK, func(req LoginFactorRequest) (*LoginResponse, error) {
			res, err := s.Identity.LoginFactor(r.Context(), req.Challenge, req.FactorInput, sourceAddr(r))
			if err != nil {
				return nil, err
			}
			out := s.loginResponse(res)
			return &out, nil
		})
	})
	m.HandleFunc("POST "+RouteLoginWebAuthnBegin, func(w http.ResponseWriter, r *http.Request) {
		serve(s, w, r, http.StatusOK, func(req struct {
			Challenge string `json:"challenge"`
		}) (*WebAuthnBegin, error) {
			return webAuthnBegin(s.Identity.BeginWebAuthnLogin(r.Context(), req.Challenge))
		})
	})
	m.HandleFunc("POST "+RouteLogout, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(map[string]string{"status": "logged out"}, s.Identity.Logout(r.Context(), p))
	}))
	m.HandleFunc("GET "+RouteWhoAmI, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		writeJSON(w, http.StatusOK, s.whoami(p))
	}))
	m.HandleFunc("POST "+RouteMFAVerify, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(in identity.FactorInput) (*WhoAmI, error) {
			if _, err := s.Identity.VerifyMFA(r.Context(), p, in); err != nil {
				return nil, err
			}
			who := s.whoami(p)
			return &who, nil
		})
	}))
	m.HandleFunc("POST "+RouteMFAWebAuthnVerifyBegin, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(webAuthnBegin(s.Identity.BeginWebAuthnStepUp(r.Context(), p)))
	}))
	m.HandleFunc("GET "+RouteMFAFactors, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		fs, err := s.Identity.ListFactors(r.Context(), p)
		if fs == nil {
			fs = []*airlock.Factor{}
		}
		s.respond(w, r, http.StatusOK)(fs, err)
	}))
	m.HandleFunc("POST "+RouteMFATOTP, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(req struct {
			Name string `json:"name"`
			OTP  string `json:"otp,omitempty"`
		}) (*TOTPEnrollResponse, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: req.OTP}); err != nil {
				return nil, err
			}
			f, uri, qr, err := s.Identity.EnrollTOTP(r.Context(), p, req.Name)
			if err != nil {
				return nil, err
			}
			return &TOTPEnrollResponse{Factor: f, URI: uri, QR: qr}, nil
		})
	}))
	m.HandleFunc("POST "+RouteMFAFactorConfirm, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(req OTPRequest) (map[string]string, error) {
			return map[string]string{"status": "active", "id": r.PathValue("id")}, s.Identity.ConfirmTOTP(r.Context(), p, r.PathValue("id"), req.OTP)
		})
	}))
	m.HandleFunc("DELETE "+RouteMFAFactor, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: r.URL.Query().Get("otp")}); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.respond(w, r, http.StatusOK)(map[string]string{"status": "removed", "id": r.PathValue("id")}, s.Identity.RemoveFactor(r.Context(), p, r.PathValue("id")))
	}))
	m.HandleFunc("POST "+RouteMFARecoveryCodes, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(req OTPRequest) (map[string]any, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: req.OTP}); err != nil {
				return nil, err
			}
			codes, err := s.Identity.RecoveryCodes(r.Context(), p)
			return map[string]any{"codes": codes}, err
		})
	}))
	m.HandleFunc("POST "+RouteMFAWebAuthnRegisterBegin, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusOK, func(req struct {
			Name string `json:"name"`
		}) (*WebAuthnBegin, error) {
			return webAuthnBegin(s.Identity.BeginWebAuthnRegistration(r.Context(), p, req.Name))
		})
	}))
	m.HandleFunc("POST "+RouteMFAWebAuthnRegisterFinish, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(req WebAuthnFinish) (*airlock.Factor, error) {
			return s.Identity.FinishWebAuthnRegistration(r.Context(), p, req.Ceremony, req.Response)
		})
	}))

	// Admin: users and groups.
	m.HandleFunc("GET "+RouteAdminUsers, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(s.Identity.ListUsers(r.Context(), p))
	}))
	m.HandleFunc("POST "+RouteAdminUsers, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(req CreateUserRequest) (*airlock.User, error) {
			if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: req.OTP}); err != nil {
				return nil, err
			}
			return s.Identity.CreateUser(r.Context(), p, req.Name, req.Password, req.Groups)
		})
	}))
	for _, op := range []string{"disable", "enable"} {
		disabled := op == "disable"
		m.HandleFunc("POST "+RouteAdminUser+"/"+op, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
			serve(s, w, r, http.StatusOK, func(req OTPRequest) (map[string]any, error) {
				if err := s.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: req.OTP}); err != nil {
					return nil, err
				}
				return map[string]any{"user": r.PathValue("name"), "disabled": disabled}, s.Identity.SetDisabled(r.Context(), p, r.PathValue("name"), disabled)
			})
		}))
	}
	m.HandleFunc("GET "+RouteAdminGroups, s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		s.respond(w, r, http.StatusOK)(s.Identity.ListGroups(r.Context(), p))
	}))
}

// webAuthnBegin is a started ceremony as the API answers it.
func webAuthnBegin(ceremony string, options []byte, err error) (*WebAuthnBegin, error) {
	if err != nil {
		return nil, err
	}
	return &WebAuthnBegin{Ceremony: ceremony, Options: options}, nil
}

func (s *Server) whoami(p *identity.Principal) WhoAmI {
	now := s.Now()
	out := WhoAmI{User: p.User, SessionID: p.Session.ID, MFAAt: p.Session.MFAAt, MFAMethod: p.Session.MFAMethod,
		ExpiresAt: p.Session.ExpiresAt, Enrolled: !p.Session.MFAAt.IsZero(), FreshFor: map[string]int64{}}
	if out.Enrolled {
		out.MFAAgeSecs = int64(now.Sub(p.Session.MFAAt).Seconds())
	}
	for _, a := range []string{identity.ActionApprove, identity.ActionConnect, identity.ActionFactors, identity.ActionAdmin} {
		left := int64(0)
		if out.Enrolled {
			left = int64((s.Identity.Freshness(a) - now.Sub(p.Session.MFAAt)).Seconds())
		}
		if left < 0 {
			left = 0
		}
		out.FreshFor[a] = left
	}
	return out
}
