package access

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
)

// ConnectTokenTTL is how long a connect token can open connections.
const ConnectTokenTTL = 60 * time.Second

// ConnectToken is a freshly minted token, shown once to its user.
type ConnectToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Uses      int       `json:"uses"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	Access    string    `json:"access"`
	User      string    `json:"user"`
	GrantEnds time.Time `json:"grant_ends_at"`
	Database  string    `json:"database,omitempty"`
}

// noGrant is the error for connecting without a grant; its details let the
// CLI offer to file a request.
func noGrant(r *airlock.Resource, access string) error {
	hint := access
	if hint == "" {
		levels := sortedLevels(r)
		hint = strings.Join(levels, "|")
	}
	return &airlock.Error{Code: airlock.EFORBIDDEN,
		Message: fmt.Sprintf("you have no active grant for %s; request one: airlock request %s --access %s --for 1h --reason \"…\"", r.Name, r.Name, hint),
		Details: map[string]any{"reason": "no_grant", "resource": r.Name}}
}

// AuthorizeConnect finds p's active grant for resource (at access, when
// given) and checks MFA freshness for connecting under it.
func (s *Service) AuthorizeConnect(ctx context.Context, p *identity.Principal, resource, access, otp string) (*airlock.Grant, *airlock.Resource, policy.Decision, error) {
	var d policy.Decision
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, nil, d, err
	}
	r, err := s.resource(ctx, resource)
	if err != nil {
		return nil, nil, d, err
	}
	gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{UserID: p.User.ID, Resource: r.Name, ActiveAt: s.now()})
	if err != nil {
		return nil, nil, d, err
	}
	var cands []*airlock.Grant
	for _, g := range gs {
		if g.ActiveAt(s.now()) && (access == "" || g.Access == access) {
			cands = append(cands, g)
		}
	}
	if len(cands) == 0 {
		return nil, nil, d, noGrant(r, access)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].EndsAt.After(cands[j].EndsAt) })
	g := cands[0]
	d = s.decide(ctx, p.User, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return nil, nil, d, airlock.Errorf(airlock.EFORBIDDEN, "policy no longer allows %s on %s: %s", g.Access, r.Name, d.Reason)
	}
	if otp != "" {
		if _, err := s.ident.VerifyMFA(ctx, p, identity.FactorInput{OTP: otp}); err != nil {
			return nil, nil, d, err
		}
	}
	if err := s.ident.RequireFreshWithin(p, identity.ActionConnect, d.Freshness.Connect, factorMethods(d.Factors)); err != nil {
		return nil, nil, d, err
	}
	return g, r, d, nil
}

// MintConnectToken issues a connect token for p's grant on resource.
func (s *Service) MintConnectToken(ctx context.Context, p *identity.Principal, resource, access, otp string) (*ConnectToken, error) {
	g, r, d, err := s.AuthorizeConnect(ctx, p, resource, access, otp)
	if err != nil {
		return nil, err
	}
	uses := d.Session.TokenUses
	if uses < 1 {
		uses = 1
	}
	now := s.now().UTC()
	tok, hash := auth.NewToken("ct")
	ct := &airlock.ConnectToken{TokenHash: hash, UserID: p.User.ID, GrantID: g.ID, Resource: r.Name, ExpiresAt: now.Add(ConnectTokenTTL), UsesLeft: uses, CreatedAt: now}
	if r.Kind == airlock.KindPostgres {
		v := auth.NewSCRAMVerifier(tok, auth.SCRAMSalt(p.User.ID, r.Name), auth.SCRAMIterations)
		ct.SCRAMStoredKey, ct.SCRAMServerKey = v.StoredKey, v.ServerKey
	}
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "connect.token_issued", Resource: r.Name, GrantID: g.ID, RequestID: g.RequestID,
		SourceAddr: p.Source, Details: details("uses", uses, "expires_at", ct.ExpiresAt, "mfa_method", p.Session.MFAMethod)},
		func(ctx context.Context) error { return s.store.CreateConnectToken(ctx, ct) }); err != nil {
		return nil, err
	}
	return &ConnectToken{Token: tok, ExpiresAt: ct.ExpiresAt, Uses: uses, GrantID: g.ID, Resource: r.Name, Access: g.Access,
		User: p.User.Name, GrantEnds: g.EndsAt, Database: Options(r).Database}, nil
}

// Connection is what a consumed connect token opens.
type Connection struct {
	User       *airlock.User
	Grant      *airlock.Grant
	Resource   *airlock.Resource
	Decision   policy.Decision
	Credential *Credential // nil for kinds without brokered secrets
}

var errBadToken = airlock.Errorf(airlock.EUNAUTHORIZED, "invalid or expired connect token")

// ConsumeConnectToken validates and uses a connect token presented by a
// gateway client as userName for resourceName. Every failure returns the
// same error; the reason is audited.
func (s *Service) ConsumeConnectToken(ctx context.Context, userName, resourceName, token, source string) (*Connection, error) {
	return s.consumeConnectToken(ctx, userName, resourceName, auth.HashToken(token), source, "")
}

// SCRAMCandidates are the live connect tokens a SCRAM-SHA-256 proof for
// one user and resource is checked against.
type SCRAMCandidates struct {
	Salt       []byte
	Iterations int
	Verifiers  []auth.SCRAMVerifier
	hashes     [][]byte
}

// SCRAMCandidates returns the salt and verifiers of userName's live tokens
// for resourceName. An unknown user gets a salt all the same and no
// verifiers, so the exchange fails only at the proof, like a wrong token.
func (s *Service) SCRAMCandidates(ctx context.Context, userName, resourceName string) (*SCRAMCandidates, error) {
	c := &SCRAMCandidates{Iterations: auth.SCRAMIterations}
	u, err := s.store.UserByName(ctx, userName)
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			c.Salt = auth.SCRAMSalt("unknown user "+userName, resourceName)
			return c, nil
		}
		return nil, err
	}
	c.Salt = auth.SCRAMSalt(u.ID, resourceName)
	toks, err := s.store.LiveConnectTokens(ctx, u.ID, resourceName, s.now())
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if len(t.SCRAMStoredKey) > 0 {
			c.Verifiers = append(c.Verifiers, auth.SCRAMVerifier{StoredKey: t.SCRAMStoredKey, ServerKey: t.SCRAMServerKey})
			c.hashes = append(c.hashes, t.TokenHash)
		}
	}
	return c, nil
}

// ConsumeSCRAMToken uses the token whose verifier (index match in c)
// accepted the client's SCRAM proof, exactly as ConsumeConnectToken uses a
// token sent in the clear. match < 0 (no verifier accepted the proof) is
// audited and refused.
func (s *Service) ConsumeSCRAMToken(ctx context.Context, userName, resourceName string, c *SCRAMCandidates, match int, source string) (*Connection, error) {
	if c == nil || match < 0 || match >= len(c.hashes) {
		return s.consumeConnectToken(ctx, userName, resourceName, nil, source, "SCRAM proof matched no live token")
	}
	return s.consumeConnectToken(ctx, userName, resourceName, c.hashes[match], source, "")
}

// consumeConnectToken uses the token with hash; refusal, when not empty,
// refuses at once with that audited reason.
func (s *Service) consumeConnectToken(ctx context.Context, userName, resourceName string, hash []byte, source, refusal string) (*Connection, error) {
	// During a store outage every answer is the outage, for valid and
	// invalid tokens alike: the token could not be checked, and a refusal
	// that cannot be audited is not given.
	refuse := func(why string) (*Connection, error) {
		if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{Name: userName}, Action: "connect.refused", Resource: resourceName, SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: details("why", why)}); err != nil {
			return nil, err
		}
		return nil, errBadToken
	}
	if refusal != "" {
		return refuse(refusal)
	}
	now := s.now()
	t, err := s.store.UseConnectToken(ctx, hash, now)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil {
		return refuse("unknown, used up or expired token")
	}
	u, err := s.store.UserByName(ctx, userName)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || u.ID != t.UserID {
		return refuse("token belongs to another user")
	}
	if u.Disabled {
		return refuse("user disabled")
	}
	if t.Resource != resourceName {
		return refuse("token is for another resource")
	}
	g, err := s.store.GrantByID(ctx, t.GrantID)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || !g.ActiveAt(now) {
		return refuse("grant not active")
	}
	r, err := s.store.ResourceByName(ctx, resourceName)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil {
		return refuse("resource gone")
	}
	d := s.decide(ctx, u, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return refuse("policy no longer allows it")
	}
	c := &Connection{User: u, Grant: g, Resource: r, Decision: d}
	if r.Kind == airlock.KindPostgres {
		cred, err := s.OpenCredential(r, g.Access)
		if err != nil {
			return refuse("no brokered credential for access level")
		}
		c.Credential = cred
	}
	return c, nil
}

// AuthorizeSSH checks that userName's grantID is active on resource and
// allows login. It is what the SSH gateway asks after verifying the user's
// certificate.
func (s *Service) AuthorizeSSH(ctx context.Context, userName, grantID, resourceName, login string) (*Connection, error) {
	now := s.now()
	u, err := s.store.UserByName(ctx, userName)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || u.Disabled {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "unknown or disabled user")
	}
	r, err := s.resource(ctx, resourceName)
	if err != nil {
		return nil, err
	}
	if r.Kind != airlock.KindSSH {
		return nil, airlock.Errorf(airlock.EINVALID, "%s is a %s resource, not ssh", r.Name, r.Kind)
	}
	g, err := s.store.GrantByID(ctx, grantID)
	if airlock.Unavailable(err) {
		return nil, airlock.AsUnavailable(err)
	}
	if err != nil || g.UserID != u.ID || g.Resource != r.Name || !g.ActiveAt(now) {
		return nil, noGrant(r, login)
	}
	if g.Access != login {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "your grant on %s is for login %q, not %q", r.Name, g.Access, login)
	}
	d := s.decide(ctx, u, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "policy does not allow login %q on %s: %s", login, r.Name, d.Reason)
	}
	return &Connection{User: u, Grant: g, Resource: r, Decision: d}, nil
}

// ListSessions returns gateway sessions: p's own, or everyone's for admins.
func (s *Service) ListSessions(ctx context.Context, p *identity.Principal, active bool) ([]*airlock.Session, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	f := airlock.SessionFilter{Active: active, Limit: 500}
	if !p.User.IsAdmin() {
		f.UserID = p.User.ID
	}
	ss, err := s.store.ListSessions(ctx, f)
	if ss == nil {
		ss = []*airlock.Session{}
	}
	return ss, err
}

// KillSession ends a live gateway session (admins, or the session's user).
func (s *Service) KillSession(ctx context.Context, p *identity.Principal, id string) error {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return err
	}
	ss, err := s.store.SessionByID(ctx, id)
	if err != nil || (ss.UserID != p.User.ID && !p.User.IsAdmin()) {
		return airlock.Errorf(airlock.ENOTFOUND, "no session %q; run `airlock sessions --active`", id)
	}
	if p.User.IsAdmin() && ss.UserID != p.User.ID {
		if err := s.ident.RequireFresh(p, identity.ActionAdmin); err != nil {
			return err
		}
	}
	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "session.killed", Resource: ss.Resource, GrantID: ss.GrantID, SessionID: ss.ID,
		SourceAddr: p.Source}); err != nil {
		return err
	}
	s.bus.Publish(Revocation{SessionID: id, Reason: airlock.EndSessionKilled, Detail: "session killed by " + p.User.Name})
	return nil
}

// Session returns one session visible to p.
func (s *Service) Session(ctx context.Context, p *identity.Principal, id string) (*airlock.Session, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	ss, err := s.store.SessionByID(ctx, id)
	if err != nil || (ss.UserID != p.User.ID && !p.User.IsAdmin()) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no session %q", id)
	}
	return ss, nil
}
