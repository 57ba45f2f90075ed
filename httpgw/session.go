package httpgw

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
)

var errSessionEnded = errors.New("httpgw: session ended")

// session is one token's use of one app on this node: it starts with the
// first request that presents the token here and ends when the grant
// does, or on revoke, kill, idle timeout, sign-out, an audit failure or
// shutdown. Requests and streams in flight run under its context, so
// ending it cancels them.
type session struct {
	g     *Gateway
	live  *gwsession.Session // in g.reg from open's success to the end's record
	key   [32]byte
	tok   secrets.Secret
	app   *App
	id    string
	ready chan struct{} // closed once open has returned
	// openErr is open's error (set before ready is closed).
	openErr error

	tp     atomic.Pointer[Target] // set by open; replaced by check
	source string
	start  time.Time

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	ended     bool
	draining  bool // the token ran out: no new requests; ends with the last in flight
	endReason airlock.EndReason
	checkedAt time.Time
	conns     map[net.Conn]struct{} // upgraded connections (WebSocket)
	timers    []*time.Timer
	jwt       string
	jwtExp    time.Time
	recs      []streamRecording // one per recorded stream, oldest first
	recN      int               // recordings attempted (the last id's N)
	endedCh   chan struct{}

	inflight  atomic.Int64
	lastUse   atomic.Int64 // unix nanos of the last request's end
	requests  atomic.Int64
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	wg        sync.WaitGroup // requests in flight
	receipts  chan airlock.AuditPending
	watchDone chan struct{}
}

// receiptQueue bounds the audit receipts a session has outstanding; a
// request waits for room.
const receiptQueue = 1024

func newSession(g *Gateway, key [32]byte, tok secrets.Secret, app *App) *session {
	return &session{g: g, key: key, tok: tok, app: app, id: airlock.NewID("ses"), ready: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, endedCh: make(chan struct{})}
}

func (s *session) fail(err error) {
	s.openErr = err
	close(s.ready)
}

// open validates the token and records the session's start.
func (s *session) open(ctx context.Context, browser bool, source string) error {
	g := s.g
	t, err := g.cfg.Auth.Authenticate(ctx, AuthRequest{App: s.app, Token: s.tok, SourceAddr: source, Browser: browser})
	if err != nil {
		return err
	}
	if t.Resource != s.app.Resource || t.Upstream == nil {
		return airlock.Errorf(airlock.EUNAUTHORIZED, "this token is not for %s", s.app.Resource)
	}
	now := g.cfg.Now()
	if !now.Before(t.EndsAt) || !now.Before(t.TokenExpiresAt) {
		return airlock.Errorf(airlock.EUNAUTHORIZED, "the grant for %s has ended", s.app.Resource)
	}
	s.tp.Store(t)
	s.source, s.start, s.checkedAt = source, now, now
	s.lastUse.Store(now.UnixNano())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.receipts = make(chan airlock.AuditPending, receiptQueue)
	s.watchDone = make(chan struct{})

	details := airlock.EventDetails("access", t.Access, "ends_at", t.EndsAt, "browser", browser, "host", s.app.Host,
		"upstream", t.Upstream.Scheme+"://"+t.Upstream.Host, "strict_audit", t.StrictAudit)
	if err := s.record(ctx, "session.started", airlock.OutcomeSuccess, details); err != nil {
		s.cancel()
		return airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; refused", err)
	}
	if g.cfg.Sessions != nil {
		snap := s.snapshot()
		if err := g.cfg.Sessions.CreateSession(ctx, &snap); err != nil {
			s.cancel()
			s.endRecorded(airlock.EndAuditUnavailable)
			return airlock.WrapError(airlock.EUNAVAILABLE, "the session cannot be recorded; refused", err)
		}
	}
	go s.watch()
	s.mu.Lock()
	s.timers = append(s.timers, time.AfterFunc(t.EndsAt.Sub(now), func() { s.end(airlock.EndGrantExpired) }))
	if d := t.TokenExpiresAt.Sub(now); t.TokenExpiresAt.Before(t.EndsAt) {
		// The token runs out before the grant: the client mints another
		// for new requests; this session's streams go on until they end.
		s.timers = append(s.timers, time.AfterFunc(d, s.drain))
	}
	if t.IdleTimeout > 0 {
		s.armIdle(t.IdleTimeout)
	}
	s.armRecheck(g.cfg.Recheck)
	s.mu.Unlock()
	s.live = &gwsession.Session{ID: s.id, UserID: t.UserID, GrantID: t.GrantID, Resource: s.app.Resource, Node: g.cfg.Node,
		StartedAt: s.start, EndsAt: t.EndsAt, Close: func(r airlock.EndReason) { s.end(r) }, Info: s.snapshot}
	if !g.reg.Add(s.live) {
		s.live = nil
		s.end(airlock.EndServerShutdown)
		return airlock.Errorf(airlock.EUNAVAILABLE, "the server is shutting down; try again")
	}
	close(s.ready)
	g.log.Info("session started", "session", s.id, "user", t.UserName, "app", s.app.Resource, "grant", t.GrantID)
	return nil
}

// armIdle checks for idleness every d/4 (s.mu held).
func (s *session) armIdle(d time.Duration) {
	var tick func()
	tick = func() {
		if s.inflight.Load() == 0 && time.Since(time.Unix(0, s.lastUse.Load())) >= d {
			s.end(airlock.EndIdleTimeout)
			return
		}
		s.mu.Lock()
		if !s.ended {
			s.timers = append(s.timers, time.AfterFunc(d/4, tick))
		}
		s.mu.Unlock()
	}
	s.timers = append(s.timers, time.AfterFunc(d/4, tick))
}

// armRecheck revalidates the token every d while requests or streams are
// in flight, so that a revocation this node never heard of cuts a stream
// that sends no new request (s.mu held).
func (s *session) armRecheck(d time.Duration) {
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		if s.inflight.Load() > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.check(ctx)
			cancel()
		}
		s.mu.Lock()
		if !s.ended {
			tm.Reset(d)
		}
		s.mu.Unlock()
	})
	s.timers = append(s.timers, tm)
}

// drain stops the session taking new requests once its token has run out
// before the grant: requests and streams in flight go on, still cut at the
// grant's end or a revocation, and the session ends with the last of them.
func (s *session) drain() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.mu.Unlock()
	s.g.remove(s)
	if s.inflight.Load() == 0 {
		s.end(airlock.EndClientClosed)
	}
}

// requestDone is called as each request or stream ends.
func (s *session) requestDone() {
	if s.inflight.Add(-1) > 0 {
		return
	}
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		s.end(airlock.EndClientClosed)
	}
}

func (s *session) isOpen() bool {
	select {
	case <-s.ready:
	default:
		return false
	}
	if s.openErr != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

// check revalidates the token when it was last validated more than
// Config.Recheck ago, so that a revocation this node never heard of still
// ends access within Recheck. A refusal ends the session.
func (s *session) check(ctx context.Context) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return errSessionEnded
	}
	now := s.g.cfg.Now()
	fresh := now.Sub(s.checkedAt) < s.g.cfg.Recheck
	draining := s.draining
	s.mu.Unlock()
	if fresh {
		return nil
	}
	var t *Target
	var err error
	if draining {
		gc, ok := s.g.cfg.Auth.(GrantChecker)
		if !ok {
			return nil
		}
		t, err = gc.CheckGrant(ctx, s.target())
	} else {
		t, err = s.g.cfg.Auth.Authenticate(ctx, AuthRequest{App: s.app, Token: s.tok, SourceAddr: s.source})
	}
	if err != nil {
		if airlock.ErrorCode(err) == airlock.EUNAVAILABLE {
			return err // the store is out: refuse this request, keep the session
		}
		s.end(refusalReason(err, s.target(), now))
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errSessionEnded
	}
	if old := s.target(); t.GrantID != old.GrantID || t.UserID != old.UserID {
		return airlock.Errorf(airlock.EUNAUTHORIZED, "the token changed hands")
	}
	s.tp.Store(t)
	s.checkedAt = now
	return nil
}

// refusalReason is the end reason for a token that no longer validates:
// the reason the Authenticator gave (Details "end_reason"), else expiry
// when the grant's end has passed, else a revocation.
func refusalReason(err error, t *Target, now time.Time) airlock.EndReason {
	var e *airlock.Error
	if errors.As(err, &e) {
		if r, _ := e.Details["end_reason"].(string); airlock.EndReason(r).Valid() {
			return airlock.EndReason(r)
		}
	}
	if t != nil && !now.Before(t.EndsAt) {
		return airlock.EndGrantExpired
	}
	return airlock.EndGrantRevoked
}

// end ends the session once, with reason: requests in flight are
// cancelled, upgraded connections closed, and the end is recorded once
// they have returned. It reports whether this call ended it.
func (s *session) end(reason airlock.EndReason) bool {
	if reason == airlock.EndSessionKilled || reason == airlock.EndIdleTimeout {
		// The token must not open the next session by itself: the
		// browser or client signs in again. Revoked before the session
		// leaves the gateway's map, so that a request arriving meanwhile
		// cannot open a new session with it.
		s.mu.Lock()
		live := !s.ended && s.cancel != nil
		s.mu.Unlock()
		if !live {
			return false
		}
		if err := s.g.cfg.Auth.Revoke(context.Background(), s.tok); err != nil {
			s.g.log.Error("revoke http token", "session", s.id, "err", err)
		}
	}
	s.mu.Lock()
	if s.ended || s.cancel == nil {
		s.mu.Unlock()
		return false
	}
	s.ended, s.endReason = true, reason
	for _, t := range s.timers {
		t.Stop()
	}
	s.g.wg.Add(1)
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	close(s.endedCh)
	if s.live != nil {
		s.g.reg.Remove(s.live) // ended: no longer closed or listed; g.wg covers its record
	}
	s.g.remove(s)
	s.cancel()
	// Each at once: a door's close may tell its client why and wait for it
	// a moment (kubegw's exec goodbye), and the streams of one session
	// must not wait on each other.
	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { c.Close() })
	}
	closing.Wait()
	go func() {
		defer s.g.wg.Done()
		waitTimeout(&s.wg, 5*time.Second)
		close(s.receipts)
		<-s.watchDone
		s.endRecorded(reason)
	}()
	return true
}

// endRecorded records session.ended and the session row's end, closing
// the session's recording first.
func (s *session) endRecorded(reason airlock.EndReason) {
	ctx := context.Background()
	d := map[string]any{"end_reason": reason, "requests": s.requests.Load(), "bytes_in": s.bytesIn.Load(),
		"bytes_out": s.bytesOut.Load(), "duration_ms": s.g.cfg.Now().Sub(s.start).Milliseconds()}
	s.mu.Lock()
	recs := s.recs
	s.mu.Unlock()
	var list []airlock.SessionRecording
	for _, r := range recs {
		// Closed by its stream as it ended; closing again is a no-op.
		if err := r.w.Close(); err != nil {
			s.g.log.Error("close recording", "session", s.id, "recording", r.id, "err", err)
			d["recording_error"] = "recording incomplete"
		}
		list = append(list, airlock.SessionRecording{ID: r.id, SHA256: r.w.SHA256(), Title: r.title})
	}
	if len(list) > 0 {
		d["recordings"] = list
	}
	details, _ := json.Marshal(d)
	if err := s.record(ctx, "session.ended", airlock.OutcomeSuccess, details); err != nil {
		s.g.log.Error("audit session.ended", "session", s.id, "err", err)
	}
	if s.g.cfg.Sessions != nil {
		snap := s.snapshot()
		snap.EndedAt = s.g.cfg.Now()
		snap.EndReason = string(reason)
		snap.Recordings = list
		if err := s.g.cfg.Sessions.EndSession(ctx, &snap); err != nil && airlock.ErrorCode(err) != airlock.ECONFLICT {
			s.g.log.Error("end session", "session", s.id, "err", err)
		}
	}
	s.g.log.Info("session ended", "session", s.id, "reason", reason, "requests", s.requests.Load())
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// record writes a session event durably (Submit, then wait).
func (s *session) record(ctx context.Context, action, outcome string, details []byte) error {
	p := s.g.cfg.Audit.Submit(s.event(action, outcome, details))
	s.g.cfg.Audit.Flush()
	select {
	case <-p.Done():
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *session) event(action, outcome string, details []byte) airlock.Event {
	t := s.target()
	return airlock.Event{Actor: airlock.Actor{ID: t.UserID, Name: t.UserName}, Action: action, Resource: s.app.Resource,
		GrantID: t.GrantID, SessionID: s.id, SourceAddr: s.source, Outcome: outcome, Details: details}
}

// watch waits for the session's audit receipts in order; the first
// failure ends the session (audit first, fail closed).
func (s *session) watch() {
	defer close(s.watchDone)
	for p := range s.receipts {
		<-p.Done()
		if p.Err() != nil {
			s.g.log.Error("audit "+s.g.reqAction, "session", s.id, "err", p.Err())
			go s.end(airlock.EndAuditUnavailable)
			for range s.receipts {
			}
			return
		}
	}
}

// submit enters a request event into the audit pipeline and queues its
// receipt for the watcher. It reports false once the session has ended.
func (s *session) submit(e airlock.Event) (airlock.AuditPending, bool) {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		if e.Action == s.g.respAction {
			// The request it closes was audited: record its end even
			// though the session ended under it (a cut stream).
			s.g.cfg.Audit.Submit(e)
		}
		return nil, false
	}
	p := s.g.cfg.Audit.Submit(e)
	select {
	case s.receipts <- p:
		return p, true
	case <-s.ctx.Done():
		return nil, false
	}
}

// identity returns the signed assertion for the app, re-signing when the
// cached one has less than a third of its life left.
func (s *session) identity(ctx context.Context) (string, error) {
	now := s.g.cfg.Now()
	s.mu.Lock()
	if s.jwt != "" && now.Before(s.jwtExp) {
		j := s.jwt
		s.mu.Unlock()
		return j, nil
	}
	s.mu.Unlock()
	t := s.target()
	j, exp, err := s.g.cfg.Identity.Sign(ctx, Identity{UserID: t.UserID, UserName: t.UserName, Groups: t.Groups,
		GrantID: t.GrantID, Access: t.Access, EndsAt: t.EndsAt, Audience: s.app.Resource})
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.jwt, s.jwtExp = j, now.Add(exp.Sub(now)*2/3)
	s.mu.Unlock()
	return j, nil
}

// streamRecording is one stream's recording.
type streamRecording struct {
	id, title string
	w         *recording.Writer
}

// NewRecording starts a recording of one stream, stored as SESSION-N (N
// counts the session's recordings from 1).
func (s *session) NewRecording(h recording.Header) (*recording.Writer, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, "", errSessionEnded
	}
	if s.g.cfg.Recordings == nil {
		return nil, "", errors.New("httpgw: no recording store configured")
	}
	// Numbered by attempt: one whose file was made but not started
	// leaves its number behind rather than blocking the next.
	s.recN++
	id := s.id + "-" + strconv.Itoa(s.recN)
	wc, err := s.g.cfg.Recordings.Create(context.Background(), id)
	if err != nil {
		return nil, "", err
	}
	w, err := recording.NewWriter(wc, h, s.g.cfg.Now)
	if err != nil {
		wc.Close()
		return nil, "", err
	}
	s.recs = append(s.recs, streamRecording{id: id, title: h.Title, w: w})
	return w, id, nil
}

// ID is the session's id.
func (s *session) ID() string { return s.id }

// EndReason is why the session ended ("" while it is live).
func (s *session) EndReason() airlock.EndReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endReason
}

// track registers an upgraded connection so that ending the session
// closes it; the returned func unregisters it.
func (s *session) track(c net.Conn) (untrack func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, false
	}
	s.conns[c] = struct{}{}
	return func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}, true
}

func (s *session) target() *Target { return s.tp.Load() }

func (s *session) snapshot() airlock.Session {
	s.mu.Lock()
	reason := s.endReason
	s.mu.Unlock()
	t := s.target()
	return airlock.Session{ID: s.id, GrantID: t.GrantID, UserID: t.UserID, UserName: t.UserName, Resource: s.app.Resource,
		Kind: s.g.door.Kind(), Access: t.Access, SourceAddr: s.source, Node: s.g.cfg.Node, StartedAt: s.start,
		EndReason: string(reason), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Statements: s.requests.Load()}
}
