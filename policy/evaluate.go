package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // windows name IANA zones; embed them so a bare container works

	"github.com/airlockhq/airlock"
)

// compiled is the evaluation form of a policy: rules with precompiled
// patterns and effective values, indexed by exact resource name.
type compiled struct {
	rules []*crule
	// Each index lists rule numbers in ascending (file) order.
	// byName: rules whose names are all literal, under each name.
	// byPrefix: rules whose name globs all start with a literal prefix,
	// under that prefix cut to prefixKey bytes.
	// wild: every other rule (label-only selectors, globs starting with '*').
	allow, deny ruleIndex
	pos         map[string]pos
}

const prefixKey = 4

type ruleIndex struct {
	byName   map[string][]int32
	byPrefix map[string][]int32
	wild     []int32
}

func (x *ruleIndex) add(i int32, names []string) {
	literal, prefixed := len(names) > 0, len(names) > 0
	for _, n := range names {
		star := strings.IndexByte(n, '*')
		literal = literal && star < 0
		prefixed = prefixed && star != 0
	}
	switch {
	case literal:
		for _, n := range names {
			x.byName[n] = appendOnce(x.byName[n], i)
		}
	case prefixed:
		for _, n := range names {
			p := n
			if star := strings.IndexByte(n, '*'); star > 0 {
				p = n[:star]
			}
			p = p[:min(len(p), prefixKey)]
			x.byPrefix[p] = appendOnce(x.byPrefix[p], i)
		}
	default:
		x.wild = append(x.wild, i)
	}
}

// candidates is a k-way merge, in ascending order without duplicates, of
// the index lists that may hold rules matching one resource name.
type candidates struct {
	lists [prefixKey + 2][]int32
	n     int
	last  int32
}

func (x *ruleIndex) candidates(name string) candidates {
	var c candidates
	c.last = -1
	push := func(l []int32) {
		if len(l) > 0 {
			c.lists[c.n] = l
			c.n++
		}
	}
	push(x.byName[name])
	for l := 1; l <= min(len(name), prefixKey); l++ {
		push(x.byPrefix[name[:l]])
	}
	push(x.wild)
	return c
}

func (c *candidates) next() (int32, bool) {
	for {
		best := -1
		for k := 0; k < c.n; k++ {
			if len(c.lists[k]) > 0 && (best < 0 || c.lists[k][0] < c.lists[best][0]) {
				best = k
			}
		}
		if best < 0 {
			return 0, false
		}
		i := c.lists[best][0]
		c.lists[best] = c.lists[best][1:]
		if i != c.last {
			c.last = i
			return i, true
		}
	}
}

type crule struct {
	name               string
	deny               bool
	anySubject         bool
	users, groups      []string
	names              []glob
	labels             []labelMatch
	anyAccess          bool
	access             []accessPattern
	dec                Decision // template of an allowed decision
	reasonAllowed      string
	reasonAuto         string
	reasonBreakGlass   string
	reasonDenied       string
	reasonNoBreakGlass string
	bgFactors          string
	auto               *cauto
}

type labelMatch struct {
	key, value string
	any        bool
}

type cauto struct {
	anySubject    bool
	users, groups []string
	anyAccess     bool
	access        []accessPattern
	maxDuration   time.Duration
	window        bool
	loc           *time.Location
	days          uint8 // bit per time.Weekday
	from, to      int   // minutes after midnight
}

func compile(p *Policy, positions map[string]pos) (*compiled, error) {
	c := &compiled{
		allow: ruleIndex{byName: map[string][]int32{}, byPrefix: map[string][]int32{}},
		deny:  ruleIndex{byName: map[string][]int32{}, byPrefix: map[string][]int32{}},
		pos:   positions,
	}
	df := p.Defaults
	for i, r := range p.Rules {
		cr := &crule{name: r.Name, deny: r.Effect == EffectDeny}
		cr.users, cr.groups, cr.anySubject = compileWho(r.Who.Users, r.Who.Groups)
		for _, n := range r.Resources.Names {
			cr.names = append(cr.names, compileGlob(n))
		}
		for _, k := range sortedKeys(r.Resources.Labels) {
			v := r.Resources.Labels[k]
			cr.labels = append(cr.labels, labelMatch{key: k, value: v, any: v == "*"})
		}
		cr.access, cr.anyAccess = compileAccessList(r.Access)
		cr.reasonDenied = "denied by rule " + r.Name
		cr.reasonAllowed = "allowed by rule " + r.Name
		cr.reasonAuto = "allowed by rule " + r.Name + " (auto-approved)"
		cr.reasonBreakGlass = "break-glass allowed by rule " + r.Name
		cr.reasonNoBreakGlass = "rule " + r.Name + " does not allow break-glass"

		reason := ReasonSpec{Required: ptr(true), Prompt: DefaultReasonPrompt}
		for _, rs := range []*ReasonSpec{df.Reason, r.Reason} {
			if rs != nil {
				if rs.Required != nil {
					reason.Required = rs.Required
				}
				if rs.Prompt != "" {
					reason.Prompt = rs.Prompt
				}
			}
		}
		d := Decision{
			Allowed:        true,
			Rule:           r.Name,
			Reason:         cr.reasonAllowed,
			MaxDuration:    cmp.Or(r.MaxDuration, df.MaxDuration, DefaultMaxDuration),
			PendingTTL:     cmp.Or(r.PendingTTL, df.PendingTTL, DefaultPendingTTL),
			ReasonRequired: *reason.Required,
			ReasonPrompt:   reason.Prompt,
			Factors:        cmp.Or(r.Factors, df.Factors, FactorsAny),
			Freshness: Freshness{
				Approve:    cmp.Or(r.Freshness.Approve, df.Freshness.Approve, DefaultFreshness),
				Connect:    cmp.Or(r.Freshness.Connect, df.Freshness.Connect, DefaultFreshness),
				BreakGlass: cmp.Or(r.Freshness.BreakGlass, df.Freshness.BreakGlass, DefaultFreshness),
			},
			Session: SessionOptions{
				Record:            *cmp.Or(r.Session.Record, df.Session.Record, ptr(true)),
				IdleTimeout:       cmp.Or(r.Session.IdleTimeout, df.Session.IdleTimeout, DefaultIdleTimeout),
				MaxConcurrent:     cmp.Or(r.Session.MaxConcurrent, df.Session.MaxConcurrent, DefaultMaxConcurrent),
				Audit:             cmp.Or(r.Session.Audit, df.Session.Audit, AuditStandard),
				LogParameters:     *cmp.Or(r.Session.LogParameters, df.Session.LogParameters, ptr(false)),
				DirectCredentials: *cmp.Or(r.Session.DirectCredentials, df.Session.DirectCredentials, ptr(false)),
				TokenUses:         cmp.Or(r.Session.TokenUses, df.Session.TokenUses, DefaultTokenUses),
			},
			Notify:            r.Notify,
			RequiredApprovals: DefaultApprovals,
			Statements:        r.Statements,
		}
		if a := r.Approval; a != nil {
			if a.Required != nil {
				d.RequiredApprovals = *a.Required
			}
			d.ApproverGroups = a.Groups
			if aa := a.AutoApprove; aa != nil {
				ca, err := compileAuto(aa)
				if err != nil {
					return nil, fmt.Errorf("rule %s: %w", r.Name, err)
				}
				cr.auto = ca
			}
		}
		if d.RequiredApprovals == 0 {
			d.AutoApprove = true
			d.Reason = cr.reasonAuto
		}
		cr.bgFactors = d.Factors
		if b := r.BreakGlass; b != nil && b.Allowed {
			d.BreakGlassAllowed = true
			d.BreakGlassMaxDuration = cmp.Or(b.MaxDuration, d.MaxDuration)
			d.Alert = b.Alert
			cr.bgFactors = cmp.Or(b.Factors, d.Factors)
		}
		cr.dec = d

		c.rules = append(c.rules, cr)
		if cr.deny {
			c.deny.add(int32(i), r.Resources.Names)
		} else {
			c.allow.add(int32(i), r.Resources.Names)
		}
	}
	return c, nil
}

func appendOnce(s []int32, i int32) []int32 {
	if len(s) > 0 && s[len(s)-1] == i {
		return s
	}
	return append(s, i)
}

func ptr[T any](v T) *T { return &v }

func compileWho(users, groups []string) (u, g []string, anySubject bool) {
	anySubject = slices.Contains(users, "*") || slices.Contains(groups, "*")
	return users, groups, anySubject
}

func compileAccessList(list []string) ([]accessPattern, bool) {
	var out []accessPattern
	for _, a := range list {
		if a == "*" {
			return nil, true
		}
		out = append(out, compileAccess(a))
	}
	return out, false
}

func compileAuto(a *AutoApprove) (*cauto, error) {
	ca := &cauto{maxDuration: a.MaxDuration}
	if len(a.Users) == 0 && len(a.Groups) == 0 {
		ca.anySubject = true
	} else {
		ca.users, ca.groups, ca.anySubject = compileWho(a.Users, a.Groups)
	}
	if len(a.Access) == 0 {
		ca.anyAccess = true
	} else {
		ca.access, ca.anyAccess = compileAccessList(a.Access)
	}
	if w := a.Window; w != nil {
		ca.window = true
		loc, err := time.LoadLocation(w.TZ)
		if err != nil {
			return nil, fmt.Errorf("window tz: %w", err)
		}
		ca.loc = loc
		if ca.from, err = parseClock(w.From); err != nil {
			return nil, err
		}
		if ca.to, err = parseClock(w.To); err != nil {
			return nil, err
		}
		if len(w.Days) == 0 {
			ca.days = 0x7f
		}
		for _, day := range w.Days {
			i := slices.Index(days, day)
			if i < 0 {
				return nil, fmt.Errorf("window day %q", day)
			}
			ca.days |= 1 << i
		}
	}
	return ca, nil
}

func matchSubject(anySubject bool, users, groups []string, s *Subject) bool {
	if anySubject {
		return true
	}
	for _, u := range users {
		if u == s.Name {
			return true
		}
	}
	for _, g := range groups {
		for _, sg := range s.Groups {
			if g == sg {
				return true
			}
		}
	}
	return false
}

func matchAccess(anyAccess bool, list []accessPattern, access string) bool {
	if anyAccess {
		return true
	}
	for i := range list {
		if list[i].match(access) {
			return true
		}
	}
	return false
}

func (r *crule) matchResource(res *Resource) bool {
	if len(r.names) > 0 {
		ok := false
		for i := range r.names {
			if r.names[i].match(res.Name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, l := range r.labels {
		v, ok := res.Labels[l.key]
		if !ok || (!l.any && v != l.value) {
			return false
		}
	}
	return true
}

func (r *crule) match(in *Input) bool {
	return matchSubject(r.anySubject, r.users, r.groups, &in.Subject) &&
		r.matchResource(&in.Resource) &&
		matchAccess(r.anyAccess, r.access, in.Access)
}

// holds reports whether every auto-approve condition holds for in.
func (a *cauto) holds(in *Input) bool {
	if !matchSubject(a.anySubject, a.users, a.groups, &in.Subject) || !matchAccess(a.anyAccess, a.access, in.Access) {
		return false
	}
	if a.maxDuration > 0 && in.Duration > a.maxDuration {
		return false
	}
	if a.window {
		if in.Now.IsZero() {
			return false
		}
		t := in.Now.In(a.loc)
		if a.days&(1<<t.Weekday()) == 0 {
			return false
		}
		m := t.Hour()*60 + t.Minute()
		switch {
		case a.from < a.to:
			return m >= a.from && m < a.to
		case a.from > a.to: // spans midnight
			return m >= a.from || m < a.to
		}
	}
	return true
}

// Evaluate decides one request. It is pure and safe for concurrent use.
//
// Deny by default; the first matching deny rule wins over all allow rules;
// otherwise the first matching allow rule in file order decides (for
// BreakGlass, the first matching rule that allows break-glass, whose
// break_glass.max_duration bounds the duration). A duration over the
// rule's maximum is denied with a Reason naming the maximum. Auto-approve
// conditions are evaluated at in.Now (windows in their time zone).
func (p *Policy) Evaluate(in Input) Decision {
	if p == nil || p.c == nil {
		return Decision{Reason: "no valid policy is loaded (deny by default)"}
	}
	c := p.c
	if in.Access == "" {
		return Decision{Reason: "no access level given (deny by default)"}
	}
	if in.Duration < 0 {
		return Decision{Reason: "duration must be positive"}
	}
	deny := c.deny.candidates(in.Resource.Name)
	for i, ok := deny.next(); ok; i, ok = deny.next() {
		if r := c.rules[i]; r.match(&in) {
			return Decision{Rule: r.name, Reason: r.reasonDenied}
		}
	}
	var first, pick *crule
	allow := c.allow.candidates(in.Resource.Name)
	for i, ok := allow.next(); ok; i, ok = allow.next() {
		r := c.rules[i]
		if !r.match(&in) {
			continue
		}
		if first == nil {
			first = r
		}
		if !in.BreakGlass || r.dec.BreakGlassAllowed {
			pick = r
			break
		}
	}
	if first == nil {
		return Decision{Reason: fmt.Sprintf("no rule allows %s %s on %s (deny by default)", in.Subject.Name, in.Access, in.Resource.Name)}
	}
	if pick == nil {
		return Decision{Rule: first.name, Reason: first.reasonNoBreakGlass}
	}
	d := pick.dec
	maxd := d.MaxDuration
	if in.BreakGlass {
		maxd = d.BreakGlassMaxDuration
		d.Reason = pick.reasonBreakGlass
		d.Factors = pick.bgFactors
		d.AutoApprove = false
	} else if !d.AutoApprove && pick.auto != nil && pick.auto.holds(&in) {
		d.AutoApprove = true
		d.Reason = pick.reasonAuto
	}
	if in.Duration > maxd {
		d.Allowed = false
		d.AutoApprove = false
		kind := ""
		if in.BreakGlass {
			kind = "break-glass "
		}
		d.Reason = fmt.Sprintf("duration %s exceeds %smax %s of rule %s", airlock.FormatDuration(in.Duration), kind, airlock.FormatDuration(maxd), pick.name)
	}
	return d
}

// Requestable lists every (resource, access level) the subject may
// request among resources, with the maximum duration and the rule that
// decides it, sorted by resource then access. accessLevels returns a
// resource's access levels; when nil, the levels of the policy's own
// resource specs are used. A pair only break-glass can open is listed with
// BreakGlass true and the break-glass maximum.
func (p *Policy) Requestable(s Subject, resources []Resource, accessLevels func(Resource) []string) []Entitlement {
	if accessLevels == nil {
		accessLevels = p.SpecAccessLevels
	}
	var out []Entitlement
	for _, res := range resources {
		for _, level := range accessLevels(res) {
			in := Input{Subject: s, Resource: res, Access: level}
			d := p.Evaluate(in)
			in.BreakGlass = true
			bg := p.Evaluate(in)
			switch {
			case d.Allowed:
				e := Entitlement{Resource: res.Name, Access: level, MaxDuration: d.MaxDuration, Rule: d.Rule,
					AutoApprove: d.AutoApprove || p.autoPossible(d.Rule, &in), BreakGlass: bg.Allowed}
				out = append(out, e)
			case bg.Allowed:
				out = append(out, Entitlement{Resource: res.Name, Access: level, MaxDuration: bg.BreakGlassMaxDuration, Rule: bg.Rule, BreakGlass: true})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Entitlement) int {
		return cmp.Or(cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Access, b.Access))
	})
	return out
}

// autoPossible reports whether rule's auto-approve conditions on subject
// and access hold, ignoring duration and window.
func (p *Policy) autoPossible(rule string, in *Input) bool {
	for _, r := range p.c.rules {
		if r.name == rule && r.auto != nil {
			return matchSubject(r.auto.anySubject, r.auto.users, r.auto.groups, &in.Subject) &&
				matchAccess(r.auto.anyAccess, r.auto.access, in.Access)
		}
	}
	return false
}

// SpecAccessLevels returns the access levels of the policy's resource
// spec named like r, or nil when the policy does not declare it.
func (p *Policy) SpecAccessLevels(r Resource) []string {
	for _, spec := range p.Resources {
		if spec.Name == r.Name {
			return spec.AccessLevels()
		}
	}
	return nil
}

// CanApprove reports whether approver may approve a request decided by d:
// a member of one of d.ApproverGroups ("*" = anyone), or, when that list
// is empty, a member of the admins group. The caller must separately
// refuse the requester and count distinct approvers.
func CanApprove(approver Subject, d Decision) bool {
	groups := d.ApproverGroups
	if len(groups) == 0 {
		groups = []string{airlock.GroupAdmins}
	}
	for _, g := range groups {
		if g == "*" && approver.Name != "" {
			return true
		}
		if slices.Contains(approver.Groups, g) {
			return true
		}
	}
	return false
}

// Warnings returns warnings about selectors that match none of the known
// resources (plus the resources the policy declares itself).
func (p *Policy) Warnings(known []Resource) []Diagnostic {
	if p == nil || p.c == nil {
		return nil
	}
	all := slices.Clone(known)
	for _, r := range p.Resources {
		all = append(all, r.Resource())
	}
	var out []Diagnostic
	for i, r := range p.Rules {
		cr := p.c.rules[i]
		reported := false
		for j, n := range cr.names {
			found := slices.ContainsFunc(all, func(res Resource) bool { return n.match(res.Name) })
			if !found {
				at := p.c.pos[posKey("rule", r.Name, fmt.Sprintf("names.%d", j))]
				out = append(out, Diagnostic{File: at.file, Line: at.line, Col: at.col, Severity: SeverityWarning,
					Message: fmt.Sprintf("rule %s: resource name %q matches no known resource", r.Name, r.Resources.Names[j])})
				reported = true
			}
		}
		if reported {
			continue
		}
		if !slices.ContainsFunc(all, func(res Resource) bool { return cr.matchResource(&res) }) {
			at := p.c.pos[posKey("rule", r.Name, "resources")]
			out = append(out, Diagnostic{File: at.file, Line: at.line, Col: at.col, Severity: SeverityWarning,
				Message: fmt.Sprintf("rule %s: resources selector matches no known resource", r.Name)})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
