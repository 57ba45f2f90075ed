package pgproxy

import (
	"encoding/binary"
	"sync"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sqlguard"
)

// Statement guardrails (Target.Statements): each query string and each
// extended-protocol Parse is classified with PostgreSQL's own grammar
// (sqlguard) before it is forwarded, and the target's statement rules
// decide. A denied statement never reaches the server as written: the
// gateway forwards in its place a text the server's grammar rejects
// (deniedText), so that the server answers in the protocol's own order —
// an ErrorResponse, skipping to Sync in the extended protocol, then
// ReadyForQuery — and the gateway rewrites that ErrorResponse into the
// denial the client sees. The session stays usable (inside a transaction
// block the error aborts the transaction, as any error does).

// deniedText replaces a denied statement: two identifiers, which no
// PostgreSQL statement starts with, so the server refuses it at parse
// time and runs nothing.
const deniedText = "airlock denied"

// sqlstateDenied is the SQLSTATE of a denial (insufficient_privilege).
const sqlstateDenied = "42501"

// parser is the gateways' shared statement parser, made at the first
// session with guardrails (its WebAssembly instance takes about a second
// to compile; WarmGuard makes it ahead of time).
var parser = sync.OnceValue(func() *sqlguard.Parser { return sqlguard.NewParser(0) })

// maxPrepared bounds the SQL-level PREPAREs a session remembers (their
// names are the client's to choose). Past it, an EXECUTE of a name not
// remembered is unknown, and on_unknown decides: fail closed.
const maxPrepared = 10000

// maxPreparedAgain bounds the statements one name is remembered for: a
// name prepared again is decided as every statement it was prepared with
// (the gateway cannot tell which one the server kept). Past the bound the
// name also counts as an unknown statement (overflowed), and a statement
// a rule holds is denied rather than prepared under it.
const maxPreparedAgain = 8

// overflowed stands for the statements a name was prepared with past
// maxPreparedAgain: unknown, and naming a relation no catalog has (so it
// touches masked data).
var overflowed = sqlguard.Statement{Kind: "overflowed", Class: sqlguard.ClassUnknown, Objects: []string{"\x00"},
	Why: "a statement name prepared more often than the gateway remembers"}

// guard is a session's guardrails state, owned by c2s.
type guard struct {
	rules *policy.Statements
	// holds: some rule holds statements (the client writer is then
	// shared with notices, hold.go).
	holds bool
	// prepared are the SQL-level PREPAREs (and protocol Parses) forwarded,
	// by name, for the EXECUTEs that name them: every statement a name was
	// prepared with, since the session began.
	prepared map[string][]*sqlguard.Statement
	// overflow are the names prepared past maxPreparedAgain.
	overflow map[string]bool
	// cat is the masking catalog when the rules mask columns (mask.go);
	// touches is whether the last statement decided may read masked
	// data in a way its result columns do not show.
	cat     *sqlguard.Catalog
	touches bool
	// deallocate are the names the last query string decided drops with
	// SQL DEALLOCATE (deallocateAll: DEALLOCATE ALL, DISCARD ALL), for the protocol
	// statement records (statements.go).
	deallocate    []string
	deallocateAll bool
}

func newGuard(rules *policy.Statements) *guard {
	if rules == nil {
		return nil
	}
	g := &guard{rules: rules, prepared: map[string][]*sqlguard.Statement{}, overflow: map[string]bool{}}
	for _, r := range rules.Rules {
		g.holds = g.holds || policy.IsHold(r.Action)
	}
	return g
}

// decide classifies text and applies the rules; allowed PREPAREs are
// remembered for their EXECUTEs.
func (g *guard) decide(text string) sqlguard.Verdict { return g.decideNamed(text, "") }

// decideNamed is decide for a query string, or (parseName set) for the
// text of a protocol Parse of that name, which is then remembered too: an
// SQL EXECUTE may name a statement the protocol prepared. A statement a
// rule holds that cannot be remembered (past maxPrepared) is denied, so
// that no EXECUTE of it can run unheld.
func (g *guard) decideNamed(text, parseName string) sqlguard.Verdict {
	stmts, err := parser().Parse(text)
	lookup := g.lookup
	g.deallocate, g.deallocateAll = g.deallocate[:0], false
	if parseName == "" {
		for i := range stmts {
			if stmts[i].DeallocateAll {
				g.deallocateAll = true
			} else if stmts[i].Deallocate != "" {
				g.deallocate = append(g.deallocate, stmts[i].Deallocate)
			}
		}
	}
	v := sqlguard.Decide(g.rules, stmts, err, lookup)
	if g.cat != nil {
		// A text the parser rejects is refused whatever on_unknown says:
		// the gateway cannot tell what it reads or copies (a server
		// newer than the parser's grammar may run it).
		g.touches = err != nil
		if err != nil && v.Action != policy.StatementDeny {
			v = sqlguard.Verdict{Action: policy.StatementDeny, Rule: "columns", Class: sqlguard.ClassUnknown,
				Message: "a statement the gateway cannot parse is refused while columns are masked", Why: v.Why}
		}
		for i := range stmts {
			st := &stmts[i]
			if v.Action != policy.StatementDeny {
				if why := g.cat.Refusal(st, lookup); why != "" {
					v = sqlguard.Verdict{Action: policy.StatementDeny, Rule: "columns", Message: why, Statement: st.Text, Class: st.Class}
				}
			}
			g.touches = g.touches || g.cat.Touches(st, lookup)
		}
	}
	if v.Action == policy.StatementDeny {
		return v
	}
	forgotten, again := false, false
	remember := func(name string, st *sqlguard.Statement) {
		old, ok := g.prepared[name]
		switch {
		case ok:
			// A name prepared again: the server refuses it while the old
			// one exists (42P05), and runs the old one; after a DEALLOCATE
			// (or a protocol Close) it takes the new, and a PREPARE the
			// server refused left nothing. The gateway does not follow
			// which, so an EXECUTE is decided as every one of them.
			for _, o := range old {
				if o.Text == st.Text {
					return
				}
			}
			if len(old) >= maxPreparedAgain {
				again = true
				g.overflow[name] = true
				return
			}
			g.prepared[name] = append(old, st)
		case len(g.prepared) < maxPrepared:
			g.prepared[name] = []*sqlguard.Statement{st}
		default:
			forgotten = true
		}
	}
	for i := range stmts {
		if st := &stmts[i]; st.Prepared != nil {
			remember(st.Prepare, st.Prepared)
		}
	}
	if parseName != "" && len(stmts) == 1 && stmts[0].Prepared == nil && stmts[0].Execute == "" {
		remember(parseName, &stmts[0])
	}
	if again && policy.IsHold(v.Action) {
		return sqlguard.Verdict{Action: policy.StatementDeny, Rule: v.Rule, Statement: v.Statement, Class: v.Class,
			Message: "this statement name was prepared too many times in this session to hold another one; use a new name"}
	}
	if forgotten && policy.IsHold(v.Action) {
		return sqlguard.Verdict{Action: policy.StatementDeny, Rule: v.Rule, Statement: v.Statement, Class: v.Class,
			Message: "too many prepared statements in this session to hold another one"}
	}
	return v
}

// guardStatement decides one statement text of a client message. It
// returns the message the client is told when the statement is denied
// (else ""), the db.guard event to submit after the statement's own
// db.query when a rule (or on_unknown) made the decision, and, for a
// statement a rule holds (require_mfa, require_approval), the verdict to
// hold it by (hold.go).
func (s *session) guardStatement(stmt int64, text []byte) (string, *airlock.Event, *sqlguard.Verdict) {
	return s.guardNamed(stmt, text, "")
}

// guardNamed is guardStatement for a protocol Parse of statement parseName.
func (s *session) guardNamed(stmt int64, text []byte, parseName string) (string, *airlock.Event, *sqlguard.Verdict) {
	if s.guard == nil {
		return "", nil, nil
	}
	v := s.guard.decideNamed(string(text), parseName)
	if policy.IsHold(v.Action) {
		return "", nil, &v
	}
	denied, e := s.verdictEvent(stmt, v)
	return denied, e, nil
}

// verdictEvent is the db.guard event of a decision a rule or on_unknown
// made, and the denial message for the client ("" when the statement may
// go).
func (s *session) verdictEvent(stmt int64, v sqlguard.Verdict) (string, *airlock.Event) {
	if v.Rule == "" {
		return "", nil // no rule matched a decided statement: allowed
	}
	outcome := airlock.OutcomeSuccess
	if v.Action == policy.StatementDeny {
		outcome = airlock.OutcomeDenied
	}
	e := s.event("db.guard", outcome, guardDetails{Stmt: stmt, Rule: v.Rule, Action: v.Action, Class: string(v.Class), Why: v.Why, Message: v.Message})
	if v.Action != policy.StatementDeny {
		return "", &e
	}
	msg := "airlock: statement denied"
	switch {
	case v.Rule == "on_unknown":
		msg += ": " + v.Why + " (statements Airlock cannot classify are denied)"
	default:
		msg += " by rule " + v.Rule
		if v.Message != "" {
			msg += ": " + v.Message
		}
	}
	return msg, &e
}

// submitGuard submits a decision's db.guard event, if any.
func (s *session) submitGuard(e *airlock.Event) {
	if e != nil {
		s.submit(*e)
	}
}

// deniedQuery is the Query message forwarded in place of a denied one
// (or of a FunctionCall, which guardrails cannot classify).
func deniedQuery() []byte {
	return appendMsg(nil, 'Q', []byte(deniedText+"\x00"))
}

// deniedParse is the Parse message forwarded in place of a denied one:
// the same statement name, the replacement text, no parameter types.
func deniedParse(name []byte) []byte {
	body := make([]byte, 0, len(name)+len(deniedText)+4)
	body = append(body, name...)
	body = append(body, 0)
	body = append(body, deniedText...)
	body = append(body, 0, 0, 0)
	return appendMsg(nil, 'P', body)
}

// deniedError is the ErrorResponse the client gets for a denied statement.
func deniedError(msg string) []byte {
	var body []byte
	for _, f := range []struct {
		code byte
		v    string
	}{{'S', "ERROR"}, {'V', "ERROR"}, {'C', sqlstateDenied}, {'M', msg}} {
		body = append(body, f.code)
		body = append(body, f.v...)
		body = append(body, 0)
	}
	body = append(body, 0)
	return appendMsg(nil, 'E', body)
}

func appendMsg(b []byte, typ byte, body []byte) []byte {
	b = append(b, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(4+len(body)))
	return append(b, body...)
}

// lookup is the session's sqlguard.Lookup.
func (g *guard) lookup(name string) ([]*sqlguard.Statement, bool) {
	ps, ok := g.prepared[name]
	if ok && g.overflow[name] {
		return append(ps[:len(ps):len(ps)], &overflowed), true
	}
	return ps, ok
}

// decidePrepared decides a Bind of a statement the session prepared with
// SQL PREPARE (the protocol's Bind may name it): as the statements it
// prepared. ok is false when name is not such a statement.
func (g *guard) decidePrepared(name string) (sqlguard.Verdict, bool) {
	ps, ok := g.lookup(name)
	if !ok {
		return sqlguard.Verdict{}, false
	}
	stmts := make([]sqlguard.Statement, len(ps))
	for i, p := range ps {
		stmts[i] = *p
	}
	return sqlguard.Decide(g.rules, stmts, nil, nil), true
}

// preparedTouches reports whether an SQL-level PREPAREd statement of
// name may read masked data (true when name is not one).
func (g *guard) preparedTouches(name string) bool {
	return g.cat.Touches(&sqlguard.Statement{Execute: name}, g.lookup)
}

// guardFunctionCall decides a fast-path FunctionCall: its function is an
// OID, not text, so it is unknown and on_unknown decides.
func (s *session) guardFunctionCall(stmt int64) (string, *airlock.Event) {
	rules := s.guard.rules
	v := sqlguard.Verdict{Action: rules.OnUnknownAction(), Rule: "on_unknown", Class: sqlguard.ClassUnknown,
		Why: "a fast-path function call names its function by OID"}
	return s.verdictEvent(stmt, v)
}

// WarmGuard makes the statement parser's first WebAssembly instance now
// (about a second of CPU), so that the first guarded statement does not
// wait for it.
func WarmGuard() { parser().Warm() }
