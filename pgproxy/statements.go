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
//
// In the extended protocol the server skips every message after an
// error up to the next Sync, so a Parse, Bind or Close the gateway
// forwarded may not have happened: the old statement or portal is still
// there. Each record keeps, in prev, what the name held before, until the
// batch (the messages up to a Sync) that changed it is confirmed to have
// run without an error (confirm). A message in the same batch as the
// change sees the change alone (had the change failed, the message would
// have been skipped); a later one sees the change and every unconfirmed
// or failed predecessor, and is decided as the strictest of them.
type statements struct {
	no       int64
	prepared map[string]*stmtInfo
	portals  map[string]*portalInfo
	// batch numbers the current batch (Syncs sent so far); changed are
	// the records it changed; pending the batches sent and not yet
	// confirmed, oldest first.
	batch   int64
	changed []change
	pending [][]change
	swept   int64 // the last forgetPortals sweep's n
}

// change is a record a batch made under name (one of the two is set).
type change struct {
	name   string
	stmt   *stmtInfo
	portal *portalInfo
}

// stmtInfo is a prepared statement as parsed.
type stmtInfo struct {
	no   int64
	text stmtText
	// hold is the verdict of a statement a rule holds: each Execute of a
	// portal bound to it is held (hold.go).
	hold *sqlguard.Verdict
	raw  string // the text, kept for holds only (shown to approvers)
	// touches: the statement may read masked data (mask.go); copyIn: it
	// may start a COPY FROM STDIN (requests.go).
	touches, copyIn bool
	// closed: a Close of the name.
	closed bool
	record[stmtInfo]
}

// portalInfo is a bound portal.
type portalInfo struct {
	stmt            string
	params          []*string
	hold            *sqlguard.Verdict
	raw             string
	touches, copyIn bool
	// approved: the portal's held run was approved (an Execute resuming
	// it is not held again).
	approved bool
	closed   bool
	record[portalInfo]
}

// record is the batch bookkeeping stmtInfo and portalInfo share: the
// batch that made the record, what the name held before while that is
// uncertain (prev), and the record's index in its batch's changes.
type record[T any] struct {
	batch  int64
	prev   *T
	change int
}

func (r *record[T]) rec() *record[T] { return r }

// recorded is a pointer to stmtInfo or portalInfo.
type recorded[T any] interface {
	*T
	rec() *record[T]
	absorb(*T)
}

// maxNames bounds the statement and portal names a session with
// guardrails keeps records for (the client chooses them; a name changed
// in a batch with an error is kept even when the server skipped the
// change). Past it the session is ended: forgetting a name the server
// may hold would let it run undecided.
const maxNames = 10000

// maxCandidates bounds the records kept under one name: older
// candidates are merged into the last one kept, which then stands for
// all of them (the strictest of each).
const maxCandidates = 8

// effective is what a message of batch cur may find under a statement
// name: whether any candidate exists, may touch masked data, or is held.
func (st *stmtInfo) effective(cur int64) (found, touches, copyIn bool, hold *sqlguard.Verdict, raw string) {
	for x := st; x != nil; x = x.prev {
		if !x.closed {
			found = true
			touches = touches || x.touches
			copyIn = copyIn || x.copyIn
			if hold == nil && x.hold != nil {
				hold, raw = x.hold, x.raw
			}
		}
		if x.batch == cur {
			break // the change this message follows happened, or it is skipped
		}
	}
	return found, touches, copyIn, hold, raw
}

// effective is portalInfo's counterpart of stmtInfo.effective; pi is the
// newest candidate found (its statement name and parameters are audited).
func (p *portalInfo) effective(cur int64) (pi *portalInfo, touches, copyIn bool, hold *sqlguard.Verdict, raw string) {
	for x := p; x != nil; x = x.prev {
		if !x.closed {
			if pi == nil {
				pi = x
			}
			touches = touches || x.touches
			copyIn = copyIn || x.copyIn
			if hold == nil && x.hold != nil && !x.approved {
				hold, raw = x.hold, x.raw
			}
		}
		if x.batch == cur {
			break
		}
	}
	return pi, touches, copyIn, hold, raw
}

// absorb makes st stand for itself and n too: a candidate if either is,
// the strictest of both, and n's statement for the audit.
func (st *stmtInfo) absorb(n *stmtInfo) {
	switch {
	case n.closed:
	case st.closed:
		st.closed, st.no, st.text, st.hold, st.raw, st.touches, st.copyIn = false, n.no, n.text, n.hold, n.raw, n.touches, n.copyIn
	default:
		st.touches = st.touches || n.touches
		st.copyIn = st.copyIn || n.copyIn
		if n.hold != nil {
			st.hold, st.raw = n.hold, n.raw
		}
		st.no, st.text = n.no, n.text
	}
}

// absorb is stmtInfo.absorb for portals: a hold not approved in either
// stays.
func (p *portalInfo) absorb(n *portalInfo) {
	if n.closed {
		return
	}
	if p.closed {
		*p = portalInfo{stmt: n.stmt, params: n.params, hold: n.hold, raw: n.raw, touches: n.touches, copyIn: n.copyIn,
			approved: n.approved, record: p.record}
		return
	}
	if p.hold == nil || p.approved {
		p.hold, p.raw, p.approved = n.hold, n.raw, n.approved
	} else if n.hold != nil && !n.approved {
		p.hold, p.raw = n.hold, n.raw
	}
	p.stmt, p.params = n.stmt, n.params
	p.touches = p.touches || n.touches
	p.copyIn = p.copyIn || n.copyIn
}

// sync ends the current batch (the client sent Sync).
func (st *statements) sync() int64 {
	b := st.batch
	st.pending = append(st.pending, st.changed)
	st.changed = nil
	st.batch++
	return b
}

// confirm settles the oldest pending batch: ran without an error (ok) —
// its records are then certain — or not, and its records keep their
// predecessors for good. idle: no transaction was open at its end, so no
// portal bound up to then is left.
func (st *statements) confirm(ok, idle bool) {
	if len(st.pending) == 0 {
		return
	}
	b := st.batch - int64(len(st.pending))
	changes := st.pending[0]
	st.pending[0] = nil
	st.pending = st.pending[1:]
	if idle {
		st.endPortals(b)
	}
	if !ok {
		return
	}
	for _, c := range changes {
		switch {
		case c.stmt != nil:
			c.stmt.prev = nil
			if c.stmt.closed && st.prepared[c.name] == c.stmt {
				delete(st.prepared, c.name)
			}
		case c.portal != nil:
			c.portal.prev = nil
			if c.portal.closed && st.portals[c.name] == c.portal {
				delete(st.portals, c.name)
			}
		}
	}
}

// endPortals forgets the portal records of batches up to b: the
// transaction they were bound in has ended.
func (st *statements) endPortals(b int64) {
	for name, p := range st.portals {
		if p.batch <= b {
			delete(st.portals, name)
			continue
		}
		for x := p; x.prev != nil; x = x.prev {
			if x.prev.batch <= b {
				x.prev = nil
				break
			}
		}
	}
}

// forgetPortals is endPortals for a session without a guard, whose
// batches are not tracked: the server answered the Sync that ended batch
// n-1 outside a transaction, so no portal bound in a batch before n is
// left (forgetPortal keeps those that may start a copy). Without it every
// portal name a client ever bound would stay (pgjdbc names a new one, C_1,
// C_2, …, for each query it fetches in parts). The records are swept once
// per such answer.
func (st *statements) forgetPortals(n int64) {
	if n <= st.swept {
		return
	}
	st.swept = n
	for name, p := range st.portals {
		if p.batch < n {
			st.forgetPortal(name)
		}
	}
}

// maxNameBytes is how much of a statement or portal name the server
// keys it by: its hash tables take NAMEDATALEN-1 bytes (63 in every
// build we know of) and ignore the rest, so two names that agree in those
// bytes are one to the server.
const maxNameBytes = 63

// serverName is the name the server keys a protocol statement or portal
// name as. Records must be kept under it: under the whole name, a client
// could Parse a held or masked statement as "<63 bytes>X" and then Bind
// "<63 bytes>Y", which the gateway would decide as another statement while
// the server runs the first.
func serverName(b []byte) []byte { return b[:min(len(b), maxNameBytes)] }

// forgetStmt and forgetPortal drop a record of a session without a
// guard (a Close, a plain DEALLOCATE, a transaction's end), except one
// that may start a copy: nothing confirms that the server dropped the name
// too (a DEALLOCATE in an aborted transaction fails, a skipped Close does
// nothing), and a later Parse or Bind of the name that the server refuses
// would otherwise leave a record saying "no copy" while the server still
// holds the COPY. Kept, it passes its mark on (setStmt, setPortal).
func (st *statements) forgetStmt(name string) {
	if r := st.prepared[name]; r != nil && !r.copyIn {
		delete(st.prepared, name)
	}
}

func (st *statements) forgetPortal(name string) {
	if p := st.portals[name]; p != nil && !p.copyIn {
		delete(st.portals, name)
	}
}

// setStmt records rec under name in the current batch. It reports false
// when the name would be one past maxNames.
func (st *statements) setStmt(name string, rec *stmtInfo, track bool) bool {
	if old := st.prepared[name]; !track && old != nil && old.copyIn {
		// Without batch records the change may not have happened: the
		// copy gate keeps counting the name as one that may start a copy.
		rec.copyIn = true
	}
	return setRecord(st, st.prepared, name, rec, track, func(x *stmtInfo) change { return change{name: name, stmt: x} })
}

// setPortal is setStmt for portals.
func (st *statements) setPortal(name string, p *portalInfo, track bool) bool {
	if old := st.portals[name]; !track && old != nil && old.copyIn {
		p.copyIn = true
	}
	return setRecord(st, st.portals, name, p, track, func(x *portalInfo) change { return change{name: name, portal: x} })
}

// setRecord records r under name in m (the statements' or the portals')
// in the current batch; mk makes its entry in the batch's changes.
func setRecord[T any, P recorded[T]](st *statements, m map[string]*T, name string, r P, track bool, mk func(*T) change) bool {
	rr := r.rec()
	rr.batch = st.batch
	old := m[name]
	if track && old == nil && len(m) >= maxNames {
		return false
	}
	m[name] = r
	if !track {
		return true
	}
	rr.prev = old
	if old != nil && P(old).rec().batch == rr.batch {
		// Changed again in this batch: the batch's one change of the name
		// is now r, and its earlier ones are one candidate.
		o := P(old).rec()
		rr.change = o.change
		st.changed[rr.change] = mk(r)
		if p := o.prev; p != nil && P(p).rec().batch == rr.batch {
			P(p).absorb(old)
			rr.prev = p
		}
	} else {
		rr.change = len(st.changed)
		st.changed = append(st.changed, mk(r))
	}
	n := 1
	for x := P(r); x.rec().prev != nil; x = x.rec().prev {
		if n++; n == maxCandidates {
			for y := x.rec().prev; y != nil; y = P(y).rec().prev {
				x.absorb(y)
			}
			x.rec().prev = nil
			break
		}
	}
	return true
}

// confirmBatches applies the batch outcomes the server→client direction
// has seen since the last call.
func (s *session) confirmBatches() {
	if s.batchDone.Load() == 0 {
		return
	}
	s.batchMu.Lock()
	done := s.batchOK
	s.batchOK = nil
	s.batchDone.Store(0)
	s.batchMu.Unlock()
	for _, o := range done {
		s.stmts.confirm(o.ok, o.idle)
	}
}

// batchOutcome is how a batch ended: without an error (ok), and outside
// a transaction (idle).
type batchOutcome struct{ ok, idle bool }

// batchEnded is the server→client direction's report of a batch's end.
func (s *session) batchEnded(ok, idle bool) {
	s.batchMu.Lock()
	s.batchOK = append(s.batchOK, batchOutcome{ok, idle})
	s.batchDone.Store(1)
	s.batchMu.Unlock()
}

// inspect audits a client message before it is forwarded. It reports
// false for a malformed message.
func (s *session) inspect(typ byte, body []byte) bool {
	track := s.guard != nil
	if track {
		s.confirmBatches()
	}
	cur := s.stmts.batch
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
		if denied == "" && track {
			s.deallocated()
		} else if !track {
			// Without a guard nothing parses the string: a plain DEALLOCATE
			// (what Rails sends) still forgets its records, so that such a
			// client's names do not pile up for the connection's life.
			if name, all, ok := plainDeallocate(text); ok && all {
				for name := range s.stmts.prepared {
					s.stmts.forgetStmt(name)
				}
			} else if ok {
				s.stmts.forgetStmt(name)
			}
		}
		s.requests.push(unit{kind: 'Q', stmt: s.stmts.no, denied: denied, touches: s.touches(), copyIn: denied == "" && mayCopyIn(text)})
		s.submit(e)
		s.submitGuard(ge)
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return false
		}
		name = serverName(name)
		text, _, ok := cstring(rest)
		if !ok {
			return false
		}
		s.stmts.no++
		st := &stmtInfo{no: s.stmts.no, text: newStmtText(text), copyIn: mayCopyIn(text)}
		key := string(name)
		old := s.stmts.prepared[key]
		if !s.stmts.setStmt(key, st, track) {
			s.kill(airlock.EndProtocolViolation, codeProtocol, msgTooManyNames)
			return false
		}
		d := queryJSON[string]{kind: "parse", stmt: st.no, name: key}
		d.setText(st.text)
		e := queryEvent(s, &d)
		denied, ge, hold := s.guardNamed(st.no, text, key)
		if hold != nil {
			// Decided at Parse, held at each Execute: the server may hold
			// the statement, it runs only when a portal of it is executed.
			st.hold, st.raw = hold, string(text)
		} else if key != "" && old != nil && old.hold != nil && !old.closed {
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
		if old != nil && old.touches && !old.closed && key != "" {
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
		portal, stmt = serverName(portal), serverName(stmt)
		pi := &portalInfo{stmt: string(stmt)}
		found := false
		if st := s.stmts.prepared[pi.stmt]; st != nil {
			found, pi.touches, pi.copyIn, pi.hold, pi.raw = st.effective(cur)
		}
		// A statement the gateway did not see parsed may be anything
		// (an SQL PREPARE cannot be a COPY).
		sqlPrepared := false
		if s.guard != nil {
			_, sqlPrepared = s.guard.prepared[pi.stmt]
		}
		pi.copyIn = pi.copyIn || !found && !sqlPrepared
		if s.guard != nil && pi.stmt != "" {
			// A named statement may also be one SQL PREPAREd (Bind may
			// name it), or one prepared under the name before a DEALLOCATE
			// the gateway does not follow: the guard remembers every
			// statement prepared under the name.
			if _, known := s.guard.prepared[pi.stmt]; known || !found {
				if s.mask != nil {
					pi.touches = pi.touches || s.guard.preparedTouches(pi.stmt)
				}
				if v, ok := s.guard.decidePrepared(pi.stmt); ok && policy.IsHold(v.Action) && pi.hold == nil {
					pi.hold, pi.raw = &v, v.Statement
				}
			}
		} else if !found {
			pi.touches = s.mask != nil
		}
		if s.mask == nil {
			pi.touches = false
		}
		if s.t.LogParameters {
			if pi.params, ok = bindParams(rest); !ok {
				return false
			}
		}
		if !track {
			s.stmts.forgetPortals(s.idleSyncs.Load())
		}
		if !s.stmts.setPortal(string(portal), pi, track) {
			s.kill(airlock.EndProtocolViolation, codeProtocol, msgTooManyNames)
			return false
		}
		// Its BindComplete or error is a response of its own. (Bind plans
		// the statement, which may run functions: with masks its error is
		// withheld like the statement's.)
		s.requests.push(unit{kind: 'B', stmt: s.stmts.no, touches: pi.touches})
	case 'E':
		portal, _, ok := cstring(body)
		if !ok {
			return false
		}
		portal = serverName(portal)
		rec := s.stmts.portals[string(portal)]
		pi, touches, copyIn, hold, raw := rec.effective(cur)
		if pi == nil {
			// A cursor's name, or a portal the server does not have.
			pi, touches, copyIn = &portalInfo{}, true, true
		}
		touches = touches && s.mask != nil
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
		if hold != nil {
			denied, ge = s.holdStatement(s.stmts.no, *hold, []byte(raw))
			if denied != "" {
				e.Outcome = airlock.OutcomeDenied
				s.replacement = deniedExecute()
			} else if rec != nil && rec.prev == nil {
				// Approved: the portal's statement has started; an Execute
				// resuming it (after PortalSuspended) fetches more of the
				// same run, not another one. (Only when the portal is
				// certain: else every candidate stays held.)
				rec.approved = true
			}
		}
		if s.mask != nil && denied == "" {
			// The rows of this Execute follow a RowDescription the gateway
			// asks for itself (mask.go).
			s.prefix = describePortal(portal)
			s.requests.push(unit{kind: 'D', stmt: s.stmts.no, touches: touches, injected: true})
		}
		s.requests.push(unit{kind: 'E', stmt: s.stmts.no, denied: denied, touches: touches, copyIn: denied == "" && copyIn})
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
		name = serverName(name)
		touches := true
		switch body[0] {
		case 'S':
			found := false
			if st := s.stmts.prepared[string(name)]; st != nil {
				found, touches, _, _, _ = st.effective(cur)
			}
			if _, known := s.guard.prepared[string(name)]; len(name) > 0 && (known || !found) {
				touches = touches || s.guard.preparedTouches(string(name))
			}
		case 'P':
			if pi, t, _, _, _ := s.stmts.portals[string(name)].effective(cur); pi != nil {
				touches = t
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
		name = serverName(name)
		switch body[0] {
		case 'S':
			// (A name with no record has nothing to close.)
			if !track {
				s.stmts.forgetStmt(string(name))
			} else if s.stmts.prepared[string(name)] != nil {
				s.stmts.setStmt(string(name), &stmtInfo{closed: true}, true)
			}
		case 'P':
			if !track {
				s.stmts.forgetPortal(string(name))
			} else if s.stmts.portals[string(name)] != nil {
				s.stmts.setPortal(string(name), &portalInfo{closed: true}, true)
			}
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

// deallocated records the SQL DEALLOCATEs (and DISCARD ALL) of the query string just
// forwarded as Closes of the protocol statements they name (confirmed,
// like a Close, when the batch ends without an error): a client that
// drops its statements that way, as Rails does, does not run into
// maxNames.
func (s *session) deallocated() {
	g := s.guard
	if g.deallocateAll {
		for name, rec := range s.stmts.prepared {
			if name != "" && !rec.closed { // (a query string drops the unnamed one itself)
				s.stmts.setStmt(name, &stmtInfo{closed: true}, true)
			}
		}
		return
	}
	for _, name := range g.deallocate {
		if s.stmts.prepared[name] != nil {
			s.stmts.setStmt(name, &stmtInfo{closed: true}, true)
		}
	}
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

// mayCopyIn reports whether text may hold a COPY FROM STDIN: whether it
// has the keyword stdin anywhere (keywords cannot be quoted or escaped),
// in any case.
func mayCopyIn(text []byte) bool {
	for i := 0; i+5 <= len(text); i++ {
		if text[i]|0x20 == 's' && text[i+1]|0x20 == 't' && text[i+2]|0x20 == 'd' && text[i+3]|0x20 == 'i' && text[i+4]|0x20 == 'n' {
			return true
		}
	}
	return false
}

// touches reports whether the statement just decided may read masked
// data (false without masks).
func (s *session) touches() bool {
	return s.mask != nil && s.guard.touches
}
