package web

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

func (c *console) routes(m *http.ServeMux) {
	m.HandleFunc("GET /signin", c.signinPage)
	m.HandleFunc("POST /signin", c.signinPassword)
	m.HandleFunc("POST /signin/otp", c.signinOTP)
	m.HandleFunc("POST /signin/webauthn/begin", c.signinWebAuthnBegin)
	m.HandleFunc("POST /signin/webauthn/finish", c.signinWebAuthnFinish)
	m.HandleFunc("POST /signin/push/begin", c.signinPushBegin)
	m.HandleFunc("POST /signin/push/{id}", c.signinPushPoll)
	m.HandleFunc("POST /signout", c.signout)

	m.HandleFunc("GET /{$}", c.signedIn(c.home))
	m.HandleFunc("GET /factors", c.signedIn(c.factors))
	m.HandleFunc("POST /factors/totp", c.signedIn(c.factorTOTP))
	m.HandleFunc("POST /factors/totp/{id}/confirm", c.signedIn(c.factorTOTPConfirm))
	m.HandleFunc("POST /factors/recovery", c.signedIn(c.factorRecovery))
	m.HandleFunc("POST /factors/push", c.signedIn(c.factorPush))
	m.HandleFunc("POST /factors/{id}/remove", c.signedIn(c.factorRemove))
	m.HandleFunc("POST /mfa/verify", c.signedIn(c.mfaVerify))
	m.HandleFunc("POST /mfa/webauthn/begin", c.signedIn(c.stepUpWebAuthnBegin))
	m.HandleFunc("POST /mfa/webauthn/finish", c.signedIn(c.stepUpWebAuthnFinish))
	m.HandleFunc("POST /mfa/push/begin", c.signedIn(c.stepUpPushBegin))
	m.HandleFunc("POST /mfa/push/{id}", c.signedIn(c.stepUpPushPoll))

	m.HandleFunc("GET /apps/open", c.signedIn(c.appOpen))
	m.HandleFunc("GET /request", c.signedIn(c.requestPage))
	m.HandleFunc("POST /request", c.signedIn(c.requestSubmit))
	m.HandleFunc("GET /my", c.signedIn(c.myPage))
	m.HandleFunc("POST /grants/{id}/revoke", c.signedIn(c.grantRevoke))
	m.HandleFunc("POST /grants/{id}/ack", c.signedIn(c.grantAck))
	m.HandleFunc("GET /approvals", c.signedIn(c.approvals))
	m.HandleFunc("GET /requests/{id}", c.signedIn(c.requestDetail))
	m.HandleFunc("POST /requests/{id}/{decision}", c.signedIn(c.review))
	m.HandleFunc("POST /statements/{id}/{decision}", c.signedIn(c.statementDecide))
	m.HandleFunc("GET /sessions", c.signedIn(c.sessions))
	m.HandleFunc("GET /sessions/{id}", c.signedIn(c.sessionDetail))
	m.HandleFunc("POST /sessions/{id}/kill", c.signedIn(c.sessionKill))
	m.HandleFunc("GET /audit", c.signedIn(c.auditPage))

	m.HandleFunc("GET /admin", c.adminOnly(func(w http.ResponseWriter, r *http.Request, _ *identity.Principal) {
		http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
	}))
	m.HandleFunc("GET /admin/users", c.adminOnly(c.adminUsers))
	m.HandleFunc("POST /admin/users", c.adminOnly(c.adminUserAdd))
	m.HandleFunc("POST /admin/users/{name}/{op}", c.adminOnly(c.adminUserSetDisabled))
	m.HandleFunc("GET /admin/resources", c.adminOnly(c.adminResources))
	m.HandleFunc("POST /admin/resources", c.adminOnly(c.adminResourceAdd))
	m.HandleFunc("POST /admin/resources/{name}/remove", c.adminOnly(c.adminResourceRemove))
	m.HandleFunc("GET /admin/policy", c.adminOnly(c.adminPolicy))
	m.HandleFunc("POST /admin/policy", c.adminOnly(c.adminPolicySubmit))

	m.HandleFunc("GET /push/events", c.signedIn(c.pushEvents))
	m.HandleFunc("POST /push/{id}/answer", c.signedIn(c.pushAnswer))
	m.HandleFunc("GET /device", c.signedIn(c.devicePage))
	m.HandleFunc("POST /device", c.signedIn(c.deviceApprove))
}

type signinData struct {
	Next    string
	User    string
	Methods map[string]bool
	Push    bool
}

func (c *console) signinPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if p, err := c.principal(r); err == nil && c.cfg.Identity.RequireEnrolled(p) == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin.html", page{Title: "Sign in", Data: signinData{Next: next}})
}

// startSession sets the session cookie for a completed login.
func (c *console) startSession(w http.ResponseWriter, res *identity.LoginResult) {
	c.setCookie(w, sessionCookie, res.Token, "/", int(res.Session.ExpiresAt.Sub(c.cfg.Now()).Seconds()), http.SameSiteLaxMode)
	c.clearCookie(w, challengeCookie, "/signin")
}

func (c *console) signinPassword(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.FormValue("next"))
	name := r.FormValue("user")
	res, err := c.cfg.Identity.Login(r.Context(), name, r.FormValue("password"), identity.FactorInput{}, r.RemoteAddr)
	if err != nil {
		c.render(w, r, http.StatusUnauthorized, "signin.html", page{Title: "Sign in", Error: c.errMessage(r, err), Data: signinData{Next: next, User: name}})
		return
	}
	if res.Token != "" {
		c.startSession(w, res)
		if res.Session.MFAAt.IsZero() {
			next = "/factors"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.setCookie(w, challengeCookie, res.Challenge, "/signin", 300, http.SameSiteStrictMode)
	d := signinData{Next: next, User: name, Methods: map[string]bool{}}
	for _, m := range res.Methods {
		d.Methods[m] = true
	}
	d.Push = d.Methods[airlock.FactorPush] && c.cfg.Push != nil
	c.render(w, r, http.StatusOK, "factor.html", page{Title: "Second factor", Data: d})
}

func (c *console) signinOTP(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.FormValue("next"))
	res, err := c.cfg.Identity.LoginFactor(r.Context(), cookie(r, challengeCookie), identity.FactorInput{OTP: r.FormValue("otp")}, r.RemoteAddr)
	if err != nil {
		if airlock.IsCode(err, airlock.EUNAUTHORIZED) && !identity.IsInvalidLogin(err) {
			// The challenge expired: start over.
			c.render(w, r, http.StatusUnauthorized, "signin.html", page{Title: "Sign in", Error: c.errMessage(r, err), Data: signinData{Next: next}})
			return
		}
		c.render(w, r, http.StatusUnauthorized, "factor.html", page{Title: "Second factor", Error: c.errMessage(r, err),
			Data: signinData{Next: next, Methods: map[string]bool{airlock.FactorTOTP: true, identity.MethodRecovery: true}}})
		return
	}
	c.startSession(w, res)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

type webAuthnBegin struct {
	Ceremony string          `json:"ceremony"`
	Options  json.RawMessage `json:"options"`
}

type webAuthnFinish struct {
	Ceremony string          `json:"ceremony"`
	Response json.RawMessage `json:"response"`
	Next     string          `json:"next,omitempty"`
}

func (c *console) signinWebAuthnBegin(w http.ResponseWriter, r *http.Request) {
	cer, opts, err := c.cfg.Identity.BeginWebAuthnLogin(r.Context(), cookie(r, challengeCookie))
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webAuthnBegin{Ceremony: cer, Options: opts})
}

func (c *console) signinWebAuthnFinish(w http.ResponseWriter, r *http.Request) {
	var in webAuthnFinish
	if err := decodeJSON(r, &in); err != nil {
		c.jsonError(w, r, err)
		return
	}
	res, err := c.cfg.Identity.LoginFactor(r.Context(), cookie(r, challengeCookie),
		identity.FactorInput{WebAuthnCeremony: in.Ceremony, WebAuthnResponse: in.Response}, r.RemoteAddr)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	c.startSession(w, res)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": safeNext(in.Next)})
}

func (c *console) signinPushBegin(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
		return
	}
	ch, err := c.cfg.Push.BeginLogin(r.Context(), cookie(r, challengeCookie), r.RemoteAddr)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": ch.ID, "number": ch.Number, "expires_at": ch.ExpiresAt})
}

// signinPushPoll reports a login push's state and, once approved,
// completes the login.
func (c *console) signinPushPoll(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
		return
	}
	id := r.PathValue("id")
	st, _, err := c.cfg.Push.Status(r.Context(), id)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	if st != identity.PushApproved {
		writeJSON(w, http.StatusOK, map[string]string{"state": st})
		return
	}
	res, err := c.cfg.Push.LoginPush(r.Context(), cookie(r, challengeCookie), id, r.RemoteAddr)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	c.startSession(w, res)
	writeJSON(w, http.StatusOK, map[string]string{"state": st, "redirect": safeNext(r.URL.Query().Get("next"))})
}

func (c *console) signout(w http.ResponseWriter, r *http.Request) {
	if p, err := c.principal(r); err == nil {
		if err := c.cfg.Identity.Logout(r.Context(), p); err != nil {
			c.renderStatus(w, r, http.StatusServiceUnavailable, c.errMessage(r, err))
			return
		}
	}
	c.clearCookie(w, sessionCookie, "/")
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// ---- step-up (fresh MFA) from any page ----

func (c *console) mfaVerify(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	next := safeNext(r.FormValue("next"))
	if _, err := c.cfg.Identity.VerifyMFA(r.Context(), p, identity.FactorInput{OTP: r.FormValue("otp")}); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withParam(next, "done", "verified"), http.StatusSeeOther)
}

func withParam(path, k, v string) string {
	u, err := url.Parse(path)
	if err != nil {
		return "/"
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *console) stepUpWebAuthnBegin(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	cer, opts, err := c.cfg.Identity.BeginWebAuthnStepUp(r.Context(), p)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webAuthnBegin{Ceremony: cer, Options: opts})
}

func (c *console) stepUpWebAuthnFinish(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	var in webAuthnFinish
	if err := decodeJSON(r, &in); err != nil {
		c.jsonError(w, r, err)
		return
	}
	if _, err := c.cfg.Identity.VerifyMFA(r.Context(), p, identity.FactorInput{WebAuthnCeremony: in.Ceremony, WebAuthnResponse: in.Response}); err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": withParam(safeNext(in.Next), "done", "verified")})
}

func (c *console) stepUpPushBegin(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
		return
	}
	ch, err := c.cfg.Push.BeginStepUp(r.Context(), p)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": ch.ID, "number": ch.Number, "expires_at": ch.ExpiresAt})
}

func (c *console) stepUpPushPoll(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.EINVALID, "push is not enabled on this server"))
		return
	}
	id := r.PathValue("id")
	st, _, err := c.cfg.Push.Status(r.Context(), id)
	if err != nil {
		c.jsonError(w, r, err)
		return
	}
	if st != identity.PushApproved {
		writeJSON(w, http.StatusOK, map[string]string{"state": st})
		return
	}
	if err := c.cfg.Push.VerifyPush(r.Context(), p, id); err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"state": st, "redirect": withParam(safeNext(r.URL.Query().Get("next")), "done", "verified")})
}
