package policy

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Expectations of a policy test case.
const (
	ExpectAllow       = "allow"        // allowed (with or without approval)
	ExpectDeny        = "deny"         // not allowed
	ExpectAutoApprove = "auto_approve" // allowed without human approval
	ExpectApproval    = "approval"     // allowed, but a human must approve
)

// Case is one policy test case.
type Case struct {
	Name string
	File string
	Line int

	Subject    Subject
	Resource   string    // a resource name, resolved by RunCases
	Inline     *Resource // the resource given inline as {name, kind, labels}
	Access     string
	Duration   time.Duration
	BreakGlass bool
	At         time.Time // zero: auto-approve windows never hold

	Expect    string
	Rule      *string // expected rule name, when given
	Approvals *int    // expected required approvals, when given

	// Statement, when set, makes the case about a statement run under
	// the access the rest of the case describes: Expect is then a
	// statement action (allow, deny, audit_only) and Rule the statement
	// rule expected to decide ("on_unknown" when on_unknown did).
	Statement string
}

// StatementDecider decides a statement under a decision's statement
// rules: the action and the statement rule that decided ("" for the
// default allow). It parses SQL, which this package does not: the CLI
// passes sqlguard's.
type StatementDecider func(rules *Statements, text string) (action, rule string)

// CaseResult is the outcome of one case.
type CaseResult struct {
	Case    Case
	Pass    bool
	Got     Decision
	Message string // why it failed, or the decision's reason when it passed
}

// ParseCases parses a cases file. The error, an *airlock.Error EINVALID,
// lists file:line:col diagnostics.
func ParseCases(name string, data []byte) ([]Case, error) {
	d := &decoder{file: name}
	root := d.document(data)
	var cases []Case
	if root != nil {
		f := d.mapping(root, "cases file", "cases")
		if v, ok := f["cases"]; ok {
			for _, n := range d.seq(v.v, "cases") {
				if c, ok := d.testCase(n); ok {
					cases = append(cases, c)
				}
			}
		}
	}
	if len(cases) == 0 && len(d.diags) == 0 {
		d.report(pos{file: name, line: 1, col: 1}, SeverityError, "no cases (the file needs cases: [ … ])")
	}
	if err := diagnosticsError(sortDiagnostics(d.diags)); err != nil {
		return nil, err
	}
	return cases, nil
}

func (d *decoder) testCase(n *yaml.Node) (Case, bool) {
	c := Case{File: d.file, Line: n.Line}
	f := d.mapping(n, "case", "name", "who", "resource", "access", "duration", "break_glass", "at", "expect", "rule", "approvals", "statement")
	if f == nil {
		return c, false
	}
	if v, ok := f["name"]; ok {
		c.Name = d.str(v.v, "case name")
	} else {
		c.Name = fmt.Sprintf("case at line %d", n.Line)
	}
	what := "case " + c.Name
	if v, ok := f["who"]; ok {
		wf := d.mapping(v.v, what+": who", "user", "groups")
		if x, ok := wf["user"]; ok {
			c.Subject.Name = d.str(x.v, what+": who.user")
		}
		if x, ok := wf["groups"]; ok {
			c.Subject.Groups = d.strList(x.v, what+": who.groups")
		}
	} else {
		d.errf(n, "%s needs who: {user, groups}", what)
	}
	if v, ok := f["resource"]; ok {
		if v.v.Kind == yaml.MappingNode {
			rf := d.mapping(v.v, what+": resource", "name", "kind", "labels")
			r := &Resource{}
			if x, ok := rf["name"]; ok {
				r.Name = d.str(x.v, what+": resource.name")
			} else {
				d.errf(v.v, "%s: resource needs a name", what)
			}
			if x, ok := rf["kind"]; ok {
				r.Kind = d.str(x.v, what+": resource.kind")
			}
			if x, ok := rf["labels"]; ok {
				r.Labels = d.strMap(x.v, what+": resource.labels")
			}
			c.Inline = r
			c.Resource = r.Name
		} else {
			c.Resource = d.str(v.v, what+": resource")
		}
	} else {
		d.errf(n, "%s needs resource", what)
	}
	if v, ok := f["access"]; ok {
		c.Access = d.str(v.v, what+": access")
	} else {
		d.errf(n, "%s needs access", what)
	}
	if v, ok := f["duration"]; ok {
		c.Duration = d.duration(v.v, what+": duration")
	}
	if v, ok := f["break_glass"]; ok {
		c.BreakGlass = d.boolean(v.v, what+": break_glass")
	}
	if v, ok := f["at"]; ok {
		s, _ := d.scalar(v.v, what+": at")
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			d.errf(v.v, "%s: at %q must be an RFC 3339 time such as 2026-11-30T10:00:00Z", what, s)
		}
		c.At = t
	}
	if v, ok := f["statement"]; ok {
		c.Statement = d.str(v.v, what+": statement")
	}
	if v, ok := f["expect"]; ok {
		if c.Statement != "" {
			c.Expect = d.enum(v.v, what+": expect", statementActions...)
		} else {
			c.Expect = d.enum(v.v, what+": expect", ExpectAllow, ExpectDeny, ExpectAutoApprove, ExpectApproval)
		}
	} else {
		d.errf(n, "%s needs expect (allow, deny, auto_approve or approval)", what)
	}
	if v, ok := f["rule"]; ok {
		s, _ := d.scalar(v.v, what+": rule")
		c.Rule = &s
	}
	if v, ok := f["approvals"]; ok {
		i := d.integer(v.v, what+": approvals", 0)
		c.Approvals = &i
	}
	return c, true
}

// RunCases evaluates every case against p. A case's resource is the one
// given inline, else the policy's resource spec of that name, else the
// one of that name in resources; an unknown resource fails the case.
//
// Statement cases need decide; without it they fail.
func RunCases(p *Policy, cases []Case, resources []Resource, decide StatementDecider) []CaseResult {
	byName := map[string]Resource{}
	for _, r := range resources {
		byName[r.Name] = r
	}
	if p != nil {
		for _, r := range p.Resources {
			byName[r.Name] = r.Resource()
		}
	}
	out := make([]CaseResult, 0, len(cases))
	for _, c := range cases {
		res := CaseResult{Case: c}
		var r Resource
		switch {
		case c.Inline != nil:
			r = *c.Inline
		default:
			var ok bool
			if r, ok = byName[c.Resource]; !ok {
				res.Message = fmt.Sprintf("unknown resource %q (declare it in the policy, or give {name, kind, labels})", c.Resource)
				out = append(out, res)
				continue
			}
		}
		d := p.Evaluate(Input{Subject: c.Subject, Resource: r, Access: c.Access, Duration: c.Duration, Now: c.At, BreakGlass: c.BreakGlass})
		res.Got = d
		if c.Statement != "" {
			out = append(out, statementCase(res, decide))
			continue
		}
		var problems []string
		switch c.Expect {
		case ExpectAllow:
			if !d.Allowed {
				problems = append(problems, "expected allow, got deny")
			}
		case ExpectDeny:
			if d.Allowed {
				problems = append(problems, "expected deny, got allow")
			}
		case ExpectAutoApprove:
			if !d.Allowed || !d.AutoApprove {
				problems = append(problems, fmt.Sprintf("expected auto_approve, got %s", outcome(d)))
			}
		case ExpectApproval:
			if !d.Allowed || d.AutoApprove {
				problems = append(problems, fmt.Sprintf("expected approval, got %s", outcome(d)))
			}
		default:
			problems = append(problems, fmt.Sprintf("unknown expectation %q", c.Expect))
		}
		if c.Rule != nil && d.Rule != *c.Rule {
			problems = append(problems, fmt.Sprintf("expected rule %q, got %q", *c.Rule, d.Rule))
		}
		if c.Approvals != nil && d.RequiredApprovals != *c.Approvals {
			problems = append(problems, fmt.Sprintf("expected %d approvals, got %d", *c.Approvals, d.RequiredApprovals))
		}
		res.Pass = len(problems) == 0
		if res.Pass {
			res.Message = d.Reason
		} else {
			res.Message = strings.Join(problems, "; ") + " (" + d.Reason + ")"
		}
		out = append(out, res)
	}
	return out
}

func outcome(d Decision) string {
	switch {
	case !d.Allowed:
		return "deny"
	case d.AutoApprove:
		return "auto_approve"
	}
	return "approval"
}

// statementCase checks a statement case against its access decision.
func statementCase(res CaseResult, decide StatementDecider) CaseResult {
	c, d := res.Case, res.Got
	switch {
	case !d.Allowed:
		res.Message = "the access itself is denied, so the statement never runs (" + d.Reason + ")"
		return res
	case decide == nil:
		res.Message = "statement cases need the SQL parser (run them with airlock policy test)"
		return res
	}
	action, rule := decide(d.Statements, c.Statement)
	var problems []string
	if action != c.Expect {
		problems = append(problems, fmt.Sprintf("expected %s, got %s", c.Expect, action))
	}
	if c.Rule != nil && rule != *c.Rule {
		problems = append(problems, fmt.Sprintf("expected statement rule %q, got %q", *c.Rule, rule))
	}
	by := "no statement rule matched"
	if rule != "" {
		by = "statement rule " + rule
	}
	res.Pass = len(problems) == 0
	if res.Pass {
		res.Message = action + " by " + by + " under rule " + d.Rule
	} else {
		res.Message = strings.Join(problems, "; ") + " (" + by + " under rule " + d.Rule + ")"
	}
	return res
}
