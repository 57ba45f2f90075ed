package identity

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/mfa"
)

// MFA methods recorded on login sessions and grants.
const (
	MethodTOTP     = "totp"
	MethodWebAuthn = "webauthn"
	MethodRecovery = "recovery"
)

// PhishingResistant lists the methods that count as phishing resistant.
var PhishingResistant = []string{MethodWebAuthn}

// FactorInput is a second-factor proof: a TOTP or recovery code, or a
// WebAuthn assertion for an earlier ceremony.
type FactorInput struct {
	OTP              string          `json:"otp,omitempty"`
	WebAuthnCeremony string          `json:"webauthn_ceremony,omitempty"`
	WebAuthnResponse json.RawMessage `json:"webauthn_response,omitempty"`
}

func (f FactorInput) empty() bool { return f.OTP == "" && len(f.WebAuthnResponse) == 0 }

// LoginResult is the outcome of a login step. Either Token is set (logged
// in) or Challenge is (a second factor is needed; Methods lists which).
type LoginResult struct {
	Token     string
	Session   *airlock.LoginSession
	User      *airlock.User
	Challenge string
	Methods   []string
}

type loginChallenge struct {
	UserID string `json:"user_id"`
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// fail audits a refused credential (the attempt was already counted by
// admit) and counts it toward the source address's ceiling.
func (s *Service) fail(ctx context.Context, name, userID, source, action, reason string) {
	s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: action, SourceAddr: source, Outcome: airlock.OutcomeFailure,
		Details: airlock.EventDetails("reason", reason)})
	s.failedFrom(ctx, name, userID, source)
}

// maxInflightAttempts bounds concurrent password checks per source
// address in this process, so one source cannot queue a spray for the
// password hasher ahead of everyone else. It is keyed by source only: a
// per-user bound would let an attacker keep the owner out.
const maxInflightAttempts = 2

// acquireAttempt reserves a password check slot for source, or refuses at
// once when it already has maxInflightAttempts in flight.
func (s *Service) acquireAttempt(ctx context.Context, name, source string) (func(), error) {
	k := "addr:" + sourceBucket(source)
	s.mu.Lock()
	if s.inflight[k] >= maxInflightAttempts {
		s.mu.Unlock()
		s.noteThrottled(ctx, "inflight|"+k, s.now(), airlock.Event{Actor: airlock.Actor{Name: name}, Action: "login.throttled", SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("scope", "inflight")})
		return nil, &airlock.Error{Code: airlock.ELOCKED, Message: "too many login attempts in progress from your address; try again in a moment",
			Details: map[string]any{"retry_after_seconds": 1}}
	}
	s.inflight[k]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.inflight[k]--; s.inflight[k] <= 0 {
			delete(s.inflight, k)
		}
		s.mu.Unlock()
	}, nil
}

// activeFactors returns the user's confirmed factors other than recovery codes.
func (s *Service) activeFactors(ctx context.Context, userID string) ([]*airlock.Factor, error) {
	fs, err := s.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []*airlock.Factor
	for _, f := range fs {
		if f.Status == airlock.FactorActive && f.Kind != airlock.FactorRecovery {
			out = append(out, f)
		}
	}
	return out, nil
}

func methodsOf(fs []*airlock.Factor) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if !seen[f.Kind] {
			seen[f.Kind] = true
			out = append(out, f.Kind)
		}
	}
	return append(out, MethodRecovery)
}

// Login checks a user name and password. With a second factor in otp (or
// when the user has no factor yet) it returns a session token; otherwise a
// challenge for LoginFactor. Every failure answers with the same message,
// whether or not the user exists, after comparable work.
//
// Each call is one guess, counted in the store before the password is
// checked (see admit); a refused guess is never checked. Errors:
// EUNAUTHORIZED (errInvalidLogin), ELOCKED (throttled: try again later),
// EINVALID, EUNAVAILABLE.
func (s *Service) Login(ctx context.Context, name, password string, in FactorInput, source string) (*LoginResult, error) {
	release, err := s.acquireAttempt(ctx, name, source)
	if err != nil {
		return nil, err
	}
	defer release()
	u, err := s.store.UserByName(ctx, name)
	if err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
		return nil, err
	}
	var uid string
	if u != nil {
		uid = u.ID
	}
	srcKey, err := s.admit(ctx, name, uid, source)
	if err != nil {
		return nil, err
	}
	if s.onVerify != nil {
		s.onVerify()
	}
	if u == nil || u.PasswordHash == "" {
		s.hasher.DummyVerify(ctx, password)
		s.fail(ctx, name, "", source, "login.failed", "unknown user or no password")
		return nil, errInvalidLogin
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.fail(ctx, name, u.ID, source, "login.failed", "wrong password")
		return nil, errInvalidLogin
	}
	if u.Disabled {
		s.fail(ctx, name, u.ID, source, "login.failed", "user disabled")
		return nil, errInvalidLogin
	}
	factors, err := s.activeFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if len(factors) == 0 {
		// Enrollment-only session: every action but enrolling a factor is refused.
		res, err := s.startSession(ctx, u, "", source)
		if err == nil {
			s.admitted(ctx, srcKey)
		}
		return res, err
	}
	if !in.empty() {
		method, err := s.verifyFactor(ctx, u, in, source, "login.failed")
		if err != nil {
			return nil, err
		}
		res, err := s.startSession(ctx, u, method, source)
		if err == nil {
			s.admitted(ctx, srcKey)
		}
		return res, err
	}
	// A right password alone does not reset the count: the second factor
	// is still to be guessed, and each LoginFactor is a counted guess too.
	tok, hash := auth.NewToken("lc")
	b, _ := json.Marshal(loginChallenge{UserID: u.ID})
	if err := s.store.PutKV(ctx, "loginchal:"+fmt.Sprintf("%x", hash), b, s.now().Add(s.cfg.LoginChallengeTTL)); err != nil {
		return nil, err
	}
	return &LoginResult{Challenge: tok, Methods: methodsOf(factors), User: u}, nil
}

func (s *Service) challengeUser(ctx context.Context, challenge string) (*airlock.User, string, error) {
	key := "loginchal:" + fmt.Sprintf("%x", auth.HashToken(challenge))
	b, err := s.store.GetKV(ctx, key, s.now())
	if err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, "", err // the store, not the challenge: say so
		}
		return nil, "", airlock.Errorf(airlock.EUNAUTHORIZED, "the login step expired; run `airlock login` again")
	}
	var c loginChallenge
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, "", airlock.Errorf(airlock.EUNAUTHORIZED, "the login step expired; run `airlock login` again")
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if err != nil {
		return nil, "", err
	}
	return u, key, nil
}

// LoginFactor completes a login begun with Login using a second factor.
func (s *Service) LoginFactor(ctx context.Context, challenge string, in FactorInput, source string) (*LoginResult, error) {
	return s.secondStep(ctx, challenge, source, func(u *airlock.User, refused func(string)) (string, error) {
		method, err := s.verifyFactor(ctx, u, in, source, "login.failed")
		if airlock.IsCode(err, airlock.EINVALID) {
			refused(airlock.ErrorMessage(err)) // no factor given, or WebAuthn not configured
		}
		return method, err
	})
}

// secondStep completes a login begun with Login, for every second factor
// (LoginFactor, LoginPush): the attempt is counted before anything is
// checked, verify checks the factor and returns its method (auditing its
// own failures, or calling refused with why), the login step opens one
// session across replicas, and a full success resets the count. Every
// refusal is an event.
func (s *Service) secondStep(ctx context.Context, challenge, source string, verify func(u *airlock.User, refused func(why string)) (method string, err error)) (*LoginResult, error) {
	u, key, err := s.challengeUser(ctx, challenge)
	if err != nil {
		if airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			// Anyone can send a made-up challenge: audit the first per
			// source and window, so that garbage cannot flood the log.
			s.noteThrottled(ctx, "challenge|"+sourceBucket(source), s.now(), airlock.Event{Action: "login.refused", SourceAddr: source,
				Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", "unknown or expired login step")})
		}
		return nil, err
	}
	srcKey, err := s.admit(ctx, u.Name, u.ID, source)
	if err != nil {
		return nil, err
	}
	refused := func(why string) {
		s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "login.refused", SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", why)})
	}
	if u.Disabled {
		refused("user disabled")
		return nil, errInvalidLogin
	}
	method, err := verify(u, refused)
	if err != nil {
		return nil, err
	}
	// The challenge opens one session, across replicas too.
	if _, err := s.store.TakeKV(ctx, key, s.now()); err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, err
		}
		refused("login step already used or expired")
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the login step expired; run `airlock login` again")
	}
	res, err := s.startSession(ctx, u, method, source)
	if err == nil {
		s.admitted(ctx, srcKey)
	}
	return res, err
}

// BeginWebAuthnLogin starts a WebAuthn assertion for a login challenge.
func (s *Service) BeginWebAuthnLogin(ctx context.Context, challenge string) (ceremony string, options []byte, err error) {
	if s.webauthn == nil {
		return "", nil, airlock.Errorf(airlock.EINVALID, "WebAuthn is not configured on this server")
	}
	u, _, err := s.challengeUser(ctx, challenge)
	if err != nil {
		return "", nil, err
	}
	return s.webauthn.BeginLogin(ctx, u)
}

// BeginWebAuthnStepUp starts a WebAuthn assertion for p's step-up.
func (s *Service) BeginWebAuthnStepUp(ctx context.Context, p *Principal) (ceremony string, options []byte, err error) {
	if s.webauthn == nil {
		return "", nil, airlock.Errorf(airlock.EINVALID, "WebAuthn is not configured on this server")
	}
	return s.webauthn.BeginLogin(ctx, p.User)
}

// verifyFactor checks a second factor for u and returns its method.
func (s *Service) verifyFactor(ctx context.Context, u *airlock.User, in FactorInput, source, failAction string) (string, error) {
	switch {
	case len(in.WebAuthnResponse) > 0:
		if s.webauthn == nil {
			return "", airlock.Errorf(airlock.EINVALID, "WebAuthn is not configured on this server")
		}
		fid, err := s.webauthn.FinishLogin(ctx, u, in.WebAuthnCeremony, in.WebAuthnResponse)
		if err != nil {
			if errors.Is(err, mfa.ErrClonedAuthenticator) {
				s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.cloned_key", SourceAddr: source, Outcome: airlock.OutcomeDenied,
					Details: airlock.EventDetails("factor_id", fid, "reason", "sign count regression")})
			}
			s.fail(ctx, u.Name, u.ID, source, failAction, "webauthn: "+airlock.ErrorMessage(err))
			return "", errInvalidLogin
		}
		return MethodWebAuthn, nil
	case isRecoveryCode(in.OTP):
		left, err := s.recovery.Use(ctx, u.ID, in.OTP)
		if err != nil {
			s.fail(ctx, u.Name, u.ID, source, failAction, "recovery code rejected")
			return "", errInvalidLogin
		}
		if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.recovery_used", SourceAddr: source,
			Details: airlock.EventDetails("remaining", left, "flagged", true)}); err != nil {
			return "", err
		}
		return MethodRecovery, nil
	case in.OTP != "":
		if _, err := s.totp.Verify(ctx, u.ID, in.OTP); err != nil {
			s.fail(ctx, u.Name, u.ID, source, failAction, "totp: "+err.Error())
			return "", errInvalidLogin
		}
		return MethodTOTP, nil
	}
	return "", airlock.Errorf(airlock.EINVALID, "a second factor is required: pass --otp CODE")
}

// isRecoveryCode reports whether s looks like a recovery code (10
// characters once dashes and spaces are dropped) rather than a 6-digit
// TOTP code.
func isRecoveryCode(s string) bool {
	n := 0
	for _, r := range s {
		if r != '-' && r != ' ' {
			n++
		}
	}
	return n == 10
}

func (s *Service) startSession(ctx context.Context, u *airlock.User, method, source string) (*LoginResult, error) {
	now := s.now().UTC()
	tok, hash := auth.NewToken("al")
	sess := &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: hash, UserID: u.ID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(s.cfg.Lifetime), SourceAddr: source}
	if method != "" {
		sess.MFAAt, sess.MFAMethod = now, method
	}
	if err := s.change(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "login.succeeded", SourceAddr: source,
		Details: airlock.EventDetails("login_session", sess.ID, "mfa_method", method)},
		func(ctx context.Context) error { return s.store.CreateLoginSession(ctx, sess) }); err != nil {
		return nil, err
	}
	return &LoginResult{Token: tok, Session: sess, User: u}, nil
}

// Authenticate resolves a bearer token to a Principal, enforcing the idle
// timeout and absolute lifetime. Errors: EUNAUTHORIZED.
func (s *Service) Authenticate(ctx context.Context, token, source string) (*Principal, error) {
	if token == "" {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "not logged in: run `airlock login`")
	}
	hash := auth.HashToken(token)
	key := string(hash)
	now := s.now()
	s.mu.Lock()
	c := s.cache[key]
	if c != nil && now.Sub(c.fetched) > cacheTTL {
		c = nil
	}
	var touch bool
	if c != nil {
		if err := s.checkSession(&c.sess, &c.user, now); err != nil {
			delete(s.cache, key)
			s.mu.Unlock()
			return nil, err
		}
		c.sess.LastSeenAt = now.UTC()
		if now.Sub(c.touched) > 30*time.Second {
			c.touched, touch = now, true
		}
		sess, user := c.sess, c.user
		s.mu.Unlock()
		if touch {
			s.store.TouchLoginSession(ctx, sess.ID, now.UTC())
		}
		return &Principal{User: &user, Session: &sess, Source: source}, nil
	}
	s.mu.Unlock()

	sess, err := s.store.LoginSessionByTokenHash(ctx, hash)
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "your login session is not valid: run `airlock login`")
		}
		return nil, err
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.checkSession(sess, u, now); err != nil {
		return nil, err
	}
	sess.LastSeenAt = now.UTC()
	s.store.TouchLoginSession(ctx, sess.ID, sess.LastSeenAt)
	s.mu.Lock()
	s.cache[key] = &cachedSession{sess: *sess, user: *u, fetched: now, touched: now}
	s.mu.Unlock()
	return &Principal{User: u, Session: sess, Source: source}, nil
}

// Recheck resolves token as Authenticate does, but from the store (no
// cache) and without counting as activity: it never moves the session's
// idle timer. It is for long-running reads (a followed audit stream) that
// must stop when the session ends, idles out or its user is disabled, and
// must not keep it alive themselves. Errors: EUNAUTHORIZED.
func (s *Service) Recheck(ctx context.Context, token, source string) (*Principal, error) {
	if token == "" {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "not logged in: run `airlock login`")
	}
	sess, err := s.store.LoginSessionByTokenHash(ctx, auth.HashToken(token))
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "your login session is not valid: run `airlock login`")
		}
		return nil, err
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.checkSession(sess, u, s.now()); err != nil {
		return nil, err
	}
	return &Principal{User: u, Session: sess, Source: source}, nil
}

func (s *Service) checkSession(sess *airlock.LoginSession, u *airlock.User, now time.Time) error {
	switch {
	case !sess.RevokedAt.IsZero():
		return airlock.Errorf(airlock.EUNAUTHORIZED, "your login session was ended: run `airlock login`")
	case u.Disabled:
		return airlock.Errorf(airlock.EUNAUTHORIZED, "your account is disabled")
	case !now.Before(sess.ExpiresAt):
		return airlock.Errorf(airlock.EUNAUTHORIZED, "your login session expired: run `airlock login`")
	case now.Sub(sess.LastSeenAt) > s.cfg.IdleTimeout:
		return airlock.Errorf(airlock.EUNAUTHORIZED, "your login session timed out after %s idle: run `airlock login`", s.cfg.IdleTimeout)
	}
	return nil
}

func (s *Service) dropCache(sessionID string) {
	s.mu.Lock()
	for k, c := range s.cache {
		if c.sess.ID == sessionID {
			delete(s.cache, k)
		}
	}
	s.mu.Unlock()
}

// Logout ends p's login session.
func (s *Service) Logout(ctx context.Context, p *Principal) error {
	s.dropCache(p.Session.ID)
	return s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "login.logout", SourceAddr: p.Source, Details: airlock.EventDetails("login_session", p.Session.ID)},
		func(ctx context.Context) error { return s.store.RevokeLoginSession(ctx, p.Session.ID, s.now().UTC()) })
}

// StepUp is a second factor sent inline with an action that needs fresh
// MFA (the CLI's --otp, a console form's code), so that one call both
// refreshes MFA and acts. The zero value sends none. It is the one way a
// step-up factor reaches a service: VerifyStepUp checks it.
type StepUp struct {
	OTP string `json:"otp,omitempty"`
}

// VerifyStepUp verifies su when it carries a factor, as VerifyMFA does:
// always, however fresh p's MFA is, and a wrong one is an error that
// refuses the action it came with. Without one it does nothing, and the
// action's own freshness check decides. Errors: those of VerifyMFA.
func (s *Service) VerifyStepUp(ctx context.Context, p *Principal, su StepUp) error {
	if su.OTP == "" {
		return nil
	}
	_, err := s.VerifyMFA(ctx, p, FactorInput{OTP: su.OTP})
	return err
}

// VerifyMFA refreshes p's MFA freshness with a second factor (step-up).
// Each call is one counted guess (see admit). Errors: EUNAUTHORIZED,
// ELOCKED, EINVALID, EUNAVAILABLE.
func (s *Service) VerifyMFA(ctx context.Context, p *Principal, in FactorInput) (string, error) {
	srcKey, err := s.admit(ctx, p.User.Name, p.User.ID, p.Source)
	if err != nil {
		return "", err
	}
	method, err := s.verifyFactor(ctx, p.User, in, p.Source, "mfa.verify_failed")
	if err != nil {
		return "", err
	}
	if err := s.markFresh(ctx, p, method, "mfa.verified"); err != nil {
		return "", err
	}
	s.admitted(ctx, srcKey)
	return method, nil
}

func (s *Service) markFresh(ctx context.Context, p *Principal, method, action string) error {
	now := s.now().UTC()
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: action, SourceAddr: p.Source, Details: airlock.EventDetails("method", method, "login_session", p.Session.ID)},
		func(ctx context.Context) error { return s.store.SetLoginSessionMFA(ctx, p.Session.ID, now, method) }); err != nil {
		return err
	}
	p.Session.MFAAt, p.Session.MFAMethod = now, method
	s.dropCache(p.Session.ID)
	return nil
}

// ---- browser login for the CLI (`airlock login --web`) ----

// WebLoginTTL bounds the time between starting a browser login and
// completing it.
const WebLoginTTL = 10 * time.Minute

// ErrWebLoginPending is returned by PollWebLogin until the browser has
// approved the login.
var ErrWebLoginPending = airlock.Errorf(airlock.ECONFLICT, "waiting for the browser sign-in")

type webLogin struct {
	PollHash string `json:"poll_hash"`
	Source   string `json:"source"`
	UserID   string `json:"user_id,omitempty"` // set when approved
	Method   string `json:"method,omitempty"`
}

// userCodeAlphabet avoids look-alike characters (0/O, 1/I/L).
const userCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

func newUserCode() string {
	b := make([]byte, 9)
	for i := range b {
		if i == 4 {
			b[i] = '-'
			continue
		}
		b[i] = userCodeAlphabet[randInt(len(userCodeAlphabet))]
	}
	return string(b)
}

// NormalizeUserCode upper-cases a typed user code and restores its dash.
func NormalizeUserCode(code string) string {
	var b []byte
	for _, c := range []byte(code) {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	if len(b) != 8 {
		return ""
	}
	return string(b[:4]) + "-" + string(b[4:])
}

// StartWebLogin begins a browser login for a CLI at source. It returns a
// short user code (shown in the browser URL and typed or checked by the
// user) and a poll token (a secret the CLI keeps and never puts in a URL).
// The state lives in the shared KV store, so any replica can finish it.
func (s *Service) StartWebLogin(ctx context.Context, source string) (userCode, pollToken string, expires time.Time, err error) {
	tok, hash := auth.NewToken("wl")
	code := newUserCode()
	expires = s.now().Add(WebLoginTTL).UTC()
	b, _ := json.Marshal(webLogin{PollHash: fmt.Sprintf("%x", hash), Source: source})
	if err := s.store.PutKV(ctx, "weblogin:"+code, b, expires); err != nil {
		return "", "", time.Time{}, err
	}
	if err := s.store.PutKV(ctx, fmt.Sprintf("weblogin-poll:%x", hash), []byte(code), expires); err != nil {
		return "", "", time.Time{}, err
	}
	return code, tok, expires, nil
}

// WebLoginSource returns where the CLI that started userCode's login is
// (to show the user before they approve). Errors: ENOTFOUND.
func (s *Service) WebLoginSource(ctx context.Context, userCode string) (string, error) {
	b, err := s.store.GetKV(ctx, "weblogin:"+NormalizeUserCode(userCode), s.now())
	var wl webLogin
	if err != nil || json.Unmarshal(b, &wl) != nil || wl.UserID != "" {
		return "", airlock.Errorf(airlock.ENOTFOUND, "no pending browser login with that code; run `airlock login --web` again")
	}
	return wl.Source, nil
}

// ApproveWebLogin lets p (signed in in the browser with a second factor
// within the approve freshness window) complete the CLI login userCode as
// p's user. Errors: ENOTFOUND, EMFAREQUIRED, EUNAVAILABLE.
func (s *Service) ApproveWebLogin(ctx context.Context, p *Principal, userCode string) error {
	if err := s.RequireFresh(p, ActionApprove); err != nil {
		return err
	}
	key := "weblogin:" + NormalizeUserCode(userCode)
	b, err := s.store.GetKV(ctx, key, s.now())
	var wl webLogin
	if err != nil || json.Unmarshal(b, &wl) != nil || wl.UserID != "" {
		return airlock.Errorf(airlock.ENOTFOUND, "no pending browser login with that code; run `airlock login --web` again")
	}
	wl.UserID, wl.Method = p.User.ID, p.Session.MFAMethod
	b, _ = json.Marshal(wl)
	return s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "login.web_approved", SourceAddr: p.Source,
		Details: airlock.EventDetails("cli_addr", wl.Source, "mfa_method", p.Session.MFAMethod)},
		func(ctx context.Context) error { return s.store.PutKV(ctx, key, b, s.now().Add(WebLoginTTL)) })
}

// PollWebLogin returns the CLI's new login session once the browser has
// approved, exactly once. Until then it returns ErrWebLoginPending.
// Errors: EUNAUTHORIZED (unknown or expired poll token).
func (s *Service) PollWebLogin(ctx context.Context, pollToken, source string) (*LoginResult, error) {
	pollKey := fmt.Sprintf("weblogin-poll:%x", auth.HashToken(pollToken))
	code, err := s.store.GetKV(ctx, pollKey, s.now())
	if err != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the browser login expired; run `airlock login --web` again")
	}
	key := "weblogin:" + string(code)
	b, err := s.store.GetKV(ctx, key, s.now())
	var wl webLogin
	if err != nil || json.Unmarshal(b, &wl) != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the browser login expired; run `airlock login --web` again")
	}
	if subtle.ConstantTimeCompare([]byte(wl.PollHash), []byte(fmt.Sprintf("%x", auth.HashToken(pollToken)))) != 1 {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the browser login expired; run `airlock login --web` again")
	}
	if wl.UserID == "" {
		return nil, ErrWebLoginPending
	}
	// Single use (across replicas too): taken before the session exists.
	if _, err := s.store.TakeKV(ctx, key, s.now()); err != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the browser login expired; run `airlock login --web` again")
	}
	s.store.DeleteKV(ctx, pollKey)
	u, err := s.store.UserByID(ctx, wl.UserID)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, errInvalidLogin
	}
	return s.startSession(ctx, u, wl.Method, source)
}
