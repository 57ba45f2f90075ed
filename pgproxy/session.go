package pgproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/secrets"
)

var (
	errKilled = errors.New("pgproxy: session closed")
	errAudit  = errors.New("pgproxy: audit receipt failed")
)

// session is one relayed client connection.
type session struct {
	g    *Gateway
	id   string
	t    *Target
	info airlock.Session // static fields; counters live in the atomics

	client net.Conn
	cr     *bufio.Reader
	cw     *bufio.Writer

	mu       sync.Mutex // guards up, upPID, upSecret
	up       *upstream
	ur       *bufio.Reader
	uw       *bufio.Writer
	upPID    uint32
	upSecret []byte
	cancels  sync.WaitGroup // CancelRequests being forwarded to upPID

	// heldTerminate: the client's Terminate was not forwarded, so that the
	// upstream connection can be reset and reused. upTx is the upstream's
	// last ReadyForQuery status (owned by s2c).
	heldTerminate bool
	upTx          byte
	// unsynced: the client sent extended-protocol messages since its last
	// Sync, so the backend may be inside an implicit transaction or
	// skipping to Sync after an error (owned by c2s).
	unsynced bool
	// cancelFailed: a CancelRequest may not have reached the backend yet.
	cancelFailed atomic.Bool

	clientPID    uint32
	clientSecret [4]byte

	c2sPipe, s2cPipe pipe
	s2cMid           bool // s2c stopped inside a message
	// With StrictAudit: bytes strictWriter delivered to the client, the
	// stream position (delivered + buffered) of the last message boundary
	// s2c passed, and whether the client holds part of a message.
	strictSent, strictEdge int64
	strictMid              bool

	bytesIn, bytesOut, statements atomic.Int64
	activity                      atomic.Int64

	killOnce   sync.Once
	killedFlag atomic.Bool
	// terminated is set when the client sent Terminate; the upstream closing
	// after that is the expected consequence, not an upstream failure.
	terminated atomic.Bool
	killedCh   chan struct{}
	endReason  airlock.EndReason
	killCode   string
	killMsg    string

	// Audit receipts: producers (both relay directions) count and queue
	// each receipt under subMu; the watcher confirms them in order. The
	// queue is bounded by the pipeline's own (Submit blocks when that is
	// full) and the watcher wakes once per commit, not per statement:
	// pendWake is signalled only when the queue was empty.
	subMu       sync.Mutex
	pendClosed  bool
	pend        []airlock.AuditPending
	pendHead    int
	pendWake    chan struct{}
	submitted   atomic.Int64
	confirmed   atomic.Int64
	auditFailed atomic.Bool
	waitMu      sync.Mutex
	waitCh      chan struct{}

	// Statement bookkeeping, owned by the client→server direction.
	stmtNo  int64
	stmts   map[string]*stmtInfo
	portals map[string]portalInfo

	// Outstanding requests (pushed client→server, popped server→client).
	qmu sync.Mutex
	q   []unit
	qh  int

	// Server→client state.
	copyDir  string
	copyStmt int64

	app string // client's application_name

	endTimer, idleTimer *time.Timer
	idleSeen            int64
}

// stmtInfo is a prepared statement as parsed.
type stmtInfo struct {
	no   int64
	text stmtText
}

// portalInfo is a bound portal.
type portalInfo struct {
	stmt   string
	params []*string
}

// unit is one request awaiting its response.
type unit struct {
	kind byte // 'Q' query, 'P' parse, 'E' execute, 'S' sync, 'F' function call
	stmt int64
}

func newSession(g *Gateway, t *Target, cc *clientConn) *session {
	s := &session{
		g: g, id: airlock.NewID("ses"), t: t,
		client: cc.Conn, cr: cc.r,
		killedCh: make(chan struct{}),
		pendWake: make(chan struct{}, 1),
		stmts:    map[string]*stmtInfo{},
		portals:  map[string]portalInfo{},
	}
	s.info = airlock.Session{
		ID: s.id, GrantID: t.GrantID, UserID: t.UserID, UserName: t.UserName,
		Resource: t.Resource, Kind: airlock.KindPostgres, Access: t.Access,
		SourceAddr: cc.RemoteAddr().String(), Node: g.cfg.Node, StartedAt: g.now(),
	}
	var w interface{ Write([]byte) (int, error) } = cc.Conn
	if t.StrictAudit {
		w = strictWriter{s: s, c: cc.Conn}
	}
	s.cw = bufio.NewWriterSize(w, writeBufSize)
	return s
}

// attachUpstream takes over the logged-in upstream connection.
func (s *session) attachUpstream(up *upstream) {
	s.mu.Lock()
	s.up = up
	s.upPID, s.upSecret = up.pid, up.secret
	s.mu.Unlock()
	s.upTx = up.txStatus
	s.ur = up.r
	s.uw = bufio.NewWriterSize(up.conn, writeBufSize)
	s.c2sPipe = pipe{r: s.cr, w: s.uw, from: s.client, killed: s.killedFlag.Load, onBlock: s.touch}
	s.s2cPipe = pipe{r: s.ur, w: s.cw, from: up.conn, retryOnKill: true, killed: s.killedFlag.Load, onBlock: s.touch}
	if s.killedFlag.Load() {
		s.interrupt()
	}
}

func (s *session) touch() { s.activity.Add(1) }

// start records the session start and arms its deadline and idle timers.
func (s *session) start() {
	s.info.StartedAt = s.g.now()
	s.g.m.sessionStarted()
	go s.watch()
	s.submit(s.event("session.started", airlock.OutcomeSuccess, struct {
		Access      string `json:"access"`
		TLS         bool   `json:"tls"`
		ReadOnly    bool   `json:"read_only"`
		StrictAudit bool   `json:"strict_audit"`
		EndsAt      string `json:"ends_at"`
		Application string `json:"application_name,omitempty"`
		UpstreamPID uint32 `json:"upstream_pid"`
		Reused      bool   `json:"upstream_reused,omitempty"`
		UpstreamTLS bool   `json:"upstream_tls"`
	}{s.t.Access, isTLS(s.client), s.t.ReadOnly, s.t.StrictAudit, s.t.EndsAt.UTC().Format(time.RFC3339Nano), s.app, s.up.pid, s.up.reused,
		s.t.UpstreamTLS != nil}))
	msg := expiredMsg(s.t.EndsAt)
	s.endTimer = time.AfterFunc(s.t.EndsAt.Sub(s.g.now()), func() {
		s.kill(airlock.EndGrantExpired, codeAdminShutdown, msg)
	})
	if d := s.t.IdleTimeout; d > 0 {
		s.idleTimer = time.AfterFunc(time.Hour, s.checkIdle)
		s.idleTimer.Stop()
		s.idleSeen = s.activity.Load()
		s.idleTimer.Reset(d)
	}
	s.g.log.Info("pgproxy: session started", "session", s.id, "user", s.t.UserName, "resource", s.t.Resource,
		"grant", s.t.GrantID, "access", s.t.Access, "source", s.info.SourceAddr)
}

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

// checkIdle runs on the idle timer: it closes the session when nothing
// moved since the last check and no request is in flight.
func (s *session) checkIdle() {
	a := s.activity.Load()
	s.qmu.Lock()
	busy := len(s.q) > s.qh
	s.qmu.Unlock()
	if a != s.idleSeen || busy {
		s.idleSeen = a
		s.idleTimer.Reset(s.t.IdleTimeout)
		return
	}
	s.kill(airlock.EndIdleTimeout, codeIdleTimeout, "airlock: session idle for more than "+s.t.IdleTimeout.String()+" — session closed")
}

// kill ends the session once: it records why and interrupts both relay
// directions. msg, when set, is sent to the client as a FATAL error.
func (s *session) kill(reason airlock.EndReason, code, msg string) {
	s.killOnce.Do(func() {
		s.endReason, s.killCode, s.killMsg = reason, code, msg
		s.killedFlag.Store(true)
		close(s.killedCh)
		s.interrupt()
	})
}

// interrupt unblocks both directions: reads end now, the client gets 1 s
// to take what is in flight plus the FATAL.
func (s *session) interrupt() {
	now := time.Now()
	_ = s.client.SetReadDeadline(now)
	_ = s.client.SetWriteDeadline(now.Add(time.Second))
	s.mu.Lock()
	up := s.up
	s.mu.Unlock()
	if up != nil {
		_ = up.conn.SetReadDeadline(now)
		_ = up.conn.SetWriteDeadline(now)
	}
}

// run relays until either side ends or the session is killed, then
// records the end.
func (s *session) run() {
	c2sDone := make(chan struct{})
	go func() {
		defer close(c2sDone)
		if r := s.c2s(); r != "" {
			s.kill(r, "", "")
		}
	}()
	if r := s.s2c(); r != "" {
		s.kill(r, "", "")
	} else {
		s.kill(airlock.EndClientClosed, "", "")
	}
	// The kill interrupted c2s; once it has ended it submits nothing more,
	// so the receipts a strict session waits for below are all there are.
	<-c2sDone
	if s.killMsg != "" {
		switch {
		case !s.t.StrictAudit || s.settledWithin(killSettleWait):
			if !s.s2cMid && s.cw.Flush() == nil {
				_, _ = s.cw.Write(fatal(s.killCode, s.killMsg))
				_ = s.cw.Flush()
			}
		case !s.strictMid:
			// Strict: output whose receipts are not durable is dropped
			// rather than flushed, but a client between messages still
			// learns why the session ends (msgAuditFailed for an audit
			// failure).
			s.cw.Reset(io.Discard)
			_, _ = s.client.Write(fatal(s.killCode, s.killMsg))
		}
	}
	s.client.Close()
	s.releaseUpstream()
	s.finish()
}

// upstreamResetTimeout bounds DISCARD ALL on a connection about to be kept.
const upstreamResetTimeout = 5 * time.Second

// reusable reports whether the upstream connection may serve another
// session: the client ended with Terminate while the backend was idle —
// outside a transaction, every extended-protocol batch closed by Sync, no
// request, COPY or reply in flight, nothing unread — the session's audit
// never failed, and each of its cancel requests surely arrived.
func (s *session) reusable() bool {
	return s.heldTerminate && s.endReason == airlock.EndClientTerminated && s.upTx == 'I' && !s.unsynced &&
		s.qh == len(s.q) && s.copyDir == "" && !s.s2cMid && s.ur.Buffered() == 0 && s.uw.Buffered() == 0 &&
		!s.auditFailed.Load() && !s.cancelFailed.Load()
}

// releaseUpstream resets the upstream connection and gives it to the pool
// when it is reusable, and closes it otherwise.
func (s *session) releaseUpstream() {
	up := s.up
	// No CancelRequest of this session may reach the backend once another
	// session uses it: stop forwarding them, wait for those under way, and
	// only then decide (one that failed makes the backend unfit).
	s.mu.Lock()
	s.upSecret = nil
	s.mu.Unlock()
	s.cancels.Wait()
	if s.reusable() {
		err := reset(up, upstreamResetTimeout)
		if err == nil {
			up.reused = false
			s.g.pool.put(up)
			return
		}
		s.g.log.Debug("pgproxy: upstream reset failed; closing it", "session", s.id, "err", err)
	} else if s.heldTerminate {
		_ = up.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = up.conn.Write(terminateMsg)
	}
	up.conn.Close()
}

var terminateMsg = []byte{'X', 0, 0, 0, 4}

// finish records the session end.
func (s *session) finish() {
	s.endTimer.Stop()
	if s.idleTimer != nil {
		s.idleTimer.Stop()
	}
	info := s.snapshot()
	info.EndedAt = s.g.now()
	info.EndReason = string(s.endReason)
	s.submit(s.event("session.ended", airlock.OutcomeSuccess, struct {
		DurationMS int64  `json:"duration_ms"`
		BytesIn    int64  `json:"bytes_in"`
		BytesOut   int64  `json:"bytes_out"`
		Statements int64  `json:"statements"`
		EndReason  string `json:"end_reason"`
	}{info.EndedAt.Sub(info.StartedAt).Milliseconds(), info.BytesIn, info.BytesOut, info.Statements, info.EndReason}))
	s.subMu.Lock()
	s.pendClosed = true
	s.subMu.Unlock()
	s.wakeWatcher()
	if rec := s.g.cfg.Sessions; rec != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := rec.EndSession(ctx, &info); err != nil {
			s.g.log.Error("pgproxy: record session end", "session", s.id, "err", err)
		}
		cancel()
	}
	s.g.unregister(s)
	s.g.m.sessionEnded(info.BytesIn, info.BytesOut)
	s.g.log.Info("pgproxy: session ended", "session", s.id, "user", s.t.UserName, "resource", s.t.Resource,
		"reason", info.EndReason, "bytes_in", info.BytesIn, "bytes_out", info.BytesOut, "statements", info.Statements)
}

// snapshot returns the session row with the counters so far.
func (s *session) snapshot() airlock.Session {
	info := s.info
	info.BytesIn = s.bytesIn.Load()
	info.BytesOut = s.bytesOut.Load()
	info.Statements = s.statements.Load()
	return info
}

// event builds an audit event of this session.
func (s *session) event(action, outcome string, details any) airlock.Event {
	e := airlock.Event{
		Actor:  airlock.Actor{ID: s.t.UserID, Name: s.t.UserName},
		Action: action, Resource: s.t.Resource, GrantID: s.t.GrantID, SessionID: s.id,
		SourceAddr: s.info.SourceAddr, Outcome: outcome,
	}
	if details != nil {
		if b, err := json.Marshal(details); err == nil {
			e.Details = b
		}
	}
	return e
}

// submit hands e to the audit pipeline and queues its receipt for the
// watcher.
func (s *session) submit(e airlock.Event) {
	p := s.g.cfg.Audit.Submit(e)
	s.subMu.Lock()
	if s.pendClosed {
		s.subMu.Unlock()
		return
	}
	s.submitted.Add(1)
	s.pend = append(s.pend, p)
	first := len(s.pend)-s.pendHead == 1
	s.subMu.Unlock()
	if first {
		s.wakeWatcher()
	}
}

func (s *session) wakeWatcher() {
	select {
	case s.pendWake <- struct{}{}:
	default:
	}
}

// watch confirms receipts in order and closes the session on the first
// failure. It waits for the oldest receipt, then takes every later one
// that is also complete (one commit usually settles them all).
func (s *session) watch() {
	for {
		s.subMu.Lock()
		for s.pendHead == len(s.pend) {
			if s.pendClosed {
				s.subMu.Unlock()
				return
			}
			s.subMu.Unlock()
			<-s.pendWake
			s.subMu.Lock()
		}
		p := s.pend[s.pendHead]
		s.subMu.Unlock()
		<-p.Done()
		s.subMu.Lock()
		for s.pendHead < len(s.pend) && isDone(s.pend[s.pendHead]) {
			p := s.pend[s.pendHead]
			s.pend[s.pendHead] = nil
			s.pendHead++
			s.settle(p)
		}
		s.pend, s.pendHead = compactFIFO(s.pend, s.pendHead)
		s.subMu.Unlock()
		s.waitMu.Lock()
		if s.waitCh != nil {
			close(s.waitCh)
			s.waitCh = nil
		}
		s.waitMu.Unlock()
	}
}

// settle records the outcome of a completed receipt.
func (s *session) settle(p airlock.AuditPending) {
	if err := p.Err(); err != nil {
		if s.auditFailed.CompareAndSwap(false, true) {
			s.g.log.Error("pgproxy: audit receipt failed; closing session", "session", s.id, "err", err)
			s.kill(airlock.EndAuditUnavailable, codeAdminShutdown, msgAuditFailed)
		}
		return
	}
	s.confirmed.Add(1)
}

// killSettleWait is how long a killed strict session waits for its
// receipts before it sends the FATAL message (it drops it otherwise).
const killSettleWait = 200 * time.Millisecond

// settledWithin flushes the audit pipeline and waits up to d for every
// receipt submitted so far to be durable; it reports whether they are.
func (s *session) settledWithin(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.awaitDurable(ctx.Done()) == nil
}

// waitDurable blocks until every receipt submitted so far is durable, or
// the session is killed first.
func (s *session) waitDurable() error { return s.awaitDurable(s.killedCh) }

// awaitDurable waits until every receipt submitted so far is durable
// (nil), one has failed (errAudit) or stop is closed first (errKilled). It
// flushes the audit pipeline once when it has to wait, so the receipts do
// not wait out its group-commit delay.
func (s *session) awaitDurable(stop <-chan struct{}) error {
	target := s.submitted.Load()
	flushed := false
	for {
		if s.auditFailed.Load() {
			return errAudit
		}
		if s.confirmed.Load() >= target {
			return nil
		}
		s.waitMu.Lock()
		if s.waitCh == nil {
			s.waitCh = make(chan struct{})
		}
		ch := s.waitCh
		s.waitMu.Unlock()
		if s.confirmed.Load() >= target || s.auditFailed.Load() {
			continue
		}
		if !flushed {
			s.g.cfg.Audit.Flush()
			flushed = true
		}
		select {
		case <-ch:
		case <-stop:
			if !s.auditFailed.Load() && s.confirmed.Load() >= target {
				return nil
			}
			return errKilled
		}
	}
}

// strictWriter holds output to the client until the receipts of all
// events submitted before it are durable.
type strictWriter struct {
	s *session
	c net.Conn
}

func (w strictWriter) Write(b []byte) (int, error) {
	if err := w.s.waitDurable(); err != nil {
		return 0, err
	}
	n, err := w.c.Write(b)
	w.s.strictSent += int64(n)
	w.s.strictMid = w.s.strictSent != w.s.strictEdge
	return n, err
}

// strictBoundary records that the client stream is at a message boundary
// (s2c, before each message; strict sessions only).
func (s *session) strictBoundary() {
	s.strictEdge = s.strictSent + int64(s.cw.Buffered())
	if s.strictSent == s.strictEdge {
		s.strictMid = false
	}
}

// push queues a request awaiting its response.
func (s *session) push(u unit) {
	s.qmu.Lock()
	s.q = append(s.q, u)
	s.qmu.Unlock()
}

// head returns the oldest outstanding request.
func (s *session) head() (unit, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qh < len(s.q) {
		return s.q[s.qh], true
	}
	return unit{}, false
}

// popWhile drops outstanding requests from the front while keep reports
// true for them, and then also the first one for which last reports true.
func (s *session) pop(drop func(unit) bool, last func(unit) bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for s.qh < len(s.q) {
		u := s.q[s.qh]
		if last != nil && last(u) {
			s.qh++
			break
		}
		if !drop(u) {
			break
		}
		s.qh++
	}
	s.q, s.qh = compactFIFO(s.q, s.qh)
}

// compactFIFO keeps a slice used as a queue from q[head] on small: empty,
// it is reset (and dropped when large); mostly consumed, the rest moves to
// the front.
func compactFIFO[T any](q []T, head int) ([]T, int) {
	switch {
	case head == len(q):
		clear(q)
		if cap(q) > 4096 {
			return nil, 0
		}
		return q[:0], 0
	case head > 1024 && head > len(q)/2:
		n := copy(q, q[head:])
		clear(q[n:])
		return q[:n], 0
	}
	return q, head
}

// isDone reports whether p has completed, without waiting.
func isDone(p airlock.AuditPending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func never(unit) bool { return false }

// c2s relays client→server messages, auditing statements before they
// are forwarded. It returns the end reason, or "" when it killed the
// session itself or was interrupted by a kill.
func (s *session) c2s() airlock.EndReason {
	p := &s.c2sPipe
	for {
		typ, body, err := p.header(s.g.cfg.MaxMessageSize)
		if err != nil {
			return s.c2sErr(err)
		}
		total := 5 + body
		s.bytesIn.Add(int64(total))
		switch typ {
		case 'P', 'B', 'E', 'C', 'D':
			s.unsynced = true
		case 'S':
			s.unsynced = false
		}
		switch typ {
		case 'Q', 'P', 'B', 'E', 'C', 'F':
			b, err := p.whole(total)
			if err != nil {
				return s.c2sErr(err)
			}
			if !s.inspect(typ, b[5:]) {
				p.consume(total)
				return s.c2sErr(errProtocol)
			}
			_, err = p.w.Write(b)
			p.consume(total)
			if err != nil {
				return s.c2sErr(err)
			}
		case 'S':
			s.push(unit{kind: 'S'})
			if err := p.forward(body); err != nil {
				return s.c2sErr(err)
			}
		case 'X':
			s.terminated.Store(true)
			if s.up.poolable && body == 0 {
				// Hold the goodbye: run decides whether the connection
				// is reset and kept, or closed.
				if _, err := p.whole(total); err != nil {
					return s.c2sErr(err)
				}
				p.consume(total)
				s.heldTerminate = true
			} else if err := p.forward(body); err != nil {
				return s.c2sErr(err)
			}
			_ = p.w.Flush()
			return airlock.EndClientTerminated
		case 'D', 'H', 'd', 'c', 'f':
			if err := p.forward(body); err != nil {
				return s.c2sErr(err)
			}
		default:
			return s.c2sErr(errProtocol)
		}
	}
}

func (s *session) c2sErr(err error) airlock.EndReason {
	switch {
	case errors.Is(err, errProtocol):
		s.kill(airlock.EndProtocolViolation, codeProtocol, msgTooLarge)
		return ""
	case s.killedFlag.Load():
		return ""
	default:
		s.g.log.Debug("pgproxy: client side ended", "session", s.id, "err", err)
		return airlock.EndClientClosed
	}
}

// inspect audits a client message before it is forwarded. It reports
// false for a malformed message.
func (s *session) inspect(typ byte, body []byte) bool {
	switch typ {
	case 'Q':
		text, _, ok := cstring(body)
		if !ok {
			return false
		}
		s.stmtNo++
		s.push(unit{kind: 'Q', stmt: s.stmtNo})
		s.countStatement()
		d := queryJSON[[]byte]{kind: "query", stmt: s.stmtNo}
		d.text, d.truncated, d.textBytes, d.sha256 = cutText(text)
		s.submit(queryEvent(s, &d))
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return false
		}
		text, _, ok := cstring(rest)
		if !ok {
			return false
		}
		s.stmtNo++
		st := &stmtInfo{no: s.stmtNo, text: newStmtText(text)}
		key := string(name)
		s.stmts[key] = st
		s.push(unit{kind: 'P', stmt: s.stmtNo})
		d := queryJSON[string]{kind: "parse", stmt: st.no, name: key}
		d.setText(st.text)
		s.submit(queryEvent(s, &d))
	case 'B':
		portal, rest, ok := cstring(body)
		if !ok {
			return false
		}
		stmt, rest, ok := cstring(rest)
		if !ok {
			return false
		}
		pi := portalInfo{stmt: string(stmt)}
		if s.t.LogParameters {
			if pi.params, ok = bindParams(rest); !ok {
				return false
			}
		}
		s.portals[string(portal)] = pi
	case 'E':
		portal, _, ok := cstring(body)
		if !ok {
			return false
		}
		pi := s.portals[string(portal)]
		d := queryJSON[string]{kind: "execute", name: pi.stmt, portal: string(portal), params: pi.params}
		if st := s.stmts[pi.stmt]; st != nil {
			d.parseStmt = st.no
			d.setText(st.text)
		}
		s.stmtNo++
		d.stmt = s.stmtNo
		s.push(unit{kind: 'E', stmt: s.stmtNo})
		s.countStatement()
		s.submit(queryEvent(s, &d))
	case 'C':
		if len(body) < 2 {
			return false
		}
		name, _, ok := cstring(body[1:])
		if !ok {
			return false
		}
		switch body[0] {
		case 'S':
			delete(s.stmts, string(name))
		case 'P':
			delete(s.portals, string(name))
		default:
			return false
		}
	case 'F':
		if len(body) < 4 {
			return false
		}
		s.stmtNo++
		s.push(unit{kind: 'F', stmt: s.stmtNo})
		s.countStatement()
		d := queryJSON[string]{kind: "function_call", stmt: s.stmtNo, functionOID: binary.BigEndian.Uint32(body[:4])}
		s.submit(queryEvent(s, &d))
	}
	return true
}

func (s *session) countStatement() {
	s.statements.Add(1)
	s.g.m.statement()
}

// bindParams decodes a Bind message's parameter values (after the portal
// and statement names): text values as is, binary ones as \x hex.
func bindParams(b []byte) ([]*string, bool) {
	if len(b) < 2 {
		return nil, false
	}
	nf := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*nf {
		return nil, false
	}
	formats := b[:2*nf]
	b = b[2*nf:]
	if len(b) < 2 {
		return nil, false
	}
	np := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	params := make([]*string, 0, np)
	for i := range np {
		if len(b) < 4 {
			return nil, false
		}
		n := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n < 0 {
			params = append(params, nil)
			continue
		}
		if int(n) > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n:]
		binaryFmt := false
		switch {
		case nf == 1:
			binaryFmt = binary.BigEndian.Uint16(formats) == 1
		case i < nf:
			binaryFmt = binary.BigEndian.Uint16(formats[2*i:]) == 1
		}
		var str string
		if binaryFmt {
			str = `\x` + hexString(v[:min(len(v), 512)])
		} else {
			str = truncateUTF8(string(v[:min(len(v), 1028)]), 1024)
		}
		params = append(params, &str)
	}
	return params, true
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// s2c relays server→client messages, tracking responses for COPY and
// error events. It returns the end reason, or "" when killed.
func (s *session) s2c() airlock.EndReason {
	p := &s.s2cPipe
	for {
		if s.t.StrictAudit {
			s.strictBoundary()
		}
		if s.killedFlag.Load() {
			return ""
		}
		typ, body, err := p.header(1 << 30)
		if err != nil {
			return s.s2cErr(err)
		}
		total := 5 + body
		s.bytesOut.Add(int64(total))
		switch typ {
		case 'C', 'E':
			if total > 1<<20 {
				break // not worth buffering: relay as is below
			}
			b, err := p.whole(total)
			if err != nil {
				return s.s2cErr(err)
			}
			if typ == 'C' {
				s.commandComplete(b[5:])
			} else {
				s.errorResponse(b[5:])
			}
			_, err = p.w.Write(b)
			p.consume(total)
			if err != nil {
				return s.s2cErr(err)
			}
			continue
		case 'Z':
			if body == 1 {
				b, err := p.peek(6, true)
				if err != nil {
					return s.s2cErr(err)
				}
				s.upTx = b[5]
			}
			s.copyDir = ""
			s.pop(func(u unit) bool { return u.kind == 'P' || u.kind == 'E' },
				func(u unit) bool { return u.kind == 'Q' || u.kind == 'S' || u.kind == 'F' })
		case '1':
			s.pop(never, func(u unit) bool { return u.kind == 'P' })
		case 'I', 's':
			s.pop(never, func(u unit) bool { return u.kind == 'E' })
		case 'G', 'H', 'W':
			if u, ok := s.head(); ok {
				s.copyStmt = u.stmt
			}
			switch typ {
			case 'G':
				s.copyDir = "in"
			case 'H':
				s.copyDir = "out"
			default:
				s.copyDir = "both"
			}
		}
		s.s2cMid = true
		if err := p.forward(body); err != nil {
			return s.s2cErr(err)
		}
		s.s2cMid = false
	}
}

func (s *session) s2cErr(err error) airlock.EndReason {
	if s.killedFlag.Load() {
		return ""
	}
	if s.terminated.Load() {
		return airlock.EndClientTerminated
	}
	if errors.Is(err, errProtocol) {
		s.g.log.Warn("pgproxy: malformed message from upstream", "session", s.id)
		return airlock.EndUpstreamProtocolViolation
	}
	s.g.log.Debug("pgproxy: server side ended", "session", s.id, "err", err)
	return airlock.EndUpstreamClosed
}

// commandComplete ends the current execute and records COPY row counts.
func (s *session) commandComplete(body []byte) {
	tag, _, _ := cstring(body)
	if s.copyDir != "" && len(tag) > 5 && string(tag[:5]) == "COPY " {
		rows, _ := strconv.ParseInt(string(tag[5:]), 10, 64)
		s.submit(s.event("db.copy", airlock.OutcomeSuccess, struct {
			Stmt      int64  `json:"stmt"`
			Direction string `json:"direction"`
			Rows      int64  `json:"rows"`
		}{s.copyStmt, s.copyDir, rows}))
	}
	s.copyDir = ""
	s.pop(never, func(u unit) bool { return u.kind == 'E' })
}

// errorResponse records a db.error event for the request it answers.
func (s *session) errorResponse(body []byte) {
	sev, code, msg := errorFields(body)
	u, _ := s.head()
	stmt := int64(0)
	if u.kind != 'S' {
		stmt = u.stmt
	}
	s.copyDir = ""
	s.submit(s.event("db.error", airlock.OutcomeFailure, struct {
		Stmt     int64  `json:"stmt,omitempty"`
		SQLState string `json:"sqlstate"`
		Severity string `json:"severity"`
		Message  string `json:"message,omitempty"`
	}{stmt, code, sev, msg}))
	// In the extended protocol the server skips to the next Sync.
	if u.kind == 'P' || u.kind == 'E' {
		s.pop(func(u unit) bool { return u.kind != 'S' }, nil)
	}
}

// stmtText is statement text as audited: at most MaxStatementText bytes,
// with the length and SHA-256 of the full text when cut.
type stmtText struct {
	Text      string `json:"text,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	TextBytes int    `json:"text_bytes,omitempty"`
	SHA256    string `json:"statement_sha256,omitempty"`
}

func newStmtText(b []byte) stmtText {
	text, truncated, n, sum := cutText(b)
	return stmtText{Text: string(text), Truncated: truncated, TextBytes: n, SHA256: sum}
}

// cutText cuts statement text to MaxStatementText bytes on a rune
// boundary; when it cuts, it also returns the full length and SHA-256.
func cutText(b []byte) (text []byte, truncated bool, n int, sum string) {
	if len(b) <= MaxStatementText {
		return b, false, 0, ""
	}
	h := sha256.Sum256(b)
	i := MaxStatementText
	for i > 0 && i > MaxStatementText-4 && b[i]&0xC0 == 0x80 {
		i--
	}
	return b[:i], true, len(b), hex.EncodeToString(h[:])
}

// setText copies an audited statement text into d.
func (d *queryJSON[S]) setText(t stmtText) {
	d.text, d.truncated, d.textBytes, d.sha256 = S(t.Text), t.Truncated, t.TextBytes, t.SHA256
}

// queryEvent builds a db.query event with d as its details.
func queryEvent[S string | []byte](s *session, d *queryJSON[S]) airlock.Event {
	e := s.event("db.query", airlock.OutcomeSuccess, nil)
	e.Details = appendQueryDetails(make([]byte, 0, detailsSize(d)), d)
	return e
}

func secretOf(b []byte) secrets.Secret { return secrets.Secret(string(b)) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
