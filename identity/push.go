package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"sort"
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
	// PushStatement approves one statement a gateway holds (a policy
	// statement rule's require_mfa); its Detail says which.
	PushStatement = "statement"
)

// maxPushDetail bounds a challenge's Detail (what the device shows).
const maxPushDetail = 4 << 10

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
	// limit MFA fatigue attacks. The window is fixed from its first push
	// and counted in the store, across replicas.
	MaxPerWindow int
	Window       time.Duration
	// PollInterval is how often a Subscribe on one replica looks in the
	// store for pushes begun on another (default 2 s). Pushes begun on
	// the same replica are delivered at once.
	PollInterval time.Duration
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
	// Detail is what the push asks, shown on the device (for a statement:
	// the resource and the statement's text).
	Detail string `json:"detail,omitempty"`
	// sessionID binds a step-up push to the login session that asked.
	sessionID string
}

// pushRecord is a challenge as kept in the KV store.
type pushRecord struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	UserName  string    `json:"user_name"`
	Purpose   string    `json:"purpose"`
	Source    string    `json:"source"`
	Number    int       `json:"number"`
	Choices   []int     `json:"choices"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	SessionID string    `json:"session_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

func (r *pushRecord) challenge(state string) PushChallenge {
	return PushChallenge{ID: r.ID, UserID: r.UserID, UserName: r.UserName, Purpose: r.Purpose, Source: r.Source, Number: r.Number,
		Choices: r.Choices, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, State: state, Detail: r.Detail, sessionID: r.SessionID}
}

// Push delivers push challenges to a user's registered devices and
// collects their answers. Challenges live in the shared KV store, so a
// push begun on one replica can be answered on another and its result
// polled on a third; every transition that must happen once (answer or
// expiry, use of an approval) is a TakeKV, single across replicas:
//
//	push:ID                    the challenge (pushRecord)
//	push-pending:USER:ID       present while unanswered; taken by the one answer or expiry
//	push-state:ID              approved, denied or expired, once decided
//	push-use:ID                the approval, taken by the one login or step-up it opens
//
// It is safe for concurrent use.
type Push struct {
	s   *Service
	cfg PushConfig

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{} // userID -> kick channels of local subscribers
}

// pushKeep is how long a decided challenge stays readable after its TTL.
const pushKeep = 10 * time.Minute

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
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 2 * time.Second
	}
	return &Push{s: s, cfg: cfg, subs: map[string]map[chan struct{}]struct{}{}}
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
		Details: airlock.EventDetails("kind", airlock.FactorPush, "factor_id", f.ID, "name", name)}); err != nil {
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
	return ps.beginDetail(ctx, u, purpose, sessionID, source, "", 0)
}

// beginDetail is begin with what the device shows and a TTL (0: the
// configured one).
func (ps *Push) beginDetail(ctx context.Context, u *airlock.User, purpose, sessionID, source, detail string, ttl time.Duration) (*PushChallenge, error) {
	if ttl <= 0 {
		ttl = ps.cfg.TTL
	}
	ok, err := ps.hasDevice(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, airlock.Errorf(airlock.EINVALID, "no push device is registered; add one on the console's factors page")
	}
	now := ps.s.now()
	h, err := ps.s.store.HitThrottle(ctx, keyPush+u.ID, now, ps.cfg.Window)
	if err != nil {
		return nil, err
	}
	if h.Count > ps.cfg.MaxPerWindow {
		if h.Count == ps.cfg.MaxPerWindow+1 { // audited once per window
			ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.push_rate_limited", SourceAddr: source,
				Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("purpose", purpose, "max", ps.cfg.MaxPerWindow, "window_seconds", int(ps.cfg.Window.Seconds()))})
		}
		return nil, &airlock.Error{Code: airlock.ELOCKED, Message: "too many push requests; wait a few minutes or use another factor",
			Details: map[string]any{"retry_after_seconds": int(math.Ceil(h.WindowStart.Add(ps.cfg.Window).Sub(now).Seconds()))}}
	}

	choices, n := numbers()
	r := &pushRecord{ID: airlock.NewID("push"), UserID: u.ID, UserName: u.Name, Purpose: purpose, Source: source, Number: n,
		Choices: choices, CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(), SessionID: sessionID, Detail: detail}
	if err := ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: u.ID, Name: u.Name}, Action: "mfa.push_sent", SourceAddr: source,
		Details: airlock.EventDetails("push_id", r.ID, "purpose", purpose)}); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(r)
	keep := r.ExpiresAt.Add(pushKeep)
	if err := ps.s.store.PutKV(ctx, "push:"+r.ID, b, keep); err != nil {
		return nil, err
	}
	if err := ps.s.store.PutKV(ctx, pendingKey(r), nil, keep); err != nil {
		return nil, err
	}
	ps.kick(u.ID)
	c := r.challenge(PushPending)
	return &c, nil
}

func pendingKey(r *pushRecord) string { return "push-pending:" + r.UserID + ":" + r.ID }

// load returns challenge id from the store. Errors: ENOTFOUND.
func (ps *Push) load(ctx context.Context, id string) (*pushRecord, error) {
	b, err := ps.s.store.GetKV(ctx, "push:"+id, ps.s.now())
	var r pushRecord
	if err != nil || json.Unmarshal(b, &r) != nil {
		if err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, err
		}
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no such push request")
	}
	return &r, nil
}

// state returns the decided state of r, or "" while it is undecided.
func (ps *Push) state(ctx context.Context, r *pushRecord) (string, error) {
	b, err := ps.s.store.GetKV(ctx, "push-state:"+r.ID, ps.s.now())
	if airlock.IsCode(err, airlock.ENOTFOUND) {
		return "", nil
	}
	return string(b), err
}

// decide stores the outcome of r (after its one TakeKV of the pending key).
func (ps *Push) decide(ctx context.Context, r *pushRecord, state string) error {
	return ps.s.store.PutKV(ctx, "push-state:"+r.ID, []byte(state), r.ExpiresAt.Add(pushKeep))
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

// BeginStatement sends userID's devices a push to approve one held
// statement: detail (cut to 4 KiB) is shown on the device, holdID binds
// the approval to that one hold, and the push lasts ttl. Errors: EINVALID
// (no device), ELOCKED (rate limit), ENOTFOUND, EUNAVAILABLE.
func (ps *Push) BeginStatement(ctx context.Context, userID, holdID, detail, source string, ttl time.Duration) (*PushChallenge, error) {
	u, err := ps.s.store.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "user %s is disabled", u.Name)
	}
	if len(detail) > maxPushDetail {
		i := maxPushDetail
		for i > maxPushDetail-4 && detail[i]&0xC0 == 0x80 {
			i--
		}
		detail = detail[:i] + "…"
	}
	return ps.beginDetail(ctx, u, PushStatement, holdID, source, detail, ttl)
}

// StatementStatus returns the state of statement push id for holdID
// (pending, approved, denied, expired). An approval is used once: the
// first StatementStatus that sees it approved takes it, and every later
// one reads it as expired. Errors: ENOTFOUND.
func (ps *Push) StatementStatus(ctx context.Context, id, userID, holdID string) (string, error) {
	r, err := ps.load(ctx, id)
	if err != nil {
		return "", err
	}
	if r.UserID != userID || r.Purpose != PushStatement || r.SessionID != holdID {
		return "", airlock.Errorf(airlock.ENOTFOUND, "no push request %q", id)
	}
	st, err := ps.status(ctx, r)
	if err != nil || st != PushApproved {
		return st, err
	}
	if err := ps.take(ctx, id, userID, PushStatement, holdID); err != nil {
		return PushExpired, nil
	}
	return PushApproved, nil
}

// Subscribe delivers userID's pending challenges, each once, until cancel
// is called: those begun on this replica at once, those begun on another
// within PollInterval (it polls the store).
func (ps *Push) Subscribe(userID string) (<-chan PushChallenge, func()) {
	out := make(chan PushChallenge, 8)
	kick := make(chan struct{}, 1)
	ps.mu.Lock()
	if ps.subs[userID] == nil {
		ps.subs[userID] = map[chan struct{}]struct{}{}
	}
	ps.subs[userID][kick] = struct{}{}
	ps.mu.Unlock()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ps.cfg.PollInterval)
		defer t.Stop()
		sent := map[string]time.Time{} // id -> expiry, to forget old ones
		for {
			cs, err := ps.Pending(ctx, userID)
			if err != nil && ctx.Err() == nil {
				ps.s.log.Warn("push: list pending challenges", "err", err)
			}
			now := ps.s.now()
			for id, exp := range sent {
				if now.After(exp.Add(pushKeep)) {
					delete(sent, id)
				}
			}
			for _, c := range cs {
				if _, ok := sent[c.ID]; ok {
					continue
				}
				select {
				case out <- c:
					sent[c.ID] = c.ExpiresAt
				default: // a slow device misses the live event; it sees it in Pending
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-kick:
			case <-t.C:
			}
		}
	}()
	return out, func() {
		ps.mu.Lock()
		delete(ps.subs[userID], kick)
		if len(ps.subs[userID]) == 0 {
			delete(ps.subs, userID)
		}
		ps.mu.Unlock()
		stop()
		<-done
	}
}

// kick wakes this replica's subscribers of userID to look at the store now.
func (ps *Push) kick(userID string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k := range ps.subs[userID] {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// Pending returns userID's unanswered, unexpired challenges, oldest first,
// whichever replica began them.
func (ps *Push) Pending(ctx context.Context, userID string) ([]PushChallenge, error) {
	now := ps.s.now()
	keys, err := ps.s.store.ScanKV(ctx, "push-pending:"+userID+":", now)
	if err != nil {
		return nil, err
	}
	var out []PushChallenge
	for k := range keys {
		r, err := ps.load(ctx, k[len("push-pending:"+userID+":"):])
		if err != nil {
			continue
		}
		if r.UserID == userID && now.Before(r.ExpiresAt) {
			out = append(out, r.challenge(PushPending))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// expire moves r, pending past its TTL, to expired and audits that once
// across replicas (whoever takes its pending key). It returns r's state.
func (ps *Push) expire(ctx context.Context, r *pushRecord) (string, error) {
	if _, err := ps.s.store.TakeKV(ctx, pendingKey(r), ps.s.now()); err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return "", err
		}
		// Decided elsewhere (or being decided right now).
		st, err := ps.state(ctx, r)
		if err != nil || st != "" {
			return st, err
		}
		return PushExpired, nil
	}
	ps.s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: r.UserID, Name: r.UserName}, Action: "mfa.push_timeout", SourceAddr: r.Source,
		Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("push_id", r.ID, "purpose", r.Purpose)})
	return PushExpired, ps.decide(ctx, r, PushExpired)
}

// Answer records the device's choice for challenge id. p is the device's
// login session and deviceToken its device cookie. Picking the number the
// requesting screen shows approves; any other number denies (and the
// challenge cannot be retried). Of concurrent answers, on any replicas,
// exactly one counts. Errors: ENOTFOUND, EINVALID (answered or expired),
// EUNAUTHORIZED (wrong number), EUNAVAILABLE.
func (ps *Push) Answer(ctx context.Context, p *Principal, deviceToken, id string, number int) error {
	dev, err := ps.Device(ctx, p, deviceToken)
	if err != nil {
		return err
	}
	r, err := ps.load(ctx, id)
	if err != nil {
		return err
	}
	if r.UserID != p.User.ID {
		return airlock.Errorf(airlock.ENOTFOUND, "no such push request")
	}
	if !ps.s.now().Before(r.ExpiresAt) {
		st, err := ps.expire(ctx, r)
		if err != nil {
			return err
		}
		return airlock.Errorf(airlock.EINVALID, "this push request is already %s", st)
	}
	if _, err := ps.s.store.TakeKV(ctx, pendingKey(r), ps.s.now()); err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return err
		}
		st, _ := ps.state(ctx, r)
		if st == "" {
			st = "answered"
		}
		return airlock.Errorf(airlock.EINVALID, "this push request is already %s", st)
	}
	if number == r.Number {
		// Audit first: without its event the approval never takes effect
		// (the challenge then reads as expired); an approval whose writes
		// then fail is retracted (audit.Change).
		return ps.s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.push_approved", SourceAddr: p.Source,
			Details: airlock.EventDetails("push_id", r.ID, "purpose", r.Purpose, "factor_id", dev.ID, "requester_addr", r.Source)},
			func(ctx context.Context) error {
				if err := ps.s.store.PutKV(ctx, "push-use:"+r.ID, nil, r.ExpiresAt.Add(pushKeep)); err != nil {
					return err
				}
				return ps.decide(ctx, r, PushApproved)
			})
	}
	ps.s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.push_denied", SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
		Details: airlock.EventDetails("push_id", r.ID, "purpose", r.Purpose, "factor_id", dev.ID, "reason", "wrong number")})
	if err := ps.decide(ctx, r, PushDenied); err != nil {
		return err
	}
	return airlock.Errorf(airlock.EUNAUTHORIZED, "wrong number: the request was refused")
}

// Status returns the state of challenge id (pending, approved, denied,
// expired) and its number to show on the requesting screen, on any
// replica. A challenge past its TTL is expired (and audited, once) here.
// Errors: ENOTFOUND.
func (ps *Push) Status(ctx context.Context, id string) (state string, number int, err error) {
	r, err := ps.load(ctx, id)
	if err != nil {
		return "", 0, err
	}
	st, err := ps.status(ctx, r)
	return st, r.Number, err
}

// StepUpStatus is Status for p's own step-up push: a push of another
// user, another purpose or another login session is ENOTFOUND, so no one
// can read or expire someone else's challenge.
func (ps *Push) StepUpStatus(ctx context.Context, p *Principal, id string) (state string, err error) {
	r, err := ps.load(ctx, id)
	if err != nil {
		return "", err
	}
	if r.UserID != p.User.ID || r.Purpose != PushStepUp || r.SessionID != p.Session.ID {
		return "", airlock.Errorf(airlock.ENOTFOUND, "no push request %q", id)
	}
	return ps.status(ctx, r)
}

func (ps *Push) status(ctx context.Context, r *pushRecord) (string, error) {
	st, err := ps.state(ctx, r)
	if err != nil || st != "" {
		return st, err
	}
	if ps.s.now().Before(r.ExpiresAt) {
		return PushPending, nil
	}
	return ps.expire(ctx, r)
}

// take uses an approved challenge (single use, across replicas) after
// checking it belongs to userID with purpose and session.
func (ps *Push) take(ctx context.Context, id, userID, purpose, sessionID string) error {
	refused := airlock.Errorf(airlock.EUNAUTHORIZED, "the push request was not approved")
	r, err := ps.load(ctx, id)
	if err != nil {
		return refused
	}
	if st, err := ps.status(ctx, r); err != nil || st != PushApproved {
		return refused
	}
	if r.UserID != userID || r.Purpose != purpose || r.SessionID != sessionID {
		return refused
	}
	if _, err := ps.s.store.TakeKV(ctx, "push-use:"+r.ID, ps.s.now()); err != nil {
		return refused
	}
	return nil
}

// LoginPush completes a login begun with Login using an approved push.
// It is counted and audited like any second step (Service.secondStep).
func (ps *Push) LoginPush(ctx context.Context, challenge, pushID, source string) (*LoginResult, error) {
	return ps.s.secondStep(ctx, challenge, source, func(u *airlock.User, refused func(string)) (string, error) {
		if err := ps.take(ctx, pushID, u.ID, PushLogin, ""); err != nil {
			refused("push request not approved")
			return "", err
		}
		return MethodPush, nil
	})
}

// VerifyPush refreshes p's MFA with an approved step-up push.
func (ps *Push) VerifyPush(ctx context.Context, p *Principal, pushID string) error {
	if err := ps.take(ctx, pushID, p.User.ID, PushStepUp, p.Session.ID); err != nil {
		return err
	}
	return ps.s.markFresh(ctx, p, MethodPush, "mfa.verified")
}
