package sqlguard

import (
	"errors"
	"strings"
	"time"

	"github.com/airlockhq/airlock/policy"
)

// Verdict is what the gateway does with a query string.
type Verdict struct {
	Action string // policy.StatementAllow, StatementAuditOnly or StatementDeny
	// Rule is the statement rule that decided ("" for the default allow,
	// "on_unknown" when on_unknown decided).
	Rule string
	// Message is what a denied client is told.
	Message string
	// Statement is the text of the statement that decided (for a query
	// string of several, the one with the strictest action).
	Statement string
	// Class is that statement's class; Why says why it is unknown.
	Class Class
	Why   string
	// Timeout is how long a held statement (require_mfa,
	// require_approval) waits for its approval.
	Timeout time.Duration
}

// strictness orders actions: a query string of several statements gets
// the strictest of theirs (deny, then require_approval, require_mfa,
// audit_only, allow).
func strictness(a string) int {
	switch a {
	case policy.StatementDeny:
		return 4
	case policy.StatementRequireApproval:
		return 3
	case policy.StatementRequireMFA:
		return 2
	case policy.StatementAuditOnly:
		return 1
	}
	return 0
}

// Lookup finds the statements an SQL-level EXECUTE may run under a name
// (the PREPAREs of that name the session forwarded earlier: more than one
// when the name was prepared again, since the gateway cannot tell which
// the server kept). A name is decided as the strictest of them.
type Lookup func(name string) ([]*Statement, bool)

// Decide applies sp to the statements of a query string (parseErr is
// Parse's error for it). An EXECUTE is decided as the statement it runs,
// found through prepared; one that cannot be found is unknown.
func Decide(sp *policy.Statements, stmts []Statement, parseErr error, prepared Lookup) Verdict {
	if sp == nil {
		return Verdict{Action: policy.StatementAllow}
	}
	if parseErr != nil {
		why := "the statement does not parse"
		if errors.Is(parseErr, ErrTooLong) {
			why = "the statement is too long to analyse"
		}
		return unknownVerdict(sp, "", why)
	}
	var out Verdict
	for i := range stmts {
		v := decideOne(sp, &stmts[i], prepared)
		if i == 0 || strictness(v.Action) > strictness(out.Action) {
			out = v
		}
	}
	if len(stmts) == 0 {
		out = Verdict{Action: policy.StatementAllow}
	}
	return out
}

func decideOne(sp *policy.Statements, st *Statement, prepared Lookup) Verdict {
	var out Verdict
	if st.Execute != "" {
		out = decideRun(sp, st, st.Execute, prepared)
	} else {
		s := st
		if st.Prepared != nil {
			// PREPARE is decided as what it prepares.
			s = st.Prepared
		}
		out = decideRules(sp, st, s)
	}
	// An EXECUTE inside another statement (CREATE TABLE AS EXECUTE,
	// EXPLAIN ANALYZE EXECUTE) runs what it names too.
	for _, name := range st.Runs {
		if name == st.Execute {
			continue
		}
		if v := decideRun(sp, st, name, prepared); strictness(v.Action) > strictness(out.Action) {
			out = v
		}
	}
	return out
}

// decideRun decides st as the statements prepared under name: the
// strictest of them; unknown when there are none.
func decideRun(sp *policy.Statements, st *Statement, name string, prepared Lookup) Verdict {
	var ps []*Statement
	ok := false
	if prepared != nil {
		ps, ok = prepared(name)
	}
	if !ok || len(ps) == 0 {
		return unknownVerdict(sp, st.Text, "EXECUTE of "+name+", which this session did not prepare through Airlock")
	}
	var out Verdict
	for i, p := range ps {
		if v := decideRules(sp, st, p); i == 0 || strictness(v.Action) > strictness(out.Action) {
			out = v
		}
	}
	return out
}

// decideRules applies the rules to s, the statement st runs.
func decideRules(sp *policy.Statements, st, s *Statement) Verdict {
	for _, r := range sp.Rules {
		if matches(&r, s) {
			v := Verdict{Action: r.Action, Rule: r.Name, Message: r.Message, Statement: st.Text, Class: s.Class, Why: s.Why}
			if policy.IsHold(r.Action) {
				v.Timeout = r.HoldTimeout()
			}
			return v
		}
	}
	if s.Class == ClassUnknown {
		return unknownVerdict(sp, st.Text, s.Why)
	}
	return Verdict{Action: policy.StatementAllow, Statement: st.Text, Class: s.Class}
}

func unknownVerdict(sp *policy.Statements, text, why string) Verdict {
	return Verdict{Action: sp.OnUnknownAction(), Rule: "on_unknown", Statement: text, Class: ClassUnknown, Why: why}
}

// matches reports whether every field r gives matches s. A deny or
// audit_only rule's field matches when any name of the statement matches
// one of its entries; an allow rule's only when every name of the
// statement does (and there is one) — so that a statement naming an
// allowed table and another table is not allowed by the first.
func matches(r *policy.StatementRule, s *Statement) bool {
	allow := r.Action == policy.StatementAllow
	if len(r.Class) > 0 && !contains(r.Class, string(s.Class)) {
		return false
	}
	return fieldMatches(r.Forms, s.Forms, allow, sameName) && fieldMatches(r.Objects, s.Objects, allow, nameMatches) &&
		fieldMatches(r.Functions, s.Functions, allow, nameMatches)
}

// fieldMatches reports whether a rule's patterns for one field match a
// statement's names: any name for a deny-like rule, every name (and at
// least one) for an allow rule. No patterns match anything.
func fieldMatches(patterns, names []string, allow bool, match func(p, n string, allow bool) bool) bool {
	if len(patterns) == 0 {
		return true
	}
	if allow && len(names) == 0 {
		return false
	}
	for _, n := range names {
		hit := false
		for _, p := range patterns {
			if match(p, n, allow) {
				hit = true
				break
			}
		}
		if hit != allow {
			// deny: the first name that matches decides; allow: the first
			// that does not.
			return hit
		}
	}
	return allow
}

func sameName(p, n string, _ bool) bool { return p == n }

func contains(l []string, x string) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

// nameMatches matches a rule's name against one from a statement. A
// catalog prefix (db.schema.name) is ignored. An unqualified name in the
// statement may resolve to any schema through search_path: for a deny or
// audit_only rule it matches a qualified pattern with the same name
// (public.orders matches orders); for an allow rule it does not (only
// public.orders, or a pattern without a schema, allows it). A schema.*
// pattern matches only names the statement qualifies with that schema.
func nameMatches(pattern, name string, allow bool) bool {
	eq := strings.EqualFold // deny: "Orders" (quoted) is caught by orders
	if allow {
		eq = func(a, b string) bool { return a == b }
	}
	pSchema, pName := split(pattern)
	nSchema, nName := split(name)
	if pName == "*" {
		return nSchema != "" && eq(nSchema, pSchema)
	}
	if !eq(pName, nName) {
		return false
	}
	switch {
	case pSchema == "":
		return true
	case nSchema == "":
		return !allow
	}
	return eq(pSchema, nSchema)
}

// split cuts a qualified name into its last two parts (db.schema.name →
// schema, name), without allocating: rules match every statement.
func split(n string) (schema, name string) {
	i := strings.LastIndexByte(n, '.')
	if i < 0 {
		return "", n
	}
	schema = n[:i]
	if j := strings.LastIndexByte(schema, '.'); j >= 0 {
		schema = schema[j+1:]
	}
	return schema, n[i+1:]
}
