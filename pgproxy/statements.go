package pgproxy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sqlguard"
)

// statements is a session's statement bookkeeping, owned by the
// client→server direction: the last statement number, and the prepared
// statements and bound portals by name.
type statements struct {
	no       int64
	prepared map[string]*stmtInfo
	portals  map[string]portalInfo
}

// stmtInfo is a prepared statement as parsed.
type stmtInfo struct {
	no   int64
	text stmtText
	// hold is the verdict of a statement a rule holds: each Execute of a
	// portal bound to it is held (hold.go).
	hold *sqlguard.Verdict
	raw  string // the text, kept for holds only (shown to approvers)
	// touches: the statement may read masked data (mask.go).
	touches bool
}

// portalInfo is a bound portal.
type portalInfo struct {
	stmt    string
	params  []*string
	hold    *sqlguard.Verdict
	raw     string
	touches bool
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
		s.stmts.no++
		s.countStatement()
		d := queryJSON[[]byte]{kind: "query", stmt: s.stmts.no}
		d.text, d.truncated, d.textBytes, d.sha256 = cutText(text)
		e := queryEvent(s, &d)
		denied, ge, hold := s.guardStatement(s.stmts.no, text)
		if hold != nil {
			denied, ge = s.holdStatement(s.stmts.no, *hold, text)
		}
		if denied != "" {
			e.Outcome = airlock.OutcomeDenied
			s.replacement = deniedQuery()
		}
		s.requests.push(unit{kind: 'Q', stmt: s.stmts.no, denied: denied, touches: s.touches()})
		s.submit(e)
		s.submitGuard(ge)
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return false
		}
		text, _, ok := cstring(rest)
		if !ok {
			return false
		}
		s.stmts.no++
		st := &stmtInfo{no: s.stmts.no, text: newStmtText(text)}
		key := string(name)
		old := s.stmts.prepared[key]
		s.stmts.prepared[key] = st
		d := queryJSON[string]{kind: "parse", stmt: st.no, name: key}
		d.setText(st.text)
		e := queryEvent(s, &d)
		denied, ge, hold := s.guardNamed(st.no, text, key)
		if hold != nil {
			// Decided at Parse, held at each Execute: the server may hold
			// the statement, it runs only when a portal of it is executed.
			st.hold, st.raw = hold, string(text)
		} else if key != "" && old != nil && old.hold != nil {
			// The server refuses a Parse of a name it already holds
			// (42P05): what an Execute of it runs is still the held
			// statement, so it stays held.
			st.hold, st.raw = old.hold, old.raw
		}
		if denied != "" {
			// Decided at Parse: the server never holds the statement, so no
			// Execute can run it.
			e.Outcome = airlock.OutcomeDenied
			s.replacement = deniedParse(name)
		}
		st.touches = s.touches()
		if old != nil && old.touches && key != "" {
			st.touches = true // as for holds: the server may keep the old one
		}
		s.requests.push(unit{kind: 'P', stmt: s.stmts.no, denied: denied, touches: st.touches})
		s.submit(e)
		s.submitGuard(ge)
	case 'B':
		portal, rest, ok := cstring(body)
		if !ok {
			return false
		}
		stmt, rest, ok := cstring(rest)
		if !ok {
			return false
		}
		if string(portal) == deniedPortal {
			return false // reserved for refused Executes
		}
		pi := portalInfo{stmt: string(stmt), touches: s.mask != nil}
		if st := s.stmts.prepared[pi.stmt]; st != nil {
			pi.hold, pi.raw = st.hold, st.raw
			pi.touches = pi.touches && st.touches
		} else if s.guard != nil {
			if s.mask != nil {
				pi.touches = s.guard.preparedTouches(pi.stmt)
			}
			// A statement SQL PREPAREd: Bind may name it too.
			if v, ok := s.guard.decidePrepared(pi.stmt); ok && policy.IsHold(v.Action) {
				pi.hold, pi.raw = &v, v.Statement
			}
		}
		if s.t.LogParameters {
			if pi.params, ok = bindParams(rest); !ok {
				return false
			}
		}
		if _, bound := s.stmts.portals[string(portal)]; bound && s.guard != nil && (s.mask != nil || s.guard.holds) {
			// The portal may still exist on the server. A Bind the server
			// refuses (a named portal that exists, 42P03; a missing
			// statement) would leave it there — and a ROLLBACK TO
			// SAVEPOINT usable — under this record of the new one, whose
			// masks and holds are not its own. The gateway closes it
			// first, so that the portal is the new one or none.
			s.prefix = closePortal(portal)
			s.requests.push(unit{kind: 'C', stmt: s.stmts.no, injected: true})
		}
		s.stmts.portals[string(portal)] = pi
	case 'E':
		portal, _, ok := cstring(body)
		if !ok {
			return false
		}
		pi, found := s.stmts.portals[string(portal)]
		if !found {
			// A cursor's name, or a portal the server does not have.
			pi.touches = s.mask != nil
		}
		d := queryJSON[string]{kind: "execute", name: pi.stmt, portal: string(portal), params: pi.params}
		if st := s.stmts.prepared[pi.stmt]; st != nil {
			d.parseStmt = st.no
			d.setText(st.text)
		}
		s.stmts.no++
		d.stmt = s.stmts.no
		s.countStatement()
		e := queryEvent(s, &d)
		denied, ge := "", (*airlock.Event)(nil)
		if pi.hold != nil {
			denied, ge = s.holdStatement(s.stmts.no, *pi.hold, []byte(pi.raw))
			if denied != "" {
				e.Outcome = airlock.OutcomeDenied
				s.replacement = deniedExecute()
			} else {
				// Approved: the portal's statement has started; an Execute
				// resuming it (after PortalSuspended) fetches more of the
				// same run, not another one.
				pi.hold = nil
				s.stmts.portals[string(portal)] = pi
			}
		}
		if s.mask != nil && denied == "" {
			// The rows of this Execute follow a RowDescription the gateway
			// asks for itself (mask.go).
			s.prefix = describePortal(portal)
			s.requests.push(unit{kind: 'D', stmt: s.stmts.no, touches: pi.touches, injected: true})
		}
		s.requests.push(unit{kind: 'E', stmt: s.stmts.no, denied: denied, touches: pi.touches})
		s.submit(e)
		s.submitGuard(ge)
	case 'D':
		// Only inspected with masks: its RowDescription is masked like
		// the rows it describes.
		if len(body) < 2 {
			return false
		}
		name, _, ok := cstring(body[1:])
		if !ok {
			return false
		}
		touches := true
		switch body[0] {
		case 'S':
			if st := s.stmts.prepared[string(name)]; st != nil {
				touches = st.touches
			} else {
				touches = s.guard.preparedTouches(string(name))
			}
		case 'P':
			if pi, ok := s.stmts.portals[string(name)]; ok {
				touches = pi.touches
			}
		default:
			return false
		}
		s.requests.push(unit{kind: 'D', stmt: s.stmts.no, touches: touches})
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
			delete(s.stmts.prepared, string(name))
		case 'P':
			delete(s.stmts.portals, string(name))
		default:
			return false
		}
	case 'F':
		if len(body) < 4 {
			return false
		}
		s.stmts.no++
		s.countStatement()
		d := queryJSON[string]{kind: "function_call", stmt: s.stmts.no, functionOID: binary.BigEndian.Uint32(body[:4])}
		e := queryEvent(s, &d)
		denied, ge := "", (*airlock.Event)(nil)
		if s.guard != nil {
			// A fast-path call names its function by OID: nothing to
			// classify, so on_unknown decides (a Query answers in the same
			// shape as a failed FunctionCall: ErrorResponse, ReadyForQuery).
			denied, ge = s.guardFunctionCall(s.stmts.no)
			if denied == "" && s.mask != nil {
				// Its result is not a row the gateway can mask.
				denied, ge = s.verdictEvent(s.stmts.no, sqlguard.Verdict{Action: policy.StatementDeny, Rule: "columns",
					Class: sqlguard.ClassUnknown, Message: "a fast-path function call is refused while columns are masked"})
			}
			if denied != "" {
				e.Outcome = airlock.OutcomeDenied
				s.replacement = deniedQuery()
			}
		}
		s.requests.push(unit{kind: 'F', stmt: s.stmts.no, denied: denied})
		s.submit(e)
		s.submitGuard(ge)
	}
	return true
}

func (s *session) countStatement() {
	s.statements.Add(1)
	s.g.m.Statement()
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

// touches reports whether the statement just decided may read masked
// data (false without masks).
func (s *session) touches() bool {
	return s.mask != nil && s.guard.touches
}
