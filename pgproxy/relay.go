package pgproxy

import (
	"errors"
	"strconv"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
)

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
		if typ != 'H' && typ != 'X' {
			// The copy gate (requests.go).
			copying, ok, err := s.requests.copyMode(s.flushServer, s.life.Done())
			if err != nil {
				return s.c2sErr(err)
			}
			if !ok {
				return ""
			}
			if copying {
				switch typ {
				case 'd':
				case 'c', 'f':
					s.requests.setCopying(false) // before the server can start another
				case 'S':
					// Ignored by the server in copy-in mode: not forwarded, so
					// that no request waits for its ReadyForQuery.
					if _, err := p.whole(total); err != nil {
						return s.c2sErr(err)
					}
					p.consume(total)
					continue
				default:
					s.kill(airlock.EndProtocolViolation, codeProtocol, msgDuringCopy)
					return ""
				}
			}
		}
		switch typ {
		case 'P', 'B', 'E', 'C', 'D':
			s.unsynced = true
		case 'S':
			s.unsynced = false
		}
		inspected := false
		switch typ {
		case 'Q', 'P', 'B', 'E', 'C', 'F':
			inspected = true
		case 'D':
			inspected = s.mask != nil
		}
		switch {
		case inspected:
			b, err := p.whole(total)
			if err != nil {
				return s.c2sErr(err)
			}
			if !s.inspect(typ, b[5:]) {
				p.consume(total)
				return s.c2sErr(errProtocol)
			}
			if r := s.replacement; r != nil {
				s.replacement = nil
				b = r
			}
			if pre := s.prefix; pre != nil {
				s.prefix = nil
				if _, err := p.w.Write(pre); err != nil {
					p.consume(total)
					return s.c2sErr(err)
				}
			}
			_, err = p.w.Write(b)
			p.consume(total)
			if err != nil {
				return s.c2sErr(err)
			}
		case typ == 'S':
			if s.guard != nil {
				s.confirmBatches() // so that pending stays as long as the unanswered Syncs
				s.stmts.sync()
			} else {
				s.stmts.batch++ // numbers the portals' batches (forgetPortals)
			}
			s.requests.push(unit{kind: 'S'})
			if err := p.forward(body); err != nil {
				return s.c2sErr(err)
			}
		case typ == 'X':
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
		case typ == 'D' || typ == 'H' || typ == 'd' || typ == 'c' || typ == 'f':
			if typ == 'D' {
				// Its answer (or error) is a response of its own.
				s.requests.push(unit{kind: 'D', stmt: s.stmts.no})
			}
			if err := p.forward(body); err != nil {
				return s.c2sErr(err)
			}
		default:
			return s.c2sErr(errProtocol)
		}
	}
}

// flushServer sends what c2s forwarded, with a Flush of the gateway's
// own: in the extended protocol the server keeps its responses until a
// Sync or Flush, and the copy gate waits for them. A Flush has no
// response, and the server ignores it in copy-in mode and while it skips
// to a Sync.
func (s *session) flushServer() error {
	p := &s.c2sPipe
	if _, err := p.w.Write(flushMsg); err != nil {
		return err
	}
	return p.w.Flush()
}

var flushMsg = []byte{'H', 0, 0, 0, 4}

func (s *session) c2sErr(err error) airlock.EndReason {
	switch {
	case errors.Is(err, errProtocol):
		s.kill(airlock.EndProtocolViolation, codeProtocol, msgTooLarge)
		return ""
	case s.life.Ended():
		return ""
	default:
		s.g.log.Debug("pgproxy: client side ended", "session", s.id, "err", err)
		return airlock.EndClientClosed
	}
}

// s2c relays server→client messages, tracking responses for COPY and
// error events. It returns the end reason, or "" when killed.
func (s *session) s2c() airlock.EndReason {
	p := &s.s2cPipe
	for {
		if s.t.StrictAudit {
			if s.holdable {
				s.cwMu.Lock()
			}
			s.strictBoundary()
			if s.holdable {
				s.cwMu.Unlock()
			}
		}
		if s.life.Ended() {
			return ""
		}
		typ, body, err := p.header(1 << 30)
		if err != nil {
			return s.s2cErr(err)
		}
		if s.holdable {
			// A notice of a held statement waits for this message's end.
			s.cwMu.Lock()
			p.inMsg = true
		}
		r := s.s2cMessage(p, typ, body)
		if s.holdable {
			p.inMsg = false
			s.cwMu.Unlock()
		}
		if r != "" {
			return r
		}
	}
}

// s2cMessage relays one server message whose header is next in p. It
// returns an end reason when the relay must stop.
func (s *session) s2cMessage(p *pipe, typ byte, body int) airlock.EndReason {
	total := 5 + body
	s.bytesOut.Add(int64(total))
	if s.mask != nil {
		if done, r := s.s2cMasked(p, typ, total); done {
			return r
		}
	}
	switch typ {
	case 'C', 'E':
		// A message too large to hold whole is relayed as it streams, its
		// bookkeeping done from its start (an error's severity and code
		// come before its message).
		large := total > 1<<20
		var b []byte
		var err error
		if large {
			b, err = p.peek(min(total, p.r.Size()), true)
		} else {
			b, err = p.whole(total)
		}
		if err != nil {
			return s.s2cErr(err)
		}
		if s.copyDir != "" {
			s.requests.setCopying(false) // (neither comes in copy-in mode)
		}
		replaced := false
		if typ == 'C' {
			s.commandComplete(b[5:])
		} else {
			withhold := false
			if s.mask != nil {
				u, _ := s.requests.head()
				withhold = u.touches
				s.mask.plan = nil
			}
			if withhold {
				b, replaced = withheld('E', b[5:]), true
			}
			if r := s.errorResponse(b[5:]); r != nil {
				b, replaced = r, true
			}
		}
		if large && !replaced {
			break // relayed as it streams, below
		}
		_, err = p.w.Write(b)
		if large {
			if err == nil {
				err = p.skipN(total)
			}
		} else {
			p.consume(total)
		}
		if err != nil {
			return s.s2cErr(err)
		}
		return ""
	case 'Z':
		if body == 1 {
			b, err := p.peek(6, true)
			if err != nil {
				return s.s2cErr(err)
			}
			s.upTx = b[5]
		}
		if s.copyDir != "" {
			s.requests.setCopying(false) // (none comes in copy-in mode)
			s.copyDir = ""
		}
		last, _ := s.requests.pop(func(u unit) bool { return u.kind == 'P' || u.kind == 'D' || u.kind == 'E' || u.kind == 'B' },
			func(u unit) bool { return u.kind == 'Q' || u.kind == 'S' || u.kind == 'F' })
		if last.kind == 'S' && s.guard != nil {
			// A batch ended: its Parses, Binds and Closes all ran unless
			// an error came since the last one (statements.go).
			s.batchEnded(!s.batchErr, s.upTx == 'I')
			s.batchErr = false
		} else if last.kind == 'S' {
			s.syncsAnswered++
			if s.upTx == 'I' {
				s.idleSyncs.Store(s.syncsAnswered)
			}
		}
	case '1':
		s.requests.pop(never, func(u unit) bool { return u.kind == 'P' })
	case '2':
		s.requests.pop(never, func(u unit) bool { return u.kind == 'B' })
	case 'T', 'n':
		// (With masks s2cMasked takes these.)
		s.requests.pop(never, func(u unit) bool { return u.kind == 'D' })
	case 'I', 's':
		s.requests.pop(never, func(u unit) bool { return u.kind == 'E' })
	case 'G', 'H', 'W':
		if u, ok := s.requests.head(); ok {
			s.copyStmt = u.stmt
		}
		switch typ {
		case 'G':
			s.copyDir = "in"
			s.requests.setCopying(true)
		case 'H':
			s.copyDir = "out"
		default:
			s.copyDir = "both"
			s.requests.setCopying(true)
		}
	}
	s.s2cMid = true
	if err := p.forward(body); err != nil {
		return s.s2cErr(err)
	}
	s.s2cMid = false
	return ""
}

func (s *session) s2cErr(err error) airlock.EndReason {
	if s.life.Ended() {
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
	s.requests.pop(never, func(u unit) bool { return u.kind == 'E' })
}

// errorResponse records a db.error event for the request it answers.
// For a request guardrails replaced it returns the denial to send the
// client instead (the denial is audited already).
func (s *session) errorResponse(body []byte) (replace []byte) {
	s.batchErr = true
	u, _ := s.requests.head()
	if u.denied != "" {
		replace = deniedError(u.denied)
		s.copyDir = ""
		if u.kind == 'P' || u.kind == 'D' || u.kind == 'E' || u.kind == 'B' {
			s.requests.pop(func(u unit) bool { return u.kind != 'S' }, nil)
		}
		return replace
	}
	sev, code, msg := errorFields(body)
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
	if u.kind == 'P' || u.kind == 'D' || u.kind == 'E' || u.kind == 'B' {
		s.requests.pop(func(u unit) bool { return u.kind != 'S' }, nil)
	}
	return nil
}

// s2cMasked handles the messages column masking rewrites (mask.go). done
// is false for a message it leaves to s2cMessage.
func (s *session) s2cMasked(p *pipe, typ byte, total int) (done bool, r airlock.EndReason) {
	m := s.mask
	switch typ {
	case 'D':
		if m.plan == nil {
			return false, ""
		}
	case 'T', 'n':
	case 'N':
		if u, _ := s.requests.head(); !u.touches {
			return false, ""
		}
	case 'C', 's', 'I', 'Z':
		m.plan = nil
		return false, ""
	default:
		return false, ""
	}
	b, err := p.whole(total)
	if err != nil {
		return true, s.s2cErr(err)
	}
	defer p.consume(total)
	out := b
	switch typ {
	case 'D':
		var ok bool
		if out, ok = m.dataRow(b[5:]); !ok {
			return true, s.s2cErr(errProtocol)
		}
	case 'N':
		out = withheld('N', b[5:])
	case 'n':
		m.plan = nil
		u, _ := s.requests.head()
		if u.kind == 'D' {
			s.requests.pop(never, func(unit) bool { return true })
			if u.injected {
				return true, ""
			}
		}
	case 'T':
		u, _ := s.requests.head()
		rewritten, masked, denied, ok := m.rowDescription(b[5:], u.touches)
		if !ok {
			return true, s.s2cErr(errProtocol)
		}
		if len(denied) > 0 {
			s.maskEvent(u.stmt, policy.ColumnDeny, denied)
			s.kill(airlock.EndColumnDenied, sqlstateDenied, deniedColumnsMsg(denied))
			return true, ""
		}
		if len(masked) > 0 {
			s.maskEvent(u.stmt, "mask", masked)
			out = rewritten
		}
		if u.kind == 'D' {
			s.requests.pop(never, func(unit) bool { return true })
			if u.injected {
				return true, ""
			}
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return true, s.s2cErr(err)
	}
	return true, ""
}
