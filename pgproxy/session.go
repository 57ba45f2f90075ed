package pgproxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbgw"
	"github.com/airlockhq/airlock/internal/gwsession"
)

// session is one relayed client connection.
type session struct {
	g    *Gateway
	id   string
	t    *Target
	info airlock.Session // static fields; counters live in the atomics
	// live is the session in the gateway's registry; releaseSlot gives
	// back its MaxConcurrent slot (both set by Gateway.reserve).
	live        gwsession.Session
	releaseSlot func()

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
	// guard is the statement guardrails (nil: none); replacement, when
	// inspect sets it, is forwarded instead of the message inspected
	// (both owned by c2s).
	guard       *guard
	replacement []byte
	s2cMid      bool // s2c stopped inside a message
	// cwMu: when a rule holds statements (holdable), s2c holds cwMu while
	// it writes a message to the client, and notices take it to write
	// between messages (hold.go). holding: a statement is held (the
	// session is not idle).
	cwMu     sync.Mutex
	holdable bool
	holding  atomic.Bool
	strict   strictState // with StrictAudit (strict.go)

	bytesIn, bytesOut, statements atomic.Int64

	// life ends the session once, for one reason (with killCode and
	// killMsg, set as it ends); its timers are the grant's deadline and
	// the idle timeout (Touched when a relay direction waits for data).
	life *dbgw.Life
	// terminated is set when the client sent Terminate; the upstream closing
	// after that is the expected consequence, not an upstream failure.
	terminated atomic.Bool
	killCode   string
	killMsg    string

	receipts *dbgw.Receipts // audit receipts awaiting confirmation (receipts.go)
	stmts    statements     // owned by the client→server direction (statements.go)
	requests requestQueue   // pushed client→server, popped server→client (requests.go)

	// Server→client state.
	copyDir  string
	copyStmt int64
	// mask is the column masking state when the rules mask columns
	// (mask.go; the catalog is shared with guard).
	mask *maskState
	// prefix, when inspect sets it, is forwarded before the message
	// inspected (owned by c2s).
	prefix []byte

	app string // client's application_name

	// Batch outcomes (statements.go): batchErr is owned by s2c (an error
	// since the last Sync's ReadyForQuery); batchOK are the outcomes s2c
	// reported and c2s has not applied yet (batchDone: some are there).
	batchErr  bool
	batchMu   sync.Mutex
	batchOK   []batchOutcome
	batchDone atomic.Int32
	// Without a guard no batch is tracked, but its portals still end with
	// their transaction: s2c counts the Syncs answered (syncsAnswered, its
	// own) and publishes in idleSyncs how many had been when the last one
	// answered idle; c2s forgets the portals bound before then
	// (statements.forgetPortals).
	syncsAnswered int64
	idleSyncs     atomic.Int64
}

func newSession(g *Gateway, t *Target, cc *clientConn) *session {
	s := &session{
		g: g, id: airlock.NewID("ses"), t: t,
		client: cc.Conn, cr: cc.r,
		life:  dbgw.NewLife(),
		stmts: statements{prepared: map[string]*stmtInfo{}, portals: map[string]*portalInfo{}},
		guard: newGuard(t.Statements),
	}
	s.receipts = s.newReceipts()
	s.holdable = s.guard != nil && s.guard.holds
	s.info = airlock.Session{
		ID: s.id, GrantID: t.GrantID, UserID: t.UserID, UserName: t.UserName,
		Resource: t.Resource, Kind: airlock.KindPostgres, Access: t.Access,
		SourceAddr: cc.RemoteAddr().String(), Node: g.cfg.Node, StartedAt: g.now(),
	}
	s.live = gwsession.Session{
		ID: s.id, UserID: t.UserID, GrantID: t.GrantID, Resource: t.Resource, Node: g.cfg.Node,
		StartedAt: s.info.StartedAt, EndsAt: t.EndsAt,
		Close: func(r airlock.EndReason) { s.kill(r, codeAdminShutdown, closeMsg(r)) },
		Info:  s.snapshot,
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
	s.c2sPipe = pipe{r: s.cr, w: s.uw, from: s.client, killed: s.life.Ended, onBlock: s.touch}
	s.s2cPipe = pipe{r: s.ur, w: s.cw, from: up.conn, retryOnKill: true, killed: s.life.Ended, onBlock: s.touch}
	if s.holdable {
		s.s2cPipe.wmu = &s.cwMu
	}
	if s.life.Ended() {
		s.interrupt()
	}
}

func (s *session) touch() { s.life.Touch() }

// start records the session start and arms its deadline and idle timers.
func (s *session) start() {
	s.info.StartedAt = s.g.now()
	s.g.m.SessionStarted()
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
	// Idle: nothing moved for the timeout, no request in flight and no
	// statement held.
	s.life.Arm(s.t.EndsAt.Sub(s.g.now()), func() { s.kill(airlock.EndGrantExpired, codeAdminShutdown, msg) },
		s.t.IdleTimeout, func() bool { return s.requests.busy() || s.holding.Load() },
		func() {
			s.kill(airlock.EndIdleTimeout, codeIdleTimeout, "airlock: session idle for more than "+s.t.IdleTimeout.String()+" — session closed")
		})
	s.g.log.Info("pgproxy: session started", "session", s.id, "user", s.t.UserName, "resource", s.t.Resource,
		"grant", s.t.GrantID, "access", s.t.Access, "source", s.info.SourceAddr)
}

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

// kill ends the session once: it records why and interrupts both relay
// directions. msg, when set, is sent to the client as a FATAL error.
func (s *session) kill(reason airlock.EndReason, code, msg string) {
	s.life.End(reason, func() {
		s.killCode, s.killMsg = code, msg
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
		case !s.strict.mid:
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
	return s.heldTerminate && s.life.Reason() == airlock.EndClientTerminated && s.upTx == 'I' && !s.unsynced &&
		!s.requests.busy() && s.copyDir == "" && !s.s2cMid && s.ur.Buffered() == 0 && s.uw.Buffered() == 0 &&
		!s.receipts.Failed() && !s.cancelFailed.Load()
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
	s.life.Stop()
	info := s.snapshot()
	info.EndedAt = s.g.now()
	info.EndReason = string(s.life.Reason())
	s.submit(s.event("session.ended", airlock.OutcomeSuccess, dbgw.EndedDetails(&info)))
	s.receipts.Close()
	dbgw.RecordEnd(s.g.cfg.Sessions, &info, s.g.log, "pgproxy")
	s.g.unregister(s)
	s.g.m.SessionEnded(info.BytesIn, info.BytesOut)
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
