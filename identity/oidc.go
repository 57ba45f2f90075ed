package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
)

// MethodSSOPrefix prefixes the MFA method of a login session whose second
// factor was the identity provider's own (e.g. "sso:hwk").
const MethodSSOPrefix = "sso:"

// OIDCStateTTL bounds the time between /oidc/start and the callback.
const OIDCStateTTL = 10 * time.Minute

// oidcPollTTL bounds how long a completed browser login waits for the CLI.
const oidcPollTTL = 2 * time.Minute

// OIDCConfig configures OpenID Connect single sign-on as a first factor.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string // read from a file by the caller; never inline config
	// RedirectURL is PUBLIC_URL/api/v1/oidc/callback.
	RedirectURL string
	// GroupsClaim names the ID token claim holding the user's groups
	// (default "groups").
	GroupsClaim string
	// AcceptAMR lists amr (or acr) values that count as a second factor;
	// empty means the IdP's MFA is never accepted and Airlock's own factor
	// is always required.
	AcceptAMR []string
	// AdminGroup is the IdP group whose members become Airlock admins;
	// empty means the IdP never grants admins.
	AdminGroup string
	// HTTPClient talks to the IdP (default http.DefaultClient).
	HTTPClient *http.Client
}

// OIDC is a discovered OpenID provider, ready to run logins.
type OIDC struct {
	cfg      OIDCConfig
	provider *oidc.Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// NewOIDC discovers the provider at cfg.Issuer (its
// /.well-known/openid-configuration must name the same issuer) and returns
// an OIDC whose ID token checks use now. Errors: EINVALID (incomplete
// config), EUNAVAILABLE (discovery failed).
func NewOIDC(ctx context.Context, cfg OIDCConfig, now func() time.Time) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "OIDC needs an issuer, a client ID and a redirect URL")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, airlock.WrapError(airlock.EUNAVAILABLE, fmt.Sprintf("OIDC discovery at %s failed", cfg.Issuer), err)
	}
	return &OIDC{
		cfg: cfg, provider: p,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: now}),
	}, nil
}

// SetOIDC enables SSO logins through o (nil disables them).
func (s *Service) SetOIDC(o *OIDC) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidc = o
}

func (s *Service) oidcProvider() (*OIDC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oidc == nil {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "single sign-on is not configured on this server")
	}
	return s.oidc, nil
}

// oidcState is what the server keeps between start and callback.
type oidcState struct {
	Verifier string `json:"verifier"` // PKCE code verifier
	Nonce    string `json:"nonce"`
	Poll     string `json:"poll,omitempty"` // hex SHA-256 of the CLI's poll token
}

// oidcOutcome is a verified SSO identity waiting for the CLI to poll.
type oidcOutcome struct {
	UserID string `json:"user_id"`
	Method string `json:"method,omitempty"` // accepted sso:<amr>, or ""
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// BeginOIDC starts an authorization-code login with PKCE and returns the
// IdP URL to send the browser to. poll, when set, is a secret the CLI chose
// and later passes to PollOIDC. Errors: ENOTFOUND (SSO not configured),
// EINVALID (poll too short).
func (s *Service) BeginOIDC(ctx context.Context, poll string) (string, error) {
	o, err := s.oidcProvider()
	if err != nil {
		return "", err
	}
	if poll != "" && (len(poll) < 22 || len(poll) > 256) {
		return "", airlock.Errorf(airlock.EINVALID, "the poll token must be 22 to 256 characters")
	}
	state, _ := auth.NewToken("st")
	nonce, _ := auth.NewToken("nc")
	st := oidcState{Verifier: oauth2.GenerateVerifier(), Nonce: nonce}
	if poll != "" {
		st.Poll = hashHex(poll)
	}
	b, _ := json.Marshal(st)
	if err := s.store.PutKV(ctx, "oidcstate:"+hashHex(state), b, s.now().Add(OIDCStateTTL)); err != nil {
		return "", err
	}
	return o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(st.Verifier)), nil
}

// OIDCResult is the outcome of an SSO callback. With Pending set the login
// completes when the CLI calls PollOIDC; otherwise Login holds the session
// or the second-factor challenge, as Login does for passwords.
type OIDCResult struct {
	Pending bool
	Login   *LoginResult
}

// ssoClaims are the ID token claims Airlock reads.
type ssoClaims struct {
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	AMR               []string `json:"amr"`
	ACR               string   `json:"acr"`
}

// FinishOIDC completes the callback: it takes the single-use state,
// exchanges code (with the PKCE verifier), verifies the ID token (signature,
// issuer, audience, expiry, nonce), maps the subject to a user (creating
// it on first login), syncs its groups and audits login.sso. Errors:
// EUNAUTHORIZED (anything about the login is wrong; the audit log has the
// reason), ECONFLICT (a local user already has the name), EUNAVAILABLE.
func (s *Service) FinishOIDC(ctx context.Context, state, code, source string) (*OIDCResult, error) {
	o, err := s.oidcProvider()
	if err != nil {
		return nil, err
	}
	refuse := func(userID, name, reason string) error {
		s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: "login.sso", SourceAddr: source,
			Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("reason", reason, "issuer", o.cfg.Issuer)})
		return airlock.Errorf(airlock.EUNAUTHORIZED, "single sign-on failed; start again with `airlock login --sso`")
	}
	if state == "" || code == "" {
		return nil, refuse("", "", "missing state or code")
	}
	key := "oidcstate:" + hashHex(state)
	// Single use (across replicas too): the state is gone before the code
	// is even exchanged.
	b, err := s.store.TakeKV(ctx, key, s.now())
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, refuse("", "", "unknown, expired or replayed state")
		}
		return nil, err
	}
	var st oidcState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, refuse("", "", "corrupt state")
	}
	hctx := oidc.ClientContext(ctx, o.cfg.HTTPClient)
	tok, err := o.oauth.Exchange(hctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, refuse("", "", "code exchange failed: "+oauthReason(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refuse("", "", "token response has no id_token")
	}
	idt, err := o.verifier.Verify(hctx, raw)
	if err != nil {
		return nil, refuse("", "", "id token rejected: "+err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return nil, refuse("", "", "id token nonce mismatch")
	}
	var c ssoClaims
	all := map[string]any{}
	if err := idt.Claims(&c); err != nil {
		return nil, refuse("", "", "malformed claims")
	}
	if err := idt.Claims(&all); err != nil {
		return nil, refuse("", "", "malformed claims")
	}
	if idt.Subject == "" {
		return nil, refuse("", "", "id token has no subject")
	}
	if _, ok := all[o.cfg.GroupsClaim]; !ok || (c.PreferredUsername == "" && c.Email == "") {
		// Many IdPs put profile claims and groups in userinfo only when an
		// access token is issued (OIDC Core 5.4). Its subject must match.
		if err := o.mergeUserInfo(hctx, tok, idt.Subject, &c, all); err != nil {
			return nil, refuse("", "", "userinfo: "+err.Error())
		}
	}
	subject := idt.Issuer + "|" + idt.Subject
	u, err := s.store.UserBySSOSubject(ctx, subject)
	switch {
	case airlock.IsCode(err, airlock.ENOTFOUND):
		name := ssoUserName(c)
		if name == "" {
			return nil, refuse("", "", "no valid preferred_username or email to name the new user")
		}
		if _, err := s.store.UserByName(ctx, name); err == nil {
			// Never link an IdP identity to an existing account by name.
			s.record(ctx, airlock.Event{Actor: airlock.Actor{Name: name}, Action: "login.sso", SourceAddr: source, Outcome: airlock.OutcomeFailure,
				Details: airlock.EventDetails("reason", "user name already taken by another account", "issuer", o.cfg.Issuer)})
			return nil, airlock.Errorf(airlock.ECONFLICT, "user %q already exists and is not linked to this identity provider; ask an admin", name)
		}
		u, err = s.createSSOUser(ctx, name, subject, o.mapGroups(all, nil), source)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := s.syncGroups(ctx, u, o.mapGroups(all, u.Groups), source); err != nil {
			return nil, err
		}
	}
	if u.Disabled {
		return nil, refuse(u.ID, u.Name, "user disabled")
	}
	method := o.acceptedMethod(c)
	if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "login.sso", SourceAddr: source,
		Details: airlock.EventDetails("issuer", o.cfg.Issuer, "amr", c.AMR, "acr", c.ACR, "accepted_as_mfa", method)}); err != nil {
		return nil, err
	}
	if st.Poll != "" {
		ob, _ := json.Marshal(oidcOutcome{UserID: u.ID, Method: method})
		if err := s.store.PutKV(ctx, "oidcpoll:"+st.Poll, ob, s.now().Add(oidcPollTTL)); err != nil {
			return nil, err
		}
		return &OIDCResult{Pending: true}, nil
	}
	res, err := s.finishSSOLogin(ctx, u, method, source)
	if err != nil {
		return nil, err
	}
	return &OIDCResult{Login: res}, nil
}

// PollOIDC completes, once, a browser login started with BeginOIDC's
// poll token. Errors: ENOTFOUND (not finished yet, or already taken),
// EUNAUTHORIZED (user disabled meanwhile).
func (s *Service) PollOIDC(ctx context.Context, poll, source string) (*LoginResult, error) {
	if poll == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "poll token required")
	}
	key := "oidcpoll:" + hashHex(poll)
	b, err := s.store.TakeKV(ctx, key, s.now())
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, airlock.Errorf(airlock.ENOTFOUND, "the single sign-on login has not completed yet")
		}
		return nil, err
	}
	var out oidcOutcome
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "single sign-on failed; start again")
	}
	u, err := s.store.UserByID(ctx, out.UserID)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, errInvalidLogin
	}
	return s.finishSSOLogin(ctx, u, out.Method, source)
}

// finishSSOLogin is the part of Login after the first factor: a session
// when the IdP's MFA was accepted or the user has no factor yet
// (enrollment only), otherwise a challenge for LoginFactor. The IdP
// checked the first factor, so nothing is guessed here; the second factor
// that follows is throttled in LoginFactor.
func (s *Service) finishSSOLogin(ctx context.Context, u *airlock.User, method, source string) (*LoginResult, error) {
	factors, err := s.activeFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if method != "" || len(factors) == 0 {
		return s.startSession(ctx, u, method, source)
	}
	tok, hash := auth.NewToken("lc")
	b, _ := json.Marshal(loginChallenge{UserID: u.ID})
	if err := s.store.PutKV(ctx, "loginchal:"+fmt.Sprintf("%x", hash), b, s.now().Add(s.cfg.LoginChallengeTTL)); err != nil {
		return nil, err
	}
	return &LoginResult{Challenge: tok, Methods: methodsOf(factors), User: u}, nil
}

// mergeUserInfo fills claims missing from the ID token from the userinfo
// endpoint. amr and acr are never taken from userinfo: only the signed ID
// token can say how the user authenticated.
func (o *OIDC) mergeUserInfo(ctx context.Context, tok *oauth2.Token, sub string, c *ssoClaims, all map[string]any) error {
	ui, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if ui.Subject != sub {
		return fmt.Errorf("subject %q does not match the ID token's", ui.Subject)
	}
	extra := map[string]any{}
	if err := ui.Claims(&extra); err != nil {
		return err
	}
	if c.PreferredUsername == "" && c.Email == "" {
		c.PreferredUsername, _ = extra["preferred_username"].(string)
		c.Email = ui.Email
	}
	if _, ok := all[o.cfg.GroupsClaim]; !ok {
		if g, ok := extra[o.cfg.GroupsClaim]; ok {
			all[o.cfg.GroupsClaim] = g
		}
	}
	return nil
}

// acceptedMethod returns "sso:<value>" for the first amr (or the acr)
// value the config accepts as a second factor, or "".
func (o *OIDC) acceptedMethod(c ssoClaims) string {
	for _, a := range c.AMR {
		if a != "" && slices.Contains(o.cfg.AcceptAMR, a) {
			return MethodSSOPrefix + a
		}
	}
	if c.ACR != "" && slices.Contains(o.cfg.AcceptAMR, c.ACR) {
		return MethodSSOPrefix + c.ACR
	}
	return ""
}

// mapGroups turns the groups claim into Airlock groups: valid names only,
// lower-cased; "admins" only through cfg.AdminGroup. When no AdminGroup is
// configured, an admins membership granted locally (in current) is kept.
func (o *OIDC) mapGroups(claims map[string]any, current []string) []string {
	var raw []string
	switch v := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				raw = append(raw, s)
			}
		}
	case string:
		raw = strings.Fields(v)
	}
	out := []string{}
	add := func(g string) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	for _, g := range raw {
		if o.cfg.AdminGroup != "" && g == o.cfg.AdminGroup {
			add(airlock.GroupAdmins)
			continue
		}
		g = strings.ToLower(g)
		if g == airlock.GroupAdmins || !ValidName(g) {
			continue
		}
		add(g)
	}
	if o.cfg.AdminGroup == "" && slices.Contains(current, airlock.GroupAdmins) {
		add(airlock.GroupAdmins)
	}
	slices.Sort(out)
	return out
}

// ssoUserName picks a new user's name: preferred_username, else the local
// part of email, lower-cased, when it is a valid Airlock name.
func ssoUserName(c ssoClaims) string {
	if n := strings.ToLower(c.PreferredUsername); ValidName(n) {
		return n
	}
	if i := strings.IndexByte(c.Email, '@'); i > 0 {
		if n := strings.ToLower(c.Email[:i]); ValidName(n) {
			return n
		}
	}
	return ""
}

func (s *Service) createSSOUser(ctx context.Context, name, subject string, groups []string, source string) (*airlock.User, error) {
	now := s.now().UTC()
	u := &airlock.User{ID: airlock.NewID("usr"), Name: name, Groups: groups, SSOSubject: subject, CreatedAt: now, UpdatedAt: now}
	if err := s.change(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "user.created", SourceAddr: source,
		Details: airlock.EventDetails("user", name, "user_id", u.ID, "groups", groups, "sso_subject", subject)},
		func(ctx context.Context) error { return s.store.CreateUser(ctx, u) }); err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Service) syncGroups(ctx context.Context, u *airlock.User, groups []string, source string) error {
	cur := slices.Clone(u.Groups)
	slices.Sort(cur)
	if slices.Equal(cur, groups) {
		return nil
	}
	u.Groups = groups
	u.UpdatedAt = s.now().UTC()
	return s.change(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "user.groups_synced", SourceAddr: source,
		Details: airlock.EventDetails("user", u.Name, "user_id", u.ID, "from", cur, "to", groups)},
		func(ctx context.Context) error { return s.store.UpdateUser(ctx, u) })
}

// oauthReason describes a failed exchange without echoing tokens.
func oauthReason(err error) string {
	if re, ok := err.(*oauth2.RetrieveError); ok {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		return fmt.Sprintf("HTTP %d", re.Response.StatusCode)
	}
	return "transport error"
}
