package access

import (
	"context"
	"crypto/subtle"
	"errors"
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
	// Kind is the resource's kind (postgres, mysql): which gateway the
	// token is for.
	Kind string `json:"kind,omitempty"`
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
// given) and checks MFA freshness for connecting under it. su, when set,
// is always verified first, however fresh p's MFA is. Every refusal is
// audited as connect.refused with its reason. Errors: ENOTFOUND (unknown
// resource), EFORBIDDEN (no grant, policy no longer allows it),
// EMFAREQUIRED, EUNAUTHORIZED (wrong otp), ELOCKED.
func (s *Service) AuthorizeConnect(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp) (*airlock.Grant, *airlock.Resource, policy.Decision, error) {
	var d policy.Decision
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, nil, d, err
	}
	refuse := func(g *airlock.Grant, why string, err error) (*airlock.Grant, *airlock.Resource, policy.Decision, error) {
		e := airlock.Event{Actor: p.Actor(), Action: "connect.refused", Resource: clip(resource), SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("access", clip(access), "why", why)}
		if g != nil {
			e.GrantID, e.RequestID = g.ID, g.RequestID
		}
		s.record(ctx, e)
		return nil, nil, d, err
	}
	r, err := s.resourceFor(ctx, p.User, resource)
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return refuse(nil, "unknown resource", err)
		}
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
		return refuse(nil, "no active grant", noGrant(r, access))
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].EndsAt.After(cands[j].EndsAt) })
	g := cands[0]
	d = s.decide(ctx, p.User, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return refuse(g, "policy no longer allows it: "+d.Reason,
			airlock.Errorf(airlock.EFORBIDDEN, "policy no longer allows %s on %s: %s", g.Access, r.Name, d.Reason))
	}
	if d.Statements != nil && r.Kind != airlock.KindPostgres {
		// Fail closed: guardrails no gateway of this kind enforces would
		// be a promise nobody keeps.
		return refuse(g, "statement rules on a "+r.Kind+" resource",
			airlock.Errorf(airlock.EFORBIDDEN, "rule %s has statement rules, which only the PostgreSQL gateway enforces; %s is a %s resource", d.Rule, r.Name, r.Kind))
	}
	if err := s.ident.VerifyStepUp(ctx, p, su); err != nil {
		return refuse(g, "the MFA code was not accepted: "+airlock.ErrorMessage(err), err)
	}
	if err := s.ident.RequireFreshWithin(p, identity.ActionConnect, d.Freshness.Connect, factorMethods(d.Factors)); err != nil {
		return refuse(g, "MFA not fresh enough to connect: "+airlock.ErrorMessage(err), err)
	}
	return g, r, d, nil
}

// MintConnectToken issues a connect token for p's grant on resource.
func (s *Service) MintConnectToken(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp) (*ConnectToken, error) {
	g, r, d, err := s.AuthorizeConnect(ctx, p, resource, access, su)
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
		SourceAddr: p.Source, Details: airlock.EventDetails("uses", uses, "expires_at", ct.ExpiresAt, "mfa_method", p.Session.MFAMethod)},
		func(ctx context.Context) error { return s.store.CreateConnectToken(ctx, ct) }); err != nil {
		return nil, err
	}
	return &ConnectToken{Token: tok, ExpiresAt: ct.ExpiresAt, Uses: uses, GrantID: g.ID, Resource: r.Name, Access: g.Access,
		User: p.User.Name, GrantEnds: g.EndsAt, Database: Options(r).Database, Kind: r.Kind}, nil
}

// Connection is what a consumed connect token opens.
type Connection struct {
	User       *airlock.User
	Grant      *airlock.Grant
	Resource   *airlock.Resource
	Decision   policy.Decision
	Credential *Credential // nil for kinds without brokered secrets
	// Database is the upstream database to open (postgres): the one the
	// client named, checked against Databases, or the resource's own.
	Database string
	// Ephemeral is set when Credential is the grant's own database role
	// (a resource with ephemeral credentials).
	Ephemeral bool
}

var errBadToken = airlock.Errorf(airlock.EUNAUTHORIZED, "invalid or expired connect token")

// ConsumeConnectToken validates and uses a connect token presented by a
// gateway client as userName for resourceName and, for postgres, the
// upstream database the client named ("" for the resource's own). Every
// failure returns the same error; the reason is audited. The exception is
// a database the resource does not open (see Databases): for a live token
// that is refused before the token is used, with an EFORBIDDEN error whose
// Details reason is "database_not_allowed" and whose message names the
// databases allowed.
func (s *Service) ConsumeConnectToken(ctx context.Context, userName, resourceName, database, token, source string) (*Connection, error) {
	return s.consumeConnectToken(ctx, userName, resourceName, database, auth.HashToken(token), source, "")
}

// IsDatabaseRefused reports whether err is ConsumeConnectToken's refusal
// of a database the resource does not open.
func IsDatabaseRefused(err error) bool {
	var e *airlock.Error
	return errors.As(err, &e) && e.Code == airlock.EFORBIDDEN && e.Details["reason"] == "database_not_allowed"
}

// refuseDatabase audits and returns the refusal of database on r for a
// holder of a valid token for grantID.
func (s *Service) refuseDatabase(ctx context.Context, u *airlock.User, r *airlock.Resource, grantID, database, source string) error {
	allowed := Databases(r)
	shown := database
	if len(shown) > maxDatabaseName+1 {
		shown = shown[:maxDatabaseName+1] + "…"
	}
	if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "connect.refused", Resource: r.Name, GrantID: grantID,
		SourceAddr: source, Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", "database not allowed", "database", shown, "allowed", allowed)}); err != nil {
		return err
	}
	return &airlock.Error{Code: airlock.EFORBIDDEN,
		Message: fmt.Sprintf("resource %s does not open database %q (allowed: %s); connect to one of those, or ask an administrator to add it to the resource's databases",
			r.Name, shown, strings.Join(allowed, ", ")),
		Details: map[string]any{"reason": "database_not_allowed", "resource": r.Name, "allowed": allowed}}
}

// liveToken returns userName's live connect token for resourceName with
// hash, without using it, or nil.
func (s *Service) liveToken(ctx context.Context, userName, resourceName string, hash []byte, now time.Time) (*airlock.User, *airlock.ConnectToken) {
	if len(hash) == 0 {
		return nil, nil
	}
	u, err := s.store.UserByName(ctx, userName)
	if err != nil || u.Disabled {
		return nil, nil
	}
	toks, err := s.store.LiveConnectTokens(ctx, u.ID, resourceName, now)
	if err != nil {
		return nil, nil
	}
	for _, t := range toks {
		if subtle.ConstantTimeCompare(t.TokenHash, hash) == 1 {
			return u, t
		}
	}
	return nil, nil
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
func (s *Service) ConsumeSCRAMToken(ctx context.Context, userName, resourceName, database string, c *SCRAMCandidates, match int, source string) (*Connection, error) {
	if c == nil || match < 0 || match >= len(c.hashes) {
		return s.consumeConnectToken(ctx, userName, resourceName, database, nil, source, "SCRAM proof matched no live token")
	}
	return s.consumeConnectToken(ctx, userName, resourceName, database, c.hashes[match], source, "")
}

// consumeConnectToken uses the token with hash; refusal, when not empty,
// refuses at once with that audited reason.
func (s *Service) consumeConnectToken(ctx context.Context, userName, resourceName, database string, hash []byte, source, refusal string) (*Connection, error) {
	// During a store outage every answer is the outage, for valid and
	// invalid tokens alike: the token could not be checked, and a refusal
	// that cannot be audited is not given.
	refuse := func(why string) (*Connection, error) {
		if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{Name: userName}, Action: "connect.refused", Resource: resourceName, SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", why)}); err != nil {
			return nil, err
		}
		return nil, errBadToken
	}
	if refusal != "" {
		return refuse(refusal)
	}
	now := s.now()
	// A database the resource does not open is refused before the token
	// is used, so that its holder can retry with one it does.
	r, rerr := s.store.ResourceByName(ctx, resourceName)
	if airlock.Unavailable(rerr) {
		return nil, airlock.AsUnavailable(rerr) // before the token is used up
	}
	if rerr == nil && airlock.IsDatabaseKind(r.Kind) {
		if _, ok := OpenDatabase(r, database); !ok {
			if u, t := s.liveToken(ctx, userName, resourceName, hash, now); t != nil {
				return nil, s.refuseDatabase(ctx, u, r, t.GrantID, database, source)
			}
		}
	}
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
	if rerr != nil {
		return refuse("resource gone")
	}
	d := s.decide(ctx, u, r, g.Access, 0, g.BreakGlass)
	if !d.Allowed {
		return refuse("policy no longer allows it")
	}
	c := &Connection{User: u, Grant: g, Resource: r, Decision: d}
	if airlock.IsDatabaseKind(r.Kind) {
		db, ok := OpenDatabase(r, database)
		if !ok { // checked above too; this holds if the token was not live then
			return nil, s.refuseDatabase(ctx, u, r, g.ID, database, source)
		}
		c.Database = db
		if IsEphemeral(r) {
			cred, err := s.ensureDBRole(ctx, g, r)
			if err != nil {
				s.log.Error("database role for connect", "grant", g.ID, "resource", r.Name, "err", err)
				if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "connect.refused", Resource: r.Name, GrantID: g.ID,
					SourceAddr: source, Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", "database role unavailable")}); err != nil {
					return nil, err
				}
				return nil, errDBRole(r, g)
			}
			c.Credential, c.Ephemeral = cred, true
			return c, nil
		}
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
	r, err := s.resourceFor(ctx, u, resourceName)
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

// KillResult says what KillSession did.
type KillResult struct {
	ID string `json:"killed"`
	// Node is the node that held the session.
	Node string `json:"node,omitempty"`
	// Ended reports that no live node held the session (its node stopped
	// without ending it), so KillSession ended the record itself, with
	// end reason EndReason (node_lost). When false, the kill went to the
	// gateways over the revocation bus and the holder ends it.
	Ended     bool              `json:"ended_record,omitempty"`
	EndReason airlock.EndReason `json:"end_reason,omitempty"`
}

// KillSession ends a live gateway session (admins, or the session's user).
// A session no live node holds — its node has not beaten for the liveness
// LostAfter, or never did — is a ghost: nothing on the wire to cut, so its
// record is ended here, as node_lost, and the result says so. Errors:
// ENOTFOUND, ECONFLICT when the session already ended, EUNAVAILABLE when
// the audit log cannot be written.
func (s *Service) KillSession(ctx context.Context, p *identity.Principal, id string) (*KillResult, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	ss, err := s.store.SessionByID(ctx, id)
	if err != nil || (ss.UserID != p.User.ID && !p.User.IsAdmin()) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no session %q; run `airlock sessions --active`", id)
	}
	if p.User.IsAdmin() && ss.UserID != p.User.ID {
		if err := s.ident.RequireFresh(p, identity.ActionAdmin); err != nil {
			return nil, err
		}
	}
	if !ss.Active() {
		return nil, airlock.Errorf(airlock.ECONFLICT, "session %s already ended at %s (%s)", id, ss.EndedAt.UTC().Format(time.RFC3339), ss.EndReason)
	}
	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "session.killed", Resource: ss.Resource, GrantID: ss.GrantID, SessionID: ss.ID,
		SourceAddr: p.Source, Details: airlock.EventDetails("node", ss.Node)}); err != nil {
		return nil, err
	}
	res := &KillResult{ID: id, Node: ss.Node}
	if f, ok := s.lostFilter(); ok {
		f.SessionID = id
		if ended := s.endLost(ctx, f, "killed by "+p.User.Name+"; no live node held it"); len(ended) == 1 {
			res.Ended, res.EndReason = true, airlock.EndNodeLost
			return res, nil
		}
	}
	s.bus.Publish(airlock.Revocation{SessionID: id, Reason: airlock.EndSessionKilled, By: p.User.Name, Detail: "session killed by " + p.User.Name})
	return res, nil
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
