package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
)

// MethodPush is the MFA method of a push approved on a registered device.
const MethodPush = "push"

// Push challenge purposes.
const (
	PushLogin  = "login"
	PushStepUp = "step-up"
)

// Push challenge states.
const (
	PushPending  = "pending"
	PushApproved = "approved"
	PushDenied   = "denied"
	PushExpired  = "expired"
)

// PushConfig holds the push factor's settings.
type PushConfig struct {
	// TTL is how long a device has to answer (default 60 s).
	TTL time.Duration
	// MaxPerWindow pushes per user within Window (default 3 per 5 min)
	// limit MFA fatigue attacks.
	MaxPerWindow int
	Window       time.Duration
}

// PushChallenge is one push: the requesting screen shows Number, the
// device shows Choices (Number among them) and the user taps the match.
type PushChallenge struct {
	ID        string    `json:"id"`
	UserID    string    `json:"-"`
	UserName  string    `json:"user"`
	Purpose   string    `json:"purpose"`
	Source    string    `json:"source"`
	Number    int       `json:"-"`
	Choices   []int     `json:"choices"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	State     string    `json:"state"`
	// sessionID binds a step-up push to the login session that asked.
	sessionID string
	used      bool
}

// Push delivers push challenges to a user's registered devices and
// collects their answers. Its state is kept in memory: push works on a
// single server node (a challenge begun on one node must be answered on
// the same node). It is safe for concurrent use.
type Push struct {
	s   *Service
	cfg PushConfig

	mu     sync.Mutex
	byID   map[string]*PushChallenge
	recent map[string][]time.Time // userID -> issue times within Window
	subs   map[string]map[chan PushChallenge]struct{}
}

// NewPush returns the push factor of s.
func (s *Service) NewPush(cfg PushConfig) *Push {
	if cfg.TTL == 0 {
		cfg.TTL = 60 * time.Second
	}
	if cfg.MaxPerWindow == 0 {
		cfg.MaxPerWindow = 3
	}
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	return &Push{s: s, cfg: cfg, byID: map[string]*PushChallenge{}, recent: map[string][]time.Time{},
		subs: map[string]map[chan PushChallenge]struct{}{}}
}

type pushDevice struct {
	DeviceHash string `json:"device_hash"` // hex SHA-256 of the device token
}

// RegisterDevice makes the browser p is using a push device. The session
// must have signed in (or stepped up) with a passkey or security key
// within the factor-change window. It returns the new factor and the
// device token, a secret the browser keeps in an HttpOnly cookie.
// Errors: EMFAREQUIRED, EUNAVAILABLE.
func (ps *Push) RegisterDevice(ctx context.Context, p *Principal, name string) (*airlock.Factor, string, error) {
	if err := ps.s.RequireFreshWithin(p, ActionFactors, 0, PhishingResistant); err != nil {
		return nil, "", err
	}
	if name == "" {
		name = "browser"
	}
	tok, hash := auth.NewToken("dev")
	data, _ := json.Marshal(pushDevice{DeviceHash: hex.EncodeToString(hash)})
	now := ps.s.now().UTC()
	f := &airlock.Factor{ID: airlock.NewID("mf"), UserID: p.User.ID, Kind: airlock.FactorPush, Name: name, Status: airlock.FactorActive,
		Data: data, CreatedAt: now}
	if err := ps.s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.enrolled", SourceAddr: p.Source,
		Details: details("kind", airlock.FactorPush, "factor_id", f.ID, "name", name)}); err != nil {
		return nil, "", err
	}
	if err := ps.s.store.CreateFactor(ctx, f); err != nil {
		return nil, "", err
	}
	return f, tok, nil
}

// Device returns p's active push factor whose device token is token.
// Errors: ENOTFOUND.
func (ps *Push) Device(ctx context.Context, p *Principal, token string) (*airlock.Factor, error) {
	if token == "" {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "this browser is not a push device")
	}
	want := []byte(hex.EncodeToString(auth.HashToken(token)))
	fs, err := ps.s.store.ListFactors(ctx, p.User.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if f.Kind != airlock.FactorPush || f.Status != airlock.FactorActive {
			continue
		}
		var d pushDevice
		if json.Unmarshal(f.Data, &d) == nil && subtle.ConstantTimeCompare([]byte(d.DeviceHash), want) == 1 {
			return f, nil
		}
	}
	return nil, airlock.Errorf(airlock.ENOTFOUND, "this browser is not a push device")
}

func (ps *Push) hasDevice(ctx context.Context, userID string) (bool, error) {
	fs, err := ps.s.store.ListFactors(ctx, userID)
	if err != nil {
		return false, err
	}
	for _, f := range fs {
		if f.Kind == airlock.FactorPush && f.Status == airlock.FactorActive {
			return true, nil
		}
	}
	return false, nil
}

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err)
	}
	return int(v.Int64())
}

// numbers returns three distinct two-digit numbers and the one to match.
func numbers() ([]int, int) {
	var out []int
	for len(out) < 3 {
		n := 10 + randInt(90)
		dup := false
		for _, x := range out {
			dup = dup || x == n
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out, out[randInt(3)]
}

// begin issues a challenge to u's devices after the rate limit.
func (ps *Push) begin(ctx context.Context, u *airlock.User, purpose, sessionID, source string) (*PushChallenge, error) {
	ok, err := ps.hasDevice(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, airlock.Errorf(airlock.EINVALID, "no push device is registered; add one on the console's factors page")
	}
	now := ps.s.now()
	ps.mu.Lock()
	var keep []time.Time
	for _, t := range ps.recent[u.ID] {
		if now.Sub(t) < ps.cfg.Window {
			keep = append(keep, t)
		}
	}
	if len(keep) >= ps.cfg.MaxPerWindow {
		ps.recent[u.ID] = keep
		ps.mu.Unlock()
		ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.push_rate_limited", SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: details("purpose", purpose, "max", ps.cfg.MaxPerWindow, "window_seconds", int(ps.cfg.Window.Seconds()))})
		return nil, airlock.Errorf(airlock.ELOCKED, "too many push requests; wait a few minutes or use another factor")
	}
	ps.recent[u.ID] = append(keep, now)
	ps.mu.Unlock()

	choices, n := numbers()
	c := &PushChallenge{ID: airlock.NewID("push"), UserID: u.ID, UserName: u.Name, Purpose: purpose, Source: source, Number: n,
		Choices: choices, CreatedAt: now.UTC(), ExpiresAt: now.Add(ps.cfg.TTL).UTC(), State: PushPending, sessionID: sessionID}
	if err := ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.push_sent", SourceAddr: source,
		Details: details("push_id", c.ID, "purpose", purpose)}); err != nil {
		return nil, err
	}
	ps.mu.Lock()
	ps.gc(now)
	ps.byID[c.ID] = c
	for ch := range ps.subs[u.ID] {
		select {
		case ch <- *c:
		default: // a slow device misses the live event; it sees it in Pending
		}
	}
	ps.mu.Unlock()
	return c, nil
}

// gc forgets challenges long past their expiry. Caller holds mu.
func (ps *Push) gc(now time.Time) {
	for id, c := range ps.byID {
		if now.Sub(c.ExpiresAt) > 10*time.Minute {
			delete(ps.byID, id)
		}
	}
}

// BeginLogin issues a push for the login challenge (after the password).
// Errors: EUNAUTHORIZED (challenge expired), EINVALID (no device),
// ELOCKED (rate limit), EUNAVAILABLE.
func (ps *Push) BeginLogin(ctx context.Context, challenge, source string) (*PushChallenge, error) {
	u, _, err := ps.s.challengeUser(ctx, challenge)
	if err != nil {
		return nil, err
	}
	return ps.begin(ctx, u, PushLogin, "", source)
}

// BeginStepUp issues a push to refresh p's MFA.
func (ps *Push) BeginStepUp(ctx context.Context, p *Principal) (*PushChallenge, error) {
	if err := ps.s.RequireEnrolled(p); err != nil {
		return nil, err
	}
	return ps.begin(ctx, p.User, PushStepUp, p.Session.ID, p.Source)
}

// Subscribe delivers new challenges for userID until cancel is called.
func (ps *Push) Subscribe(userID string) (<-chan PushChallenge, func()) {
	ch := make(chan PushChallenge, 8)
	ps.mu.Lock()
	if ps.subs[userID] == nil {
		ps.subs[userID] = map[chan PushChallenge]struct{}{}
	}
	ps.subs[userID][ch] = struct{}{}
	ps.mu.Unlock()
	return ch, func() {
		ps.mu.Lock()
		delete(ps.subs[userID], ch)
		if len(ps.subs[userID]) == 0 {
			delete(ps.subs, userID)
		}
		ps.mu.Unlock()
	}
}

// Pending returns userID's unanswered, unexpired challenges.
func (ps *Push) Pending(userID string) []PushChallenge {
	now := ps.s.now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []PushChallenge
	for _, c := range ps.byID {
		if c.UserID == userID && c.State == PushPending && now.Before(c.ExpiresAt) {
			out = append(out, *c)
		}
	}
	return out
}

// expire moves a pending, timed-out challenge to expired and audits it
// once. Caller must not hold mu.
func (ps *Push) expire(ctx context.Context, c *PushChallenge) {
	ps.mu.Lock()
	if c.State != PushPending || ps.s.now().Before(c.ExpiresAt) {
		ps.mu.Unlock()
		return
	}
	c.State = PushExpired
	ps.mu.Unlock()
	ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: c.UserID, Name: c.UserName}, Action: "mfa.push_timeout", SourceAddr: c.Source,
		Outcome: airlock.OutcomeFailure, Details: details("push_id", c.ID, "purpose", c.Purpose)})
}

// Answer records the device's choice for challenge id. p is the device's
// login session and deviceToken its device cookie. Picking the number the
// requesting screen shows approves; any other number denies (and the
// challenge cannot be retried). Errors: ENOTFOUND, EINVALID (answered or
// expired), EUNAUTHORIZED (wrong number).
func (ps *Push) Answer(ctx context.Context, p *Principal, deviceToken, id string, number int) error {
	dev, err := ps.Device(ctx, p, deviceToken)
	if err != nil {
		return err
	}
	ps.mu.Lock()
	c := ps.byID[id]
	if c == nil || c.UserID != p.User.ID {
		ps.mu.Unlock()
		return airlock.Errorf(airlock.ENOTFOUND, "no such push request")
	}
	ps.mu.Unlock()
	ps.expire(ctx, c)
	ps.mu.Lock()
	if c.State != PushPending {
		st := c.State
		ps.mu.Unlock()
		return airlock.Errorf(airlock.EINVALID, "this push request is already %s", st)
	}
	ok := number == c.Number
	if ok {
		c.State = PushApproved
	} else {
		c.State = PushDenied
	}
	ps.mu.Unlock()
	if ok {
		return ps.s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.push_approved", SourceAddr: p.Source,
			Details: details("push_id", c.ID, "purpose", c.Purpose, "factor_id", dev.ID, "requester_addr", c.Source)})
	}
	ps.s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.push_denied", SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
		Details: details("push_id", c.ID, "purpose", c.Purpose, "factor_id", dev.ID, "reason", "wrong number")})
	return airlock.Errorf(airlock.EUNAUTHORIZED, "wrong number: the request was refused")
}

// Status returns the state of challenge id (pending, approved, denied,
// expired) and its number to show on the requesting screen. A challenge
// past its TTL is expired (and audited) here. Errors: ENOTFOUND.
func (ps *Push) Status(ctx context.Context, id string) (state string, number int, err error) {
	ps.mu.Lock()
	c := ps.byID[id]
	ps.mu.Unlock()
	if c == nil {
		return "", 0, airlock.Errorf(airlock.ENOTFOUND, "no such push request")
	}
	ps.expire(ctx, c)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return c.State, c.Number, nil
}

// take marks an approved challenge as used (single use) after checking
// it belongs to userID with purpose.
func (ps *Push) take(ctx context.Context, id, userID, purpose, sessionID string) error {
	if st, _, err := ps.Status(ctx, id); err != nil || st != PushApproved {
		return airlock.Errorf(airlock.EUNAUTHORIZED, "the push request was not approved")
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	c := ps.byID[id]
	if c == nil || c.used || c.UserID != userID || c.Purpose != purpose || c.sessionID != sessionID {
		return airlock.Errorf(airlock.EUNAUTHORIZED, "the push request was not approved")
	}
	c.used = true
	return nil
}

// LoginPush completes a login begun with Login using an approved push.
func (ps *Push) LoginPush(ctx context.Context, challenge, pushID, source string) (*LoginResult, error) {
	u, key, err := ps.s.challengeUser(ctx, challenge)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, errInvalidLogin
	}
	if err := ps.take(ctx, pushID, u.ID, PushLogin, ""); err != nil {
		return nil, err
	}
	if _, err := ps.s.store.TakeKV(ctx, key, ps.s.now()); err != nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the login step expired; run `airlock login` again")
	}
	return ps.s.startSession(ctx, u, MethodPush, source)
}

// VerifyPush refreshes p's MFA with an approved step-up push.
func (ps *Push) VerifyPush(ctx context.Context, p *Principal, pushID string) error {
	if err := ps.take(ctx, pushID, p.User.ID, PushStepUp, p.Session.ID); err != nil {
		return err
	}
	return ps.s.markFresh(ctx, p, MethodPush, "mfa.verified")
}
