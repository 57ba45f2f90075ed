package access

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/identity"
)

// HTTP app access: tokens for the HTTP gateway. Both kinds live in the
// store's KV (so every replica sees them) under their SHA-256, never in
// the clear:
//   - a sign-in code (HTTPCodeTTL, single use) the console issues to a
//     browser with an active grant, bound to the hash of the browser's
//     state cookie on the app host;
//   - an app token, redeemed from a code (browsers: it lives in the app
//     cookie until the grant's end) or minted through the API (HTTPTokenTTL,
//     for `airlock proxy http`).
const (
	// HTTPCodeTTL is how long a console sign-in code can be redeemed.
	HTTPCodeTTL = 60 * time.Second
	// HTTPTokenTTL bounds a token minted through the API; the CLI's local
	// proxy mints the next one before it runs out.
	HTTPTokenTTL = 15 * time.Minute
	// HTTPTokenPrefix starts every app token (httpgw.TokenPrefix).
	HTTPTokenPrefix = "alh"

	kvHTTPCode  = "http/code/"
	kvHTTPToken = "http/token/"
)

// HTTPToken is a freshly minted app token, shown once to its user.
type HTTPToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	Access    string    `json:"access"`
	User      string    `json:"user"`
	GrantEnds time.Time `json:"grant_ends_at"`
	// Host is the app's public host (the Host the gateway routes by).
	Host string `json:"host"`
}

type httpCode struct {
	UserID    string `json:"user_id"`
	GrantID   string `json:"grant_id"`
	Resource  string `json:"resource"`
	StateHash string `json:"state_hash"`
	Next      string `json:"next"`
}

type httpToken struct {
	UserID    string    `json:"user_id"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	Browser   bool      `json:"browser,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func kvKey(prefix string, hash []byte) string { return prefix + hex.EncodeToString(hash) }

// PublicHost is the host http resource r is served at: its public_host
// option, or RESOURCE.domain.
func PublicHost(r *airlock.Resource, domain string) string {
	if h := Options(r).PublicHost; h != "" {
		return strings.ToLower(h)
	}
	return r.Name + "." + strings.ToLower(domain)
}

// HTTPApp returns the http resource served at host under the apps domain.
func (s *Service) HTTPApp(ctx context.Context, host, domain string) (*airlock.Resource, error) {
	if strings.HasSuffix(host, "."+domain) {
		if r, err := s.store.ResourceByName(ctx, strings.TrimSuffix(host, "."+domain)); err == nil && r.Kind == airlock.KindHTTP && PublicHost(r, domain) == host {
			return r, nil
		} else if airlock.Unavailable(err) {
			return nil, airlock.AsUnavailable(err)
		}
	}
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Kind == airlock.KindHTTP && PublicHost(r, domain) == host {
			return r, nil
		}
	}
	return nil, airlock.Errorf(airlock.ENOTFOUND, "no app is served at %s", host)
}

// MintHTTPToken issues an app token for p's grant on http resource
// resource, with the same checks as connecting (an active grant, MFA fresh
// per policy; a step-up factor is always verified when given).
func (s *Service) MintHTTPToken(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp, domain string) (*HTTPToken, error) {
	t, r, err := s.mintToken(ctx, p, resource, access, su, airlock.KindHTTP, HTTPTokenTTL)
	if err != nil {
		return nil, err
	}
	t.Host = PublicHost(r, domain)
	return t, nil
}

// mintToken issues a gateway token for p's grant on resource, which must
// be of kind, living ttl at most.
func (s *Service) mintToken(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp, kind string, ttl time.Duration) (*HTTPToken, *airlock.Resource, error) {
	g, r, _, err := s.AuthorizeConnect(ctx, p, resource, access, su)
	if err != nil {
		return nil, nil, err
	}
	if r.Kind != kind {
		return nil, nil, airlock.Errorf(airlock.EINVALID, "%s is a %s resource, not %s", r.Name, r.Kind, kindNoun(kind))
	}
	exp := s.now().UTC().Add(ttl)
	if g.EndsAt.Before(exp) {
		exp = g.EndsAt
	}
	tok, err := s.storeHTTPToken(ctx, p.User, g, r, false, exp, p.Source, p.Session.MFAMethod)
	if err != nil {
		return nil, nil, err
	}
	return &HTTPToken{Token: tok, ExpiresAt: exp, GrantID: g.ID, Resource: r.Name, Access: g.Access, User: p.User.Name,
		GrantEnds: g.EndsAt}, r, nil
}

func kindNoun(kind string) string {
	if kind == airlock.KindKubernetes {
		return "a kubernetes cluster"
	}
	return "an http app"
}

// storeHTTPToken records http.token_issued and stores a new token.
func (s *Service) storeHTTPToken(ctx context.Context, u *airlock.User, g *airlock.Grant, r *airlock.Resource, browser bool, exp time.Time, source, mfa string) (string, error) {
	tok, hash := auth.NewToken(HTTPTokenPrefix)
	rec, _ := json.Marshal(httpToken{UserID: u.ID, GrantID: g.ID, Resource: r.Name, Browser: browser, ExpiresAt: exp})
	err := s.change(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "http.token_issued", Resource: r.Name,
		GrantID: g.ID, RequestID: g.RequestID, SourceAddr: source,
		Details: airlock.EventDetails("browser", browser, "expires_at", exp, "mfa_method", mfa)},
		func(ctx context.Context) error { return s.store.PutKV(ctx, kvKey(kvHTTPToken, hash), rec, exp) })
	return tok, err
}

// IssueHTTPCode issues a single-use sign-in code for p's grant on http
// resource resource, bound to stateHash (the hash of the state cookie the
// gateway set in p's browser on the app host) and to next (the path to
// continue at, checked by the gateway again). It checks what connecting
// checks.
func (s *Service) IssueHTTPCode(ctx context.Context, p *identity.Principal, resource, stateHash, next string, su identity.StepUp) (string, *airlock.Resource, error) {
	if len(stateHash) != 43 { // base64url SHA-256
		return "", nil, airlock.Errorf(airlock.EINVALID, "the sign-in link is malformed; open the app again")
	}
	g, r, _, err := s.AuthorizeConnect(ctx, p, resource, "", su)
	if err != nil {
		return "", nil, err
	}
	if r.Kind != airlock.KindHTTP {
		return "", nil, airlock.Errorf(airlock.EINVALID, "%s is a %s resource, not an http app", r.Name, r.Kind)
	}
	code, hash := auth.NewToken("alc")
	rec, _ := json.Marshal(httpCode{UserID: p.User.ID, GrantID: g.ID, Resource: r.Name, StateHash: stateHash, Next: next})
	if err := s.store.PutKV(ctx, kvKey(kvHTTPCode, hash), rec, s.now().Add(HTTPCodeTTL)); err != nil {
		return "", nil, err
	}
	return code, r, nil
}

// HTTPAccess is what a valid app token opens.
type HTTPAccess struct {
	Connection
	// TokenExpiresAt is the token's end (at most the grant's).
	TokenExpiresAt time.Time
	// Header is the brokered credential as request headers (nil when the
	// level brokers none).
	Header map[string]string
	// Rules are the access level's allow rules (none: everything).
	Rules []airlock.HTTPRule
	// Kube is set for a kubernetes resource: what the gateway
	// impersonates, where, and with which client certificate.
	Kube *KubeAccess
}

// RedeemHTTPCode uses a sign-in code at the app host: the code must be
// live, for resource, and bound to stateHash; it is gone after this call
// whatever the outcome. It returns a new browser token (living until the
// grant's end), what it opens, and the path to continue at.
func (s *Service) RedeemHTTPCode(ctx context.Context, resource, code, stateHash, source string) (string, *HTTPAccess, string, error) {
	refuse := func(actor airlock.Actor, why string) (string, *HTTPAccess, string, error) {
		if err := s.record(ctx, airlock.Event{Actor: actor, Action: "connect.refused", Resource: clip(resource), SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", why)}); err != nil {
			return "", nil, "", err
		}
		return "", nil, "", airlock.Errorf(airlock.EUNAUTHORIZED, "this sign-in link is used up, expired or was opened in another browser; open the app again")
	}
	b, err := s.store.TakeKV(ctx, kvKey(kvHTTPCode, auth.HashToken(code)), s.now())
	if airlock.Unavailable(err) {
		return "", nil, "", airlock.AsUnavailable(err)
	}
	if err != nil {
		return refuse(airlock.Actor{}, "unknown, used or expired sign-in code")
	}
	var c httpCode
	if json.Unmarshal(b, &c) != nil {
		return refuse(airlock.Actor{}, "unreadable sign-in code")
	}
	if subtle.ConstantTimeCompare([]byte(c.StateHash), []byte(stateHash)) != 1 {
		return refuse(airlock.Actor{ID: c.UserID}, "sign-in code opened in another browser")
	}
	if c.Resource != resource {
		return refuse(airlock.Actor{ID: c.UserID}, "sign-in code is for another app")
	}
	a, err := s.httpAccess(ctx, c.UserID, c.GrantID, resource)
	if err != nil {
		if airlock.Unavailable(err) {
			return "", nil, "", err
		}
		return refuse(airlock.Actor{ID: c.UserID}, airlock.ErrorMessage(err))
	}
	tok, err := s.storeHTTPToken(ctx, a.User, a.Grant, a.Resource, true, a.Grant.EndsAt, source, "")
	if err != nil {
		return "", nil, "", err
	}
	a.TokenExpiresAt = a.Grant.EndsAt
	return tok, a, c.Next, nil
}

// AuthenticateHTTP validates an app token for resource and returns what it
// opens. It audits nothing (the gateway asks on every session's start and
// again every few seconds; anyone can send a token): the gateway audits the
// sessions. A token that no longer opens anything gets an EUNAUTHORIZED
// error whose Details "end_reason" says why (an airlock.EndReason).
func (s *Service) AuthenticateHTTP(ctx context.Context, resource, token string) (*HTTPAccess, error) {
	b, err := s.store.GetKV(ctx, kvKey(kvHTTPToken, auth.HashToken(token)), s.now())
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the token is unknown or has expired")
	}
	var t httpToken
	if json.Unmarshal(b, &t) != nil || t.Resource != resource {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the token is not for %s", resource)
	}
	a, err := s.httpAccess(ctx, t.UserID, t.GrantID, resource)
	if err != nil {
		return nil, err
	}
	a.TokenExpiresAt = t.ExpiresAt
	return a, nil
}

// CheckHTTPGrant validates, without a token, that userID's grantID still
// opens resource: the gateways ask it while a session whose token ran out
// before its grant still has a stream open. It audits nothing.
func (s *Service) CheckHTTPGrant(ctx context.Context, userID, grantID, resource string) (*HTTPAccess, error) {
	return s.httpAccess(ctx, userID, grantID, resource)
}

// RevokeHTTPToken makes an app token unusable.
func (s *Service) RevokeHTTPToken(ctx context.Context, token string) error {
	return s.store.DeleteKV(ctx, kvKey(kvHTTPToken, auth.HashToken(token)))
}

func ended(reason airlock.EndReason, format string, args ...any) error {
	e := airlock.Errorf(airlock.EUNAUTHORIZED, format, args...)
	e.Details = map[string]any{"end_reason": string(reason)}
	return e
}

// httpAccess checks that userID's grantID still opens resource now.
func (s *Service) httpAccess(ctx context.Context, userID, grantID, resource string) (*HTTPAccess, error) {
	now := s.now()
	g, err := s.store.GrantByID(ctx, grantID)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || g.UserID != userID || g.Resource != resource {
		return nil, ended(airlock.EndGrantRevoked, "the grant behind this token is gone")
	}
	if !g.ActiveAt(now) {
		if g.State == airlock.GrantRevoked {
			return nil, ended(airlock.EndGrantRevoked, "your grant for %s was revoked", resource)
		}
		return nil, ended(airlock.EndGrantExpired, "your grant for %s has ended", resource)
	}
	u, err := s.store.UserByID(ctx, userID)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || u.Disabled {
		return nil, ended(airlock.EndUserDisabled, "your account is disabled")
	}
	r, err := s.store.ResourceByName(ctx, resource)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || (r.Kind != airlock.KindHTTP && r.Kind != airlock.KindKubernetes) {
		return nil, ended(airlock.EndGrantRevoked, "the app %s is gone", resource)
	}
	d := s.decide(ctx, u, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return nil, ended(airlock.EndGrantRevoked, "policy no longer allows %s on %s", g.Access, resource)
	}
	a := &HTTPAccess{Connection: Connection{User: u, Grant: g, Resource: r, Decision: d}}
	o := Options(r)
	for _, txt := range o.Allow[g.Access] {
		rule, err := airlock.ParseHTTPRule(txt)
		if err != nil { // checked when the resource was added
			return nil, airlock.Errorf(airlock.EINTERNAL, "resource %s has an unparsable rule for %s", r.Name, g.Access)
		}
		a.Rules = append(a.Rules, rule)
	}
	if sealed := r.Credentials[g.Access]; len(sealed) > 0 {
		c, err := s.OpenCredential(r, g.Access)
		if err != nil {
			return nil, err
		}
		a.Credential = c
		a.Header = httpCredentialHeader(o.AuthHeader, c)
	}
	if r.Kind == airlock.KindKubernetes {
		if err := kubeAccess(a, o); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// httpCredentialHeader is how an http credential goes upstream: with a
// user, basic auth in Authorization; without one, the secret as a bearer
// token in Authorization, or as the whole value of the auth_header option's
// header ("X-Api-Key").
func httpCredentialHeader(header string, c *Credential) map[string]string {
	switch {
	case header != "" && !strings.EqualFold(header, "Authorization"):
		return map[string]string{header: c.Password.Reveal()}
	case c.User != "":
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(c.User+":"+c.Password.Reveal()))}
	default:
		return map[string]string{"Authorization": "Bearer " + c.Password.Reveal()}
	}
}

// checkHTTPResource validates an http resource's address and options.
func checkHTTPResource(name, addr string, o ResourceOptions, levels []string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return airlock.Errorf(airlock.EINVALID, "resource %s: addr must be the app's base URL, http://HOST:PORT or https://HOST[:PORT][/PATH]", name)
	}
	if h := o.PublicHost; h != "" {
		if strings.ContainsAny(h, ":/ ") || net.ParseIP(h) != nil || !strings.Contains(h, ".") {
			return airlock.Errorf(airlock.EINVALID, "resource %s: public_host %q must be a DNS name (no port), e.g. grafana.apps.example.com", name, h)
		}
	}
	if o.TLSCA != "" {
		if u.Scheme != "https" {
			return airlock.Errorf(airlock.EINVALID, "resource %s: a pinned CA needs an https addr", name)
		}
		if _, err := airlock.ParseCAPEM([]byte(o.TLSCA)); err != nil {
			return airlock.Errorf(airlock.EINVALID, "resource %s: %s", name, airlock.ErrorMessage(err))
		}
	}
	if h := o.AuthHeader; h != "" && strings.IndexFunc(h, func(c rune) bool {
		return !(c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z')
	}) >= 0 {
		return airlock.Errorf(airlock.EINVALID, "resource %s: auth_header %q is not a header name", name, h)
	}
	for level, rules := range o.Allow {
		if !slices.Contains(levels, level) {
			return airlock.Errorf(airlock.EINVALID, "resource %s: allow rules for %q, which is not one of its access levels", name, level)
		}
		for _, txt := range rules {
			if _, err := airlock.ParseHTTPRule(txt); err != nil {
				return airlock.Errorf(airlock.EINVALID, "resource %s: access level %s: %v", name, level, err)
			}
		}
	}
	return nil
}

// httpSpecOptions reads an http resource's options from policy: public_host,
// auth_header, levels (a list), and allow_LEVEL ("GET,HEAD /; * /api/").
func httpSpecOptions(opts map[string]string, o *ResourceOptions) {
	o.PublicHost, o.AuthHeader = opts["public_host"], opts["auth_header"]
	if l := opts["levels"]; l != "" {
		o.Levels = strings.Split(l, ",")
	}
	for k, v := range opts {
		level, ok := strings.CutPrefix(k, "allow_")
		if !ok || level == "" {
			continue
		}
		if o.Allow == nil {
			o.Allow = map[string][]string{}
		}
		for _, rule := range strings.Split(v, ";") {
			if rule = strings.TrimSpace(rule); rule != "" {
				o.Allow[level] = append(o.Allow[level], rule)
			}
		}
	}
}
