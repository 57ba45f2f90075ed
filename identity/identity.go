package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/mfa"
)

// Actions whose freshness windows are configured separately.
const (
	ActionApprove = "approve"
	ActionConnect = "connect"
	ActionFactors = "factors"
	ActionAdmin   = "admin"
	// ActionBreakGlass is self-activating emergency access; its window
	// comes from the policy rule, or this action's configured one.
	ActionBreakGlass = "break_glass"
)

// Config holds the identity service's settings.
type Config struct {
	IdleTimeout time.Duration // default 1h
	Lifetime    time.Duration // default 12h
	// Freshness maps an action to how recent the session's MFA must be.
	Freshness map[string]time.Duration
	// BootstrapTokenFile is where the one-time bootstrap token lives.
	BootstrapTokenFile string
	// LoginChallengeTTL bounds the time between password and factor.
	LoginChallengeTTL time.Duration
	// Throttle limits guessing of passwords and second factors.
	Throttle ThrottleConfig
}

// Service implements bootstrap, users, login sessions and factors.
type Service struct {
	store    airlock.Store
	audit    airlock.Auditor
	hasher   *auth.Hasher
	totp     *mfa.TOTP
	recovery *mfa.Recovery
	webauthn *mfa.WebAuthn // nil when WebAuthn is not configured
	oidc     *OIDC         // nil when SSO is not configured; set with SetOIDC
	cfg      Config
	now      func() time.Time
	log      *slog.Logger

	mu       sync.Mutex
	cache    map[string]*cachedSession // by string(token hash)
	inflight map[string]int            // password checks in flight per source address
	hooks    []func(ctx context.Context, userID, reason string)
	bootMu   sync.Mutex
	// lastPurge is when ended throttle windows were last deleted.
	lastPurge time.Time

	// Test hooks: onVerify runs before each password verification; hold,
	// when set, replaces the account-ceiling wait.
	onVerify func()
	hold     func(time.Duration)
}

type cachedSession struct {
	sess    airlock.LoginSession
	user    airlock.User
	fetched time.Time
	touched time.Time
}

// cacheTTL bounds how long a cached session is trusted before re-reading
// the store (revocations on this node invalidate the cache at once).
const cacheTTL = 2 * time.Second

// Deps are the collaborators of a Service.
type Deps struct {
	Store    airlock.Store
	Audit    airlock.Auditor
	Hasher   *auth.Hasher
	TOTP     *mfa.TOTP
	Recovery *mfa.Recovery
	WebAuthn *mfa.WebAuthn
	Now      func() time.Time
	Logger   *slog.Logger
}

// New returns a Service.
func New(d Deps, cfg Config) *Service {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 12 * time.Hour
	}
	if cfg.LoginChallengeTTL == 0 {
		cfg.LoginChallengeTTL = 5 * time.Minute
	}
	cfg.Throttle = cfg.Throttle.withDefaults()
	if cfg.Freshness == nil {
		cfg.Freshness = map[string]time.Duration{}
	}
	for _, a := range []string{ActionApprove, ActionConnect, ActionFactors, ActionAdmin} {
		if cfg.Freshness[a] == 0 {
			cfg.Freshness[a] = 5 * time.Minute
		}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store: d.Store, audit: d.Audit, hasher: d.Hasher,
		totp: d.TOTP, recovery: d.Recovery, webauthn: d.WebAuthn,
		cfg: cfg, now: d.Now, log: d.Logger, cache: map[string]*cachedSession{}, inflight: map[string]int{},
	}
}

// Principal is an authenticated caller: a user and the login session the
// request came with.
type Principal struct {
	User    *airlock.User
	Session *airlock.LoginSession
	// Source is the caller's network address.
	Source string
}

// Actor returns p as an audit actor.
func (p *Principal) Actor() airlock.Actor {
	return airlock.Actor{ID: p.User.ID, Name: p.User.Name}
}

// OnDisable registers a hook run when a user is disabled (the access
// service revokes grants and cuts sessions through it).
func (s *Service) OnDisable(hook func(ctx context.Context, userID, reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// Freshness returns the configured MFA window for action.
func (s *Service) Freshness(action string) time.Duration { return s.cfg.Freshness[action] }

// record writes an audit event and returns an error that refuses the
// caller's action if the log could not take it (audit.Record).
func (s *Service) record(ctx context.Context, e airlock.Event) error {
	return audit.Record(ctx, s.audit, s.log, e)
}

// change announces a state change with e and makes it with apply, or
// retracts e when apply fails (audit.Change: the one path for every
// audited change).
func (s *Service) change(ctx context.Context, e airlock.Event, apply func(ctx context.Context) error) error {
	return audit.Change(ctx, s.audit, s.log, e, apply)
}

// ---- bootstrap ----

// BootstrapPending reports whether the server has no users yet.
func (s *Service) BootstrapPending(ctx context.Context) (bool, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return false, err
	}
	return n == 0, nil
}

// EnsureBootstrapToken writes a fresh one-time token to the bootstrap file
// when there are no users and no token file yet. It reports whether it
// wrote one.
func (s *Service) EnsureBootstrapToken(ctx context.Context) (bool, error) {
	pending, err := s.BootstrapPending(ctx)
	if err != nil || !pending {
		return false, err
	}
	if _, err := os.Stat(s.cfg.BootstrapTokenFile); err == nil {
		return false, nil
	}
	tok, _ := auth.NewToken("boot")
	if err := os.WriteFile(s.cfg.BootstrapTokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// Bootstrap creates the first admin when token matches the bootstrap file,
// then removes the file. Errors: EFORBIDDEN (no bootstrap pending or wrong
// token), EINVALID (bad name or password), EUNAVAILABLE (audit down).
func (s *Service) Bootstrap(ctx context.Context, token, name, password, source string) (*airlock.User, error) {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	want, err := os.ReadFile(s.cfg.BootstrapTokenFile)
	pending, perr := s.BootstrapPending(ctx)
	if perr != nil {
		return nil, perr
	}
	if err != nil || !pending || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(string(want))), []byte(strings.TrimSpace(token))) != 1 {
		s.record(ctx, airlock.Event{Actor: airlock.Actor{Name: name}, Action: "user.bootstrap", SourceAddr: source, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("reason", "no bootstrap pending or wrong token")})
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "bootstrap refused: no bootstrap is pending or the token does not match %s", "DATA_DIR/bootstrap.token")
	}
	u, err := s.createUser(ctx, airlock.SystemActor, name, password, []string{airlock.GroupAdmins}, source, "user.bootstrap")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(s.cfg.BootstrapTokenFile); err != nil {
		s.log.Warn("could not remove bootstrap token file", "err", err)
	}
	return u, nil
}

// ---- users ----

// ValidName reports whether name is an acceptable user or group name.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '_' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

func (s *Service) createUser(ctx context.Context, actor airlock.Actor, name, password string, groups []string, source, action string) (*airlock.User, error) {
	if !ValidName(name) {
		return nil, airlock.Errorf(airlock.EINVALID, "invalid user name %q: use 1-64 lower-case letters, digits, '-', '_' or '.'", name)
	}
	for _, g := range groups {
		if !ValidName(g) {
			return nil, airlock.Errorf(airlock.EINVALID, "invalid group name %q", g)
		}
	}
	var hash string
	if password != "" {
		if err := auth.CheckPassword(password); err != nil {
			return nil, err
		}
		h, err := s.hasher.Hash(ctx, password)
		if err != nil {
			return nil, err
		}
		hash = h
	}
	if _, err := s.store.UserByName(ctx, name); err == nil {
		return nil, airlock.Errorf(airlock.ECONFLICT, "user %q already exists", name)
	}
	now := s.now().UTC()
	u := &airlock.User{ID: airlock.NewID("usr"), Name: name, PasswordHash: hash, Groups: groups, CreatedAt: now, UpdatedAt: now}
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if err := s.change(ctx, airlock.Event{Actor: actor, Action: action, SourceAddr: source,
		Details: airlock.EventDetails("user", name, "user_id", u.ID, "groups", u.Groups)},
		func(ctx context.Context) error { return s.store.CreateUser(ctx, u) }); err != nil {
		return nil, err
	}
	return u, nil
}

// CreateUser adds a user. Requires an admin with fresh MFA.
func (s *Service) CreateUser(ctx context.Context, p *Principal, name, password string, groups []string) (*airlock.User, error) {
	if err := s.RequireAdmin(p); err != nil {
		return nil, err
	}
	return s.createUser(ctx, p.Actor(), name, password, groups, p.Source, "user.created")
}

// ListUsers returns all users. Requires an admin.
func (s *Service) ListUsers(ctx context.Context, p *Principal) ([]*airlock.User, error) {
	if err := s.RequireEnrolled(p); err != nil {
		return nil, err
	}
	if !p.User.IsAdmin() {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "listing users needs the %s group", airlock.GroupAdmins)
	}
	return s.store.ListUsers(ctx)
}

// ListGroups returns groups with their members. Requires an admin.
func (s *Service) ListGroups(ctx context.Context, p *Principal) (map[string][]string, error) {
	if err := s.RequireEnrolled(p); err != nil {
		return nil, err
	}
	if !p.User.IsAdmin() {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "listing groups needs the %s group", airlock.GroupAdmins)
	}
	return s.store.ListGroups(ctx)
}

// SetDisabled disables or enables a user. Disabling ends their login
// sessions at once and runs the OnDisable hooks (grants, live sessions).
func (s *Service) SetDisabled(ctx context.Context, p *Principal, name string, disabled bool) error {
	if err := s.RequireAdmin(p); err != nil {
		return err
	}
	u, err := s.store.UserByName(ctx, name)
	if err != nil {
		return err
	}
	if disabled && u.ID == p.User.ID {
		return airlock.Errorf(airlock.EINVALID, "you cannot disable yourself")
	}
	action := "user.enabled"
	if disabled {
		action = "user.disabled"
	}
	u.Disabled = disabled
	u.UpdatedAt = s.now().UTC()
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: action, SourceAddr: p.Source, Details: airlock.EventDetails("user", name, "user_id", u.ID)},
		func(ctx context.Context) error { return s.store.UpdateUser(ctx, u) }); err != nil {
		return err
	}
	if disabled {
		s.endUserSessions(ctx, u.ID)
		s.mu.Lock()
		hooks := append([]func(context.Context, string, string){}, s.hooks...)
		s.mu.Unlock()
		for _, h := range hooks {
			h(ctx, u.ID, "user disabled")
		}
	}
	return nil
}

func (s *Service) endUserSessions(ctx context.Context, userID string) {
	n, err := s.store.RevokeUserLoginSessions(ctx, userID, s.now().UTC())
	if err != nil {
		s.log.Error("revoke login sessions", "user_id", userID, "err", err)
	}
	s.mu.Lock()
	for k, c := range s.cache {
		if c.user.ID == userID {
			delete(s.cache, k)
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.record(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "session.revoked", Details: airlock.EventDetails("user_id", userID, "count", n, "reason", "user disabled")})
	}
}

// ---- authorization helpers ----

// RequireEnrolled refuses callers who have not enrolled a second factor yet.
func (s *Service) RequireEnrolled(p *Principal) error {
	if p.Session.MFAAt.IsZero() {
		return &airlock.Error{Code: airlock.EFORBIDDEN,
			Message: "enroll a second factor first: run `airlock mfa add totp` (or `airlock mfa add webauthn`)",
			Details: map[string]any{"reason": "mfa_enrollment_required"}}
	}
	return nil
}

// RequireFresh returns an mfa_required error when p's last second factor
// is older than the window for action.
func (s *Service) RequireFresh(p *Principal, action string) error {
	return s.RequireFreshWithin(p, action, s.cfg.Freshness[action], nil)
}

// RequireFreshWithin is RequireFresh with an explicit window (from policy)
// and, when methods is non-empty, a list of MFA methods that count.
func (s *Service) RequireFreshWithin(p *Principal, action string, window time.Duration, methods []string) error {
	if err := s.RequireEnrolled(p); err != nil {
		return err
	}
	if window <= 0 {
		window = s.cfg.Freshness[action]
	}
	age := s.now().Sub(p.Session.MFAAt)
	methodOK := len(methods) == 0
	for _, m := range methods {
		if m == p.Session.MFAMethod {
			methodOK = true
		}
	}
	if age <= window && methodOK {
		return nil
	}
	msg := "this action needs a fresh second factor: run `airlock mfa verify` (or pass --otp CODE)"
	if !methodOK {
		msg = "this action needs a phishing-resistant factor (passkey or security key): run `airlock mfa verify --web`"
	}
	return &airlock.Error{Code: airlock.EMFAREQUIRED, Message: msg,
		Details: map[string]any{"action": action, "window_seconds": int(window.Seconds()), "methods": methods}}
}

// RequireAdmin refuses non-admins and admins without fresh MFA.
func (s *Service) RequireAdmin(p *Principal) error {
	if err := s.RequireEnrolled(p); err != nil {
		return err
	}
	if !p.User.IsAdmin() {
		return airlock.Errorf(airlock.EFORBIDDEN, "this needs the %s group", airlock.GroupAdmins)
	}
	return s.RequireFresh(p, ActionAdmin)
}

// RequireAuditReader refuses callers who may not read the audit log: only
// admins and members of airlock.GroupAuditors may (list, follow, export,
// verify, and the console's audit page).
func (s *Service) RequireAuditReader(p *Principal) error {
	if p.User.IsAdmin() || p.User.InGroup(airlock.GroupAuditors) {
		return nil
	}
	return airlock.Errorf(airlock.EFORBIDDEN, "reading the audit log needs the %s or %s group", airlock.GroupAdmins, airlock.GroupAuditors)
}

var errInvalidLogin = airlock.Errorf(airlock.EUNAUTHORIZED, "invalid user name, password or code")

// IsInvalidLogin reports whether err is the generic login failure.
func IsInvalidLogin(err error) bool { return errors.Is(err, errInvalidLogin) }
