package mysqlproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbgw"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/internal/mysqlwire"
)

// session is one relayed client connection. One goroutine (run) reads a
// command, audits it, forwards it and relays the response to its end;
// kill may come from anywhere.
type session struct {
	g      *Gateway
	id     string
	t      *Target
	connID uint32
	caps   mysqlwire.Capability
	source string
	hr     *mysqlwire.HandshakeResponse

	client   *mysqlwire.Conn
	clientNC net.Conn
	cw       *bufio.Writer // to the client, under wmu
	wmu      sync.Mutex
	nextSeq  uint8 // the sequence id the client expects next (under wmu)
	midReply bool  // part of a response has reached the client (under wmu)
	cmdSeq   uint8 // the sequence id a reply to the command in hand starts at; 0 between commands (under wmu)

	up       *mysqlwire.ClientConn
	threadID uint32

	receipts *dbgw.Receipts
	live     *gwsession.Session
	release  func()

	stmts   map[uint32]*stmtInfo
	nStmt   int64
	started time.Time

	bytesIn, bytesOut, statements atomic.Int64
	// busy is set while a reply is relayed: a long statement is not idle.
	busy atomic.Bool

	// life ends the session once, for one reason; its timers are the
	// grant's deadline and the idle timeout (Touched by each command).
	life *dbgw.Life
}

// stmtInfo is a prepared statement as the session knows it.
type stmtInfo struct {
	n         int64 // the stmt number of its prepare event
	text      string
	numParams int
	types     []mysqlwire.ParamType
}

func newSession(g *Gateway, t *Target, mc *mysqlwire.Conn, tc *tls.Conn, connID uint32, caps mysqlwire.Capability, source string, hr *mysqlwire.HandshakeResponse) *session {
	s := &session{g: g, id: airlock.NewID("ses"), t: t, connID: connID, caps: caps, source: source, hr: hr,
		client: mc, clientNC: tc, cw: bufio.NewWriterSize(tc, 32<<10), stmts: map[uint32]*stmtInfo{}, life: dbgw.NewLife(),
		cmdSeq:  mc.Seq(), // until the OK: an ERR continues the auth exchange
		started: g.cfg.Now()}
	s.receipts = dbgw.NewReceipts(g.cfg.Audit, func(err error) {
		g.log.Error("mysqlproxy: audit receipt failed; closing session", "session", s.id, "err", err)
		s.kill(airlock.EndAuditUnavailable)
	})
	return s
}

// Messages clients see when the gateway ends their session.
func closeMsg(r airlock.EndReason) string { return "airlock: " + r.Text() + " — session closed" }

// run logs in upstream, tells the client it is in, and relays until the
// session ends.
func (s *session) run(ctx context.Context) {
	g, t := s.g, s.t
	now := g.cfg.Now()
	if !now.Before(t.EndsAt) {
		g.m.Refused("expired")
		s.refuse(airlock.EndGrantExpired, "the grant has ended")
		return
	}
	release, ok := g.reg.Reserve(t.UserID, t.GrantID, t.MaxConcurrent)
	if !ok {
		g.m.Refused("too_many")
		s.deny("max_concurrent")
		s.clientErr(&mysqlwire.ServerError{Code: mysqlwire.ErConCount, State: "08004",
			Message: "airlock: this grant already has " + strconv.Itoa(t.MaxConcurrent) + " live sessions (the policy's max_concurrent)"})
		return
	}
	s.release = release
	defer release()
	up, err := mysqlwire.Dial(ctx, "tcp", t.UpstreamAddr, mysqlwire.ClientConfig{
		User: t.UpstreamUser, Password: []byte(t.UpstreamPassword.Reveal()), Database: t.UpstreamDatabase, TLS: t.UpstreamTLS,
		Capabilities: s.caps & mysqlwire.RelayCapabilities, Charset: s.hr.Charset,
		Attrs: []mysqlwire.Attr{{Key: "program_name", Value: "airlock"}, {Key: "airlock_user", Value: t.UserName}, {Key: "airlock_grant", Value: t.GrantID}}})
	if err != nil {
		g.log.Warn("mysqlproxy: upstream login failed", "resource", t.Resource, "err", err)
		g.m.Refused("upstream")
		s.deny("upstream_unavailable")
		s.clientErr(&mysqlwire.ServerError{Code: mysqlwire.ErUnknownError, State: "HY000", Message: "airlock: the database is unreachable or refused the brokered login"})
		return
	}
	s.up, s.threadID = up, up.Server.ConnectionID
	g.m.Upstream("new")
	defer up.Net.Close()
	if t.ReadOnly {
		if err := s.exec("SET SESSION TRANSACTION READ ONLY"); err != nil {
			g.log.Error("mysqlproxy: read-only setup failed", "session", s.id, "err", err)
			s.deny("upstream_unavailable")
			s.clientErr(&mysqlwire.ServerError{Code: mysqlwire.ErUnknownError, State: "HY000", Message: "airlock: the session could not be made read-only; refused"})
			return
		}
	}
	s.live = &gwsession.Session{ID: s.id, UserID: t.UserID, GrantID: t.GrantID, Resource: t.Resource, Node: g.cfg.Node,
		StartedAt: s.started, EndsAt: t.EndsAt, Close: s.kill, Info: s.snapshot}
	if !g.reg.Add(s.live) {
		g.m.Refused("shutdown")
		s.clientErr(&mysqlwire.ServerError{Code: mysqlwire.ErServerShutdown, State: "08S01", Message: closeMsg(airlock.EndServerShutdown)})
		return
	}
	g.mu.Lock()
	g.byConnID[s.connID] = s
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.byConnID, s.connID)
		g.mu.Unlock()
	}()
	go s.receipts.Watch()
	g.m.SessionStarted()
	s.submit("session.started", airlock.OutcomeSuccess, map[string]any{"access": t.Access, "tls": true, "read_only": t.ReadOnly,
		"strict_audit": t.StrictAudit, "ends_at": t.EndsAt, "database": t.UpstreamDatabase, "upstream_thread_id": s.threadID,
		"upstream_tls": up.TLS})
	if g.cfg.Sessions != nil {
		info := s.snapshot()
		if err := g.cfg.Sessions.CreateSession(context.Background(), &info); err != nil {
			g.log.Error("mysqlproxy: record session", "session", s.id, "err", err)
		}
	}
	s.life.Arm(t.EndsAt.Sub(now), func() { s.kill(airlock.EndGrantExpired) },
		t.IdleTimeout, s.busy.Load, func() { s.kill(airlock.EndIdleTimeout) })
	defer s.life.Stop()
	s.clientNC.SetDeadline(time.Time{})
	up.Net.SetDeadline(time.Time{})
	s.client.MaxPacket = MaxCommandSize
	s.life.Touch()

	// In: the client's auth exchange continues, so the OK carries the next
	// sequence id.
	s.wmu.Lock()
	err = s.writeClient(mysqlwire.AppendOK(nil, mysqlwire.OK{Status: mysqlwire.StatusAutocommit}), s.client.Seq())
	s.wmu.Unlock()
	reason := airlock.EndClientClosed
	if err == nil {
		reason = s.relay()
	}
	s.kill(reason)
	s.end()
}

// relay runs commands until the session ends; it returns why.
func (s *session) relay() airlock.EndReason {
	tracker := mysqlwire.NewResponseTracker(s.caps)
	for {
		s.client.ResetSeq()
		s.setCmdSeq(0)
		p, err := s.client.ReadPacket()
		if err != nil {
			if s.life.Ended() {
				return s.life.Reason()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return airlock.EndClientClosed
			}
			if errors.Is(err, mysqlwire.ErrPacketTooLarge) || errors.Is(err, mysqlwire.ErrSequence) || errors.Is(err, mysqlwire.ErrMalformed) {
				return airlock.EndProtocolViolation
			}
			return airlock.EndClientClosed
		}
		s.life.Touch()
		s.bytesIn.Add(int64(len(p)) + 4)
		cmdSeq := s.client.Seq()
		s.setCmdSeq(cmdSeq)
		req, err := mysqlwire.ParseCommand(p)
		if err != nil {
			return airlock.EndProtocolViolation
		}
		if req.Command == mysqlwire.ComQuit {
			return airlock.EndClientTerminated
		}
		forward, end := s.decide(req, &p, cmdSeq)
		if end != "" {
			return end
		}
		if !forward {
			continue
		}
		if s.t.StrictAudit {
			if s.receipts.AwaitDurable(s.life.Done()) != nil {
				s.errAt(cmdSeq, &mysqlwire.ServerError{Code: mysqlwire.ErUnknownError, State: "HY000", Message: "airlock: audit log unavailable — statement not run"})
				return airlock.EndAuditUnavailable
			}
		}
		uc := s.up.Conn
		uc.ResetSeq()
		if err := uc.WritePacket(p); err != nil {
			return s.upstreamEnd()
		}
		more, err := tracker.Begin(p[:min(len(p), 16)], uc.Seq())
		if err != nil {
			return airlock.EndProtocolViolation // decide refused what the tracker cannot follow
		}
		if !more {
			if req.Command == mysqlwire.ComStmtClose {
				delete(s.stmts, req.StmtID)
			}
			continue
		}
		s.busy.Store(true)
		end = s.relayResponse(tracker, req)
		s.busy.Store(false)
		s.life.Touch() // idle counts from the end of the reply
		if end != "" {
			return end
		}
	}
}

// relayResponse copies the server's response to the client, packet by
// packet, until it ends; LOCAL INFILE requests are refused upstream.
func (s *session) relayResponse(tracker *mysqlwire.ResponseTracker, req *mysqlwire.Request) airlock.EndReason {
	uc := s.up.Conn
	for {
		h, prefix, err := uc.Next()
		if err != nil {
			return s.upstreamEnd()
		}
		step, err := tracker.Feed(h, prefix)
		if err != nil {
			return airlock.EndUpstreamProtocolViolation
		}
		if step == mysqlwire.StepLocalInfile {
			// Never ask the client for a file: answer the server with
			// the empty packet that ends the file (it then reports the
			// statement's outcome, relayed as usual).
			if uc.Discard() != nil {
				return s.upstreamEnd()
			}
			uc.SetSeq(h.Seq + 1)
			if uc.WritePacket(nil) != nil || tracker.InfileSent(1) != nil {
				return s.upstreamEnd()
			}
			s.submit("db.error", airlock.OutcomeDenied, map[string]any{"stmt": s.nStmt, "denied": "load_data_local",
				"message": "LOAD DATA LOCAL is not allowed through Airlock"})
			continue
		}
		s.wmu.Lock()
		if s.life.Ended() {
			s.wmu.Unlock()
			return s.life.Reason()
		}
		n, err := uc.CopyTo(s.cw)
		s.nextSeq = h.Seq + 1
		s.midReply = step != mysqlwire.StepDone
		if err == nil && (step == mysqlwire.StepDone || uc.Buffered() == 0) {
			err = s.cw.Flush()
		}
		s.wmu.Unlock()
		s.bytesOut.Add(n)
		if err != nil {
			if s.life.Ended() {
				return s.life.Reason()
			}
			return airlock.EndClientClosed
		}
		if step == mysqlwire.StepDone {
			break
		}
	}
	res := tracker.Result()
	if res.Err != nil {
		s.submit("db.error", airlock.OutcomeFailure, map[string]any{"stmt": s.nStmt, "code": res.Err.Code, "sqlstate": res.Err.State,
			"message": clip(res.Err.Message, 1024)})
	}
	if req.Command == mysqlwire.ComStmtPrepare && res.Err == nil {
		s.stmts[res.StmtID] = &stmtInfo{n: s.nStmt, text: req.Text, numParams: int(res.NumParams)}
	}
	return ""
}

// decide audits a command and says whether to forward it (p may be
// rewritten: KILL of a connection id the client knows). Refused commands
// get an ERR here.
func (s *session) decide(req *mysqlwire.Request, p *[]byte, seq uint8) (forward bool, end airlock.EndReason) {
	t := s.t
	switch req.Command {
	case mysqlwire.ComInitDB:
		if !allowedDB(t, req.Text) {
			s.refuseDB(req.Text, seq)
			return false, ""
		}
		s.stmt(&queryDetails{Kind: "init_db", Database: req.Text})
		return true, ""
	case mysqlwire.ComQuery:
		if dynamicSQL(req.Text) {
			// A KILL or USE inside would pass the readers.
			s.stmtDenied("query", req.Text, "dynamic_sql")
			s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErNotAllowedCommand, State: "42000",
				Message: "airlock: PREPARE, EXECUTE IMMEDIATE and compound statements are not relayed (the gateway reads each statement before the server runs it)"})
			return false, ""
		}
		if db, ok := useTarget(req.Text); ok && !allowedDB(t, db) {
			s.refuseDB(db, seq)
			return false, ""
		}
		if kind, id, isKill, ok := killTarget(req.Text); isKill {
			up, found := s.upstreamThread(id)
			if !ok || !found {
				s.stmtDenied("query", req.Text, "kill_other")
				s.errAt(seq, &mysqlwire.ServerError{Code: 1094, State: "HY000", Message: "Unknown thread id: " + strconv.FormatUint(uint64(id), 10)})
				return false, ""
			}
			*p = mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, "KILL "+kind+strconv.FormatUint(uint64(up), 10))
		}
		s.stmtText(&queryDetails{Kind: "query"}, req.Text)
		return true, ""
	case mysqlwire.ComProcessKill:
		up, ok := s.upstreamThread(req.ProcessID)
		if !ok {
			s.stmtDenied("process_kill", "", "kill_other")
			s.errAt(seq, &mysqlwire.ServerError{Code: 1094, State: "HY000", Message: "Unknown thread id: " + strconv.FormatUint(uint64(req.ProcessID), 10)})
			return false, ""
		}
		*p = mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, "KILL CONNECTION "+strconv.FormatUint(uint64(up), 10))
		s.stmt(&queryDetails{Kind: "process_kill", ConnectionID: req.ProcessID})
		return true, ""
	case mysqlwire.ComStmtPrepare:
		// Prepared, USE and KILL would run at execute without the
		// readers' check or mapping; the server prepares both.
		_, isUse := useTarget(req.Text)
		if _, _, isKill, _ := killTarget(req.Text); isUse || isKill || dynamicSQL(req.Text) {
			s.stmtDenied("prepare", req.Text, "not_preparable")
			s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErNotAllowedCommand, State: "42000",
				Message: "airlock: USE and KILL are not relayed as prepared statements; send them as plain queries"})
			return false, ""
		}
		s.stmtText(&queryDetails{Kind: "prepare"}, req.Text)
		return true, ""
	case mysqlwire.ComStmtExecute:
		info := s.stmts[req.StmtID]
		if info == nil {
			s.errAt(seq, &mysqlwire.ServerError{Code: 1243, State: "HY000", Message: "Unknown prepared statement handler given to mysqld_stmt_execute"})
			return false, ""
		}
		if req.Flags != 0 {
			// A cursor: its rows come by COM_STMT_FETCH, which the
			// response tracker does not follow. Refused before it is
			// sent, not after (the session would end).
			s.stmtDenied("execute", info.text, "cursor")
			s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErNotAllowedCommand, State: "42000", Message: "airlock: cursors (COM_STMT_EXECUTE with a cursor flag) are not relayed"})
			return false, ""
		}
		ex, err := mysqlwire.ParseStmtExecute(*p, mysqlwire.ExecuteOptions{NumParams: info.numParams, PrevTypes: info.types, DecodeValues: t.LogParameters, MaxParams: 64})
		if err != nil {
			return false, airlock.EndProtocolViolation
		}
		info.types = ex.Types
		d := &queryDetails{Kind: "execute", StmtID: req.StmtID, PrepareStmt: info.n}
		if t.LogParameters {
			d.Params = make([]*string, 0, len(ex.Params))
			for _, v := range ex.Params {
				if v.Null {
					d.Params = append(d.Params, nil)
				} else {
					d.Params = append(d.Params, &v.Text)
				}
			}
		}
		s.stmtText(d, info.text)
		return true, ""
	case mysqlwire.ComSetOption:
		if req.Option == 0 { // MYSQL_OPTION_MULTI_STATEMENTS_ON
			// Multi-statements would put text past the statement the
			// gateway reads (a USE after a SELECT) in one command.
			s.stmtDenied("set_option", "", "multi_statements")
			s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErNotAllowedCommand, State: "42000", Message: "airlock: multi-statements are not allowed through the gateway"})
			return false, ""
		}
		return true, ""
	case mysqlwire.ComStmtClose, mysqlwire.ComStmtReset, mysqlwire.ComPing, mysqlwire.ComStatistics,
		mysqlwire.ComStmtSendLongData, mysqlwire.ComStmtFetch:
		return true, ""
	case mysqlwire.ComResetConnection:
		if t.ReadOnly {
			// It would lift SET SESSION TRANSACTION READ ONLY.
			s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErNotAllowedCommand, State: "42000", Message: "airlock: COM_RESET_CONNECTION is refused on a read-only grant"})
			return false, ""
		}
		return true, ""
	}
	s.stmtDenied(req.Command.String(), "", "unsupported_command")
	s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErUnknownCom, State: "08S01", Message: "airlock: " + req.Command.String() + " is not relayed"})
	return false, ""
}

func allowedDB(t *Target, db string) bool {
	for _, d := range t.Databases {
		if d == db {
			return true
		}
	}
	return false
}

func (s *session) refuseDB(db string, seq uint8) {
	s.stmtDenied("init_db", "", "database_not_allowed")
	s.errAt(seq, &mysqlwire.ServerError{Code: mysqlwire.ErDBAccessDenied, State: "42000",
		Message: "airlock: database " + strconv.Quote(db) + " is not one " + s.t.Resource + " opens (" + strings.Join(s.t.Databases, ", ") + ")"})
}

// upstreamThread maps a connection id the client was told (this session's
// or another live one of the same user here) to its upstream thread id.
func (s *session) upstreamThread(id uint32) (uint32, bool) {
	s.g.mu.Lock()
	o := s.g.byConnID[id]
	s.g.mu.Unlock()
	if o == nil || o.t.UserID != s.t.UserID || o.t.Resource != s.t.Resource {
		return 0, false
	}
	return o.threadID, true
}

// queryDetails are a db.query event's details (a struct: this is per
// statement).
type queryDetails struct {
	Stmt            int64     `json:"stmt"`
	Kind            string    `json:"kind"`
	Text            string    `json:"text,omitempty"`
	Truncated       bool      `json:"truncated,omitempty"`
	TextBytes       int       `json:"text_bytes,omitempty"`
	StatementSHA256 string    `json:"statement_sha256,omitempty"`
	Database        string    `json:"database,omitempty"`
	ConnectionID    uint32    `json:"connection_id,omitempty"`
	StmtID          uint32    `json:"stmt_id,omitempty"`
	PrepareStmt     int64     `json:"prepare_stmt,omitempty"`
	Params          []*string `json:"params,omitempty"`
}

// stmt audits a statement-level command (before it is forwarded).
func (s *session) stmt(d *queryDetails) {
	s.nStmt++
	s.statements.Add(1)
	d.Stmt = s.nStmt
	if d.Kind == "query" || d.Kind == "execute" {
		s.g.m.Statement()
	}
	b, _ := json.Marshal(d)
	s.submitJSON("db.query", airlock.OutcomeSuccess, b)
}

// stmtText audits a statement with its text, cut at MaxStatementText.
func (s *session) stmtText(d *queryDetails, text string) {
	d.Text = text
	if len(text) > MaxStatementText {
		sum := sha256.Sum256([]byte(text))
		d.Text, d.Truncated, d.TextBytes, d.StatementSHA256 = text[:MaxStatementText], true, len(text), hex.EncodeToString(sum[:])
	}
	s.stmt(d)
}

func (s *session) stmtDenied(kind, text, why string) {
	s.submit("db.query", airlock.OutcomeDenied, map[string]any{"kind": kind, "text": clip(text, MaxStatementText), "denied": why})
}

// exec runs one statement upstream for the gateway itself.
func (s *session) exec(sql string) error {
	uc := s.up.Conn
	uc.ResetSeq()
	p := mysqlwire.AppendCommand(nil, mysqlwire.ComQuery, sql)
	if err := uc.WritePacket(p); err != nil {
		return err
	}
	tr := mysqlwire.NewResponseTracker(s.up.Capabilities)
	if _, err := tr.Begin(p, uc.Seq()); err != nil {
		return err
	}
	for {
		h, prefix, err := uc.Next()
		if err != nil {
			return err
		}
		step, err := tr.Feed(h, prefix)
		if err != nil {
			return err
		}
		if err := uc.Discard(); err != nil {
			return err
		}
		if step == mysqlwire.StepDone {
			break
		}
	}
	if e := tr.Result().Err; e != nil {
		return e
	}
	return nil
}

// setCmdSeq records where a reply to the command in hand starts, for kill.
func (s *session) setCmdSeq(seq uint8) {
	s.wmu.Lock()
	s.cmdSeq, s.midReply = seq, false
	s.wmu.Unlock()
}

// writeClient writes one packet with sequence id seq (s.wmu held).
func (s *session) writeClient(payload []byte, seq uint8) error {
	s.client.SetSeq(seq)
	if err := s.client.WritePacket(payload); err != nil {
		return err
	}
	s.nextSeq = seq + 1
	return nil
}

// errAt answers the command whose packet carried seq with e.
func (s *session) errAt(seq uint8, e *mysqlwire.ServerError) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.cw.Flush()
	s.writeClient(e.Append(nil), seq)
}

// clientErr sends e during the handshake (the auth exchange's sequence).
func (s *session) clientErr(e *mysqlwire.ServerError) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.writeClient(e.Append(nil), s.client.Seq())
}

// refuse ends a session that never started.
func (s *session) refuse(reason airlock.EndReason, why string) {
	s.deny(string(reason))
	s.clientErr(&mysqlwire.ServerError{Code: mysqlwire.ErAccessDenied, State: "28000", Message: "airlock: " + why})
}

// deny audits a valid token that opened no session.
func (s *session) deny(reason string) {
	t := s.t
	s.g.cfg.Audit.Submit(airlock.Event{Actor: airlock.Actor{ID: t.UserID, Name: t.UserName}, Action: "session.denied", Resource: t.Resource,
		GrantID: t.GrantID, SourceAddr: s.source, Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("reason", reason)})
}

func (s *session) upstreamEnd() airlock.EndReason {
	if s.life.Ended() {
		return s.life.Reason()
	}
	return airlock.EndUpstreamClosed
}

// kill ends the session once: the client is told why with an ERR (at a
// packet boundary: in place of the rest of a response, or before the next
// command), then both sides are closed, which ends relay.
func (s *session) kill(reason airlock.EndReason) {
	s.life.End(reason, func() {
		if reason != airlock.EndClientClosed && reason != airlock.EndClientTerminated {
			s.wmu.Lock()
			seq := s.nextSeq
			if !s.midReply {
				seq = s.cmdSeq // between commands 0: the client reads it as the next response
			}
			s.clientNC.SetWriteDeadline(time.Now().Add(time.Second))
			// Raw bytes through cw, not s.client: relay may be reading on
			// s.client, whose sequence id is relay's alone.
			e := (&mysqlwire.ServerError{Code: 1927, State: "70100", Message: closeMsg(reason)}).Append(nil)
			s.cw.Write(mysqlwire.Header{Length: len(e), Seq: seq}.Append(nil))
			s.cw.Write(e)
			s.cw.Flush()
			s.wmu.Unlock()
		}
		s.clientNC.Close()
		if s.up != nil {
			s.up.Net.Close()
		}
	})
}

// end records session.ended and the session row, once relay has stopped.
func (s *session) end() {
	s.g.reg.Remove(s.live)
	info := s.snapshot()
	info.EndedAt = s.g.cfg.Now()
	info.EndReason = string(s.life.Reason())
	b, _ := json.Marshal(dbgw.EndedDetails(&info))
	s.submitJSON("session.ended", airlock.OutcomeSuccess, b)
	s.receipts.Close()
	dbgw.RecordEnd(s.g.cfg.Sessions, &info, s.g.log, "mysqlproxy")
	s.g.m.SessionEnded(info.BytesIn, info.BytesOut)
	s.g.log.Info("mysql session ended", "session", s.id, "reason", info.EndReason, "statements", info.Statements)
}

func (s *session) snapshot() airlock.Session {
	t := s.t
	return airlock.Session{ID: s.id, GrantID: t.GrantID, UserID: t.UserID, UserName: t.UserName, Resource: t.Resource,
		Kind: airlock.KindMySQL, Access: t.Access, SourceAddr: s.source, Node: s.g.cfg.Node, StartedAt: s.started,
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Statements: s.statements.Load()}
}

// submit audits a session event.
func (s *session) submit(action, outcome string, d map[string]any) {
	b, _ := json.Marshal(d)
	s.submitJSON(action, outcome, b)
}

func (s *session) submitJSON(action, outcome string, b []byte) {
	t := s.t
	s.receipts.Submit(airlock.Event{Actor: airlock.Actor{ID: t.UserID, Name: t.UserName}, Action: action, Resource: t.Resource,
		GrantID: t.GrantID, SessionID: s.id, SourceAddr: s.source, Outcome: outcome, Details: b})
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
