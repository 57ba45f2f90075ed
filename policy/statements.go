package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Statement actions: what a gateway does with a statement a statement
// rule matches. Only the PostgreSQL gateway enforces statement rules.
const (
	StatementAllow     = "allow"      // forward it (audited as always)
	StatementAuditOnly = "audit_only" // forward it and record the rule that matched
	StatementDeny      = "deny"       // answer with an error; the session stays usable
	// StatementRequireMFA holds the statement until the person approves a
	// push (number matching) on a registered device.
	StatementRequireMFA = "require_mfa"
	// StatementRequireApproval holds the statement until an approver
	// other than the person approves it with fresh MFA.
	StatementRequireApproval = "require_approval"
)

// Hold timeouts: how long a held statement waits for its approval. A
// rule's timeout defaults to DefaultHoldTimeout and may not exceed
// MaxHoldTimeout (the client's session waits that long).
const (
	DefaultHoldTimeout = 2 * time.Minute
	MaxHoldTimeout     = 15 * time.Minute
	minHoldTimeout     = 10 * time.Second
)

// IsHold reports whether action holds a statement for an approval.
func IsHold(action string) bool {
	return action == StatementRequireMFA || action == StatementRequireApproval
}

// StatementClasses are the classes a statement rule may name.
var StatementClasses = []string{"read", "write", "ddl", "dcl", "utility", "unknown"}

// StatementForms are the destructive or dangerous forms a statement rule
// may name.
var StatementForms = []string{"no_where", "truncate", "drop", "alter_drop", "copy_program", "copy_file", "explain_analyze"}

// Statements are a rule's statement guardrails: ordered rules, the first
// that matches a statement decides; a statement whose class cannot be
// decided (or that does not parse) and that no rule matches gets
// OnUnknown; any other statement no rule matches is allowed.
type Statements struct {
	OnUnknown string // StatementDeny (default) | StatementAllow | StatementAuditOnly
	Rules     []StatementRule
	// Columns are the column masks, in the policy's order: a result
	// column of a table they name is rewritten (mask, hash) or refused
	// (deny) on its way to the client.
	Columns []ColumnMask
	// UnknownColumns is what happens to a result column whose origin the
	// gateway cannot prove, in a statement that may read a masked column:
	// ColumnMask (the default) or ColumnDeny.
	UnknownColumns string
}

// Column mask actions.
const (
	ColumnMaskValue = "mask" // the value is replaced by a fixed string
	ColumnHash      = "hash" // the value is replaced by a keyed hash (equal values, equal hashes)
	ColumnDeny      = "deny" // a result carrying the column ends the session
)

// ColumnMask masks the columns Pattern names: "table.column" in any
// schema, "schema.table.column", or "table.*" / "schema.table.*" for every
// column, in lower case (compared without regard to case).
type ColumnMask struct {
	Pattern string
	Action  string // ColumnMaskValue | ColumnHash | ColumnDeny
}

// HasMasks reports whether s masks any column.
func (s *Statements) HasMasks() bool { return s != nil && len(s.Columns) > 0 }

// UnknownColumnsAction returns what an unproved column gets: mask unless
// the policy says deny.
func (s *Statements) UnknownColumnsAction() string {
	if s == nil || s.UnknownColumns == "" {
		return ColumnMaskValue
	}
	return s.UnknownColumns
}

// ColumnStrictness orders column actions: of several masks that name a
// column the strictest applies (deny, then mask, then hash, which keeps
// equality).
func ColumnStrictness(a string) int {
	switch a {
	case ColumnDeny:
		return 3
	case ColumnMaskValue:
		return 2
	case ColumnHash:
		return 1
	}
	return 0
}

// ColumnAction is the strictest action of the masks that name column
// in table of schema ("" when none does).
func (s *Statements) ColumnAction(schema, table, column string) string {
	out := ""
	if s == nil {
		return out
	}
	for _, m := range s.Columns {
		if columnMatches(m.Pattern, schema, table, column) && ColumnStrictness(m.Action) > ColumnStrictness(out) {
			out = m.Action
		}
	}
	return out
}

// MaskedTable reports whether some mask names columns of table (in
// schema, or in any schema when schema is "").
func (s *Statements) MaskedTable(schema, table string) bool {
	if s == nil {
		return false
	}
	for _, m := range s.Columns {
		ps, pt, _ := SplitColumnPattern(m.Pattern)
		if strings.EqualFold(pt, table) && (ps == "" || schema == "" || strings.EqualFold(ps, schema)) {
			return true
		}
	}
	return false
}

func columnMatches(pattern, schema, table, column string) bool {
	ps, pt, pc := SplitColumnPattern(pattern)
	if !strings.EqualFold(pt, table) || (ps != "" && !strings.EqualFold(ps, schema)) {
		return false
	}
	return pc == "*" || strings.EqualFold(pc, column)
}

// SplitColumnPattern splits a validated column pattern into schema ("" for
// any), table and column ("*" for every column).
func SplitColumnPattern(p string) (schema, table, column string) {
	parts := strings.Split(p, ".")
	if len(parts) == 3 {
		return parts[0], parts[1], parts[2]
	}
	if len(parts) == 2 {
		return "", parts[0], parts[1]
	}
	return "", p, ""
}

// StatementRule matches a statement when every field given matches (an
// empty field matches anything); within a field any entry may match.
type StatementRule struct {
	Name string
	// Class lists classes (StatementClasses).
	Class []string
	// Forms lists forms (StatementForms).
	Forms []string
	// Objects lists tables (and dropped objects): "orders" matches orders
	// in any schema, "public.orders" only there (and an unqualified
	// orders, which search_path may resolve to it), "audit.*" anything in
	// schema audit.
	Objects []string
	// Functions lists functions and procedures, named like Objects.
	Functions []string
	Action    string
	// Message is what the client is told when the statement is denied.
	Message string
	// Timeout is how long a held statement (require_mfa,
	// require_approval) waits for its approval; 0 means
	// DefaultHoldTimeout.
	Timeout time.Duration
}

// HoldTimeout returns r's hold timeout.
func (r *StatementRule) HoldTimeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultHoldTimeout
	}
	return r.Timeout
}

// OnUnknownAction returns s's on_unknown action, deny when unset.
func (s *Statements) OnUnknownAction() string {
	if s == nil || s.OnUnknown == "" {
		return StatementDeny
	}
	return s.OnUnknown
}

func (ps *parseState) statements(d *decoder, n *yaml.Node, what string) *Statements {
	f := d.mapping(n, what, "on_unknown", "rules", "columns", "unknown_columns")
	if f == nil {
		return nil
	}
	s := &Statements{}
	if v, ok := f["on_unknown"]; ok {
		s.OnUnknown = d.statementAction(v.v, what+".on_unknown")
		if IsHold(s.OnUnknown) {
			d.errf(v.v, "%s.on_unknown: %s, %s or %s (a statement that cannot be classified is not shown to an approver)", what, StatementDeny, StatementAllow, StatementAuditOnly)
		}
	}
	if v, ok := f["columns"]; ok {
		s.Columns = d.columnMasks(v.v, what+".columns")
	}
	if v, ok := f["unknown_columns"]; ok {
		s.UnknownColumns = d.enum(v.v, what+".unknown_columns", ColumnMaskValue, ColumnDeny)
	}
	v, ok := f["rules"]
	if !ok {
		return s
	}
	if v.v.Kind != yaml.SequenceNode {
		d.errf(v.v, "%s.rules must be a list", what)
		return s
	}
	seen := map[string]bool{}
	for i, rn := range v.v.Content {
		rw := fmt.Sprintf("%s.rules[%d]", what, i)
		rf := d.mapping(rn, rw, "name", "class", "forms", "objects", "functions", "action", "message", "timeout")
		if rf == nil {
			continue
		}
		var r StatementRule
		if x, ok := rf["name"]; ok {
			r.Name = d.name(x.v, rw+".name")
			rw = what + " rule " + r.Name
			if seen[r.Name] {
				d.errf(x.v, "%s: duplicate statement rule name", rw)
			}
			seen[r.Name] = true
		} else {
			d.errf(rn, "%s needs a name", rw)
		}
		if x, ok := rf["class"]; ok {
			r.Class = d.wordList(x.v, rw+".class", StatementClasses)
		}
		if x, ok := rf["forms"]; ok {
			r.Forms = d.wordList(x.v, rw+".forms", StatementForms)
		}
		if x, ok := rf["objects"]; ok {
			r.Objects = d.nameList(x.v, rw+".objects")
		}
		if x, ok := rf["functions"]; ok {
			r.Functions = d.nameList(x.v, rw+".functions")
		}
		if x, ok := rf["action"]; ok {
			r.Action = d.statementAction(x.v, rw+".action")
		} else {
			d.errf(rn, "%s needs an action (%s)", rw, strings.Join(statementActions, ", "))
		}
		if x, ok := rf["message"]; ok {
			r.Message = d.str(x.v, rw+".message")
		}
		if x, ok := rf["timeout"]; ok {
			r.Timeout = d.duration(x.v, rw+".timeout")
			switch {
			case !IsHold(r.Action):
				d.errf(x.v, "%s.timeout: only %s and %s rules hold a statement", rw, StatementRequireMFA, StatementRequireApproval)
			case r.Timeout != 0 && (r.Timeout < minHoldTimeout || r.Timeout > MaxHoldTimeout):
				d.errf(x.v, "%s.timeout must be between %s and %s", rw, minHoldTimeout, MaxHoldTimeout)
			}
		}
		s.Rules = append(s.Rules, r)
	}
	return s
}

// columnMasks decodes the columns mapping: pattern → action.
func (d *decoder) columnMasks(n *yaml.Node, what string) []ColumnMask {
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping of column patterns (table.column, schema.table.column, table.*) to mask, hash or deny", what)
		return nil
	}
	var out []ColumnMask
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: keys must be plain strings", what)
			continue
		}
		p := strings.ToLower(k.Value)
		parts := strings.Split(p, ".")
		bad := len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "")
		for j, x := range parts {
			if x == "*" && j != len(parts)-1 {
				bad = true
			}
		}
		if bad {
			d.errf(k, "%s: %q is not table.column, schema.table.column, table.* or schema.table.*", what, k.Value)
			continue
		}
		if seen[p] {
			d.errf(k, "%s: %q is given twice", what, k.Value)
		}
		seen[p] = true
		out = append(out, ColumnMask{Pattern: p, Action: d.enum(v, what+"."+k.Value, ColumnMaskValue, ColumnHash, ColumnDeny)})
	}
	return out
}

// statementActions are the actions a statement rule may have.
var statementActions = []string{StatementDeny, StatementAllow, StatementAuditOnly, StatementRequireMFA, StatementRequireApproval}

func (d *decoder) statementAction(n *yaml.Node, what string) string {
	return d.enum(n, what, statementActions...)
}

// wordList decodes a list whose entries must be among words.
func (d *decoder) wordList(n *yaml.Node, what string, words []string) []string {
	l := d.strList(n, what)
	for _, w := range l {
		if !slices.Contains(words, w) {
			d.errf(n, "%s: unknown %q (one of %s)", what, w, strings.Join(words, ", "))
		}
	}
	return l
}

// nameList decodes object or function names: name, schema.name or
// schema.*, compared in lower case as PostgreSQL folds unquoted names.
func (d *decoder) nameList(n *yaml.Node, what string) []string {
	l := d.strList(n, what)
	for i, w := range l {
		parts := strings.Split(w, ".")
		bad := len(parts) > 2 || slices.Contains(parts, "")
		if len(parts) == 1 && parts[0] == "*" {
			bad = true
		}
		if len(parts) == 2 && parts[0] == "*" {
			bad = true
		}
		if bad {
			d.errf(n, "%s: %q is not name, schema.name or schema.*", what, w)
		}
		l[i] = strings.ToLower(w)
	}
	return l
}

func (s *Statements) node() *yaml.Node {
	if s == nil {
		return nil
	}
	m := newMap()
	m.add("on_unknown", strNode(s.OnUnknown))
	if len(s.Rules) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, r := range s.Rules {
			rm := newMap()
			rm.add("name", strNode(r.Name))
			rm.add("class", listNode(r.Class))
			rm.add("forms", listNode(r.Forms))
			rm.add("objects", listNode(r.Objects))
			rm.add("functions", listNode(r.Functions))
			rm.add("action", strNode(r.Action))
			rm.add("message", strNode(r.Message))
			rm.add("timeout", durNode(r.Timeout))
			seq.Content = append(seq.Content, rm.n)
		}
		m.add("rules", seq)
	}
	if len(s.Columns) > 0 {
		cm := newMap()
		for _, c := range s.Columns {
			cm.add(c.Pattern, strNode(c.Action))
		}
		m.add("columns", cm.n)
	}
	m.add("unknown_columns", strNode(s.UnknownColumns))
	if len(m.n.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	}
	return m.n
}
