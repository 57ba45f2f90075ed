package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

const evalPolicy = `version: 1
defaults:
  max_duration: 8h
notify:
  - {name: sec, type: webhook, url: "https://x", secret_env: S}
rules:
  - name: no-secrets
    effect: deny
    who: {users: ["*"]}
    resources: {labels: {sensitivity: high}}
    access: ["*"]
  - name: no-interns-write
    effect: deny
    who: {groups: [interns]}
    resources: {names: ["prod-*"]}
    access: [write]
  - name: payments-read
    who: {users: [alice], groups: [payments, sre]}
    resources: {names: [prod-db, "prod-pay-*"], labels: {env: prod}}
    access: [read]
    max_duration: 1h
    pending_ttl: 2h
    reason: {required: true, prompt: "ticket?"}
    approval:
      required: 1
      groups: [payments-leads, sre]
      auto_approve:
        groups: [sre]
        access: [read]
        max_duration: 30m
        window: {days: [mon, tue, wed, thu, fri], from: "09:00", to: "18:00", tz: "Europe/Berlin"}
    factors: any
    freshness: {approve: 2m}
    session: {record: true, idle_timeout: 15m, max_concurrent: 2, audit: strict}
    notify: [sec]
  - name: payments-broad
    who: {groups: [payments, interns]}
    resources: {names: ["prod-*"]}
    access: [read, write]
    max_duration: 4h
    approval: {required: 2}
  - name: sre
    who: {groups: [sre]}
    resources: {labels: {env: prod}}
    access: ["*"]
    max_duration: 2h
    break_glass: {allowed: true, max_duration: 30m, alert: [sec], factors: phishing_resistant}
  - name: self-service
    who: {groups: [devs]}
    resources: {names: ["dev-*"]}
    access: ["*"]
    reason: {required: false}
    approval: {required: 0}
  - name: api
    who: {groups: [support]}
    resources: {names: [billing-api]}
    access: ["GET /v1/invoices", "* /v1/tickets/"]
    approval: {required: 1, groups: ["*"]}
`

var (
	prodDB     = Resource{Name: "prod-db", Kind: "postgres", Labels: map[string]string{"env": "prod"}}
	prodPayX   = Resource{Name: "prod-pay-x", Kind: "postgres", Labels: map[string]string{"env": "prod"}}
	prodVault  = Resource{Name: "prod-vault", Kind: "postgres", Labels: map[string]string{"env": "prod", "sensitivity": "high"}}
	prodOther  = Resource{Name: "prod-other", Kind: "ssh", Labels: map[string]string{"env": "staging"}}
	devDB      = Resource{Name: "dev-db", Kind: "postgres"}
	billingAPI = Resource{Name: "billing-api", Kind: "http"}

	// Monday 2026-11-30 10:00 UTC is 11:00 in Berlin (inside the window);
	// 20:00 UTC is 21:00 (outside); Saturday is outside.
	monMorning = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	monEvening = time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)
	saturday   = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
)

func TestEvaluate(t *testing.T) {
	p := mustParse(t, evalPolicy)
	alice := Subject{Name: "alice"}
	payer := Subject{Name: "pat", Groups: []string{"payments"}}
	sre := Subject{Name: "sam", Groups: []string{"sre"}}
	intern := Subject{Name: "ivy", Groups: []string{"interns"}}
	tests := []struct {
		name       string
		in         Input
		allowed    bool
		rule       string
		reason     string // substring
		auto       bool
		approvals  int
		maxd       time.Duration
		breakGlass bool
	}{
		{"deny-by-default/unknown-user", Input{Subject: Subject{Name: "mallory"}, Resource: prodDB, Access: "read", Duration: time.Hour},
			false, "", "no rule allows mallory read on prod-db (deny by default)", false, 0, 0, false},
		{"deny-by-default/unknown-access", Input{Subject: alice, Resource: prodDB, Access: "drop", Duration: time.Minute},
			false, "", "no rule allows alice drop on prod-db", false, 0, 0, false},
		{"deny-by-default/empty-access", Input{Subject: sre, Resource: prodDB, Access: ""},
			false, "", "no access level given", false, 0, 0, false},
		{"allow/user-match", Input{Subject: alice, Resource: prodDB, Access: "read", Duration: time.Hour},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"allow/group-match-glob", Input{Subject: payer, Resource: prodPayX, Access: "read", Duration: 30 * time.Minute},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"allow/first-match-wins-over-later", Input{Subject: payer, Resource: prodDB, Access: "read", Duration: 2 * time.Hour},
			false, "payments-read", "duration 2h exceeds max 1h of rule payments-read", false, 1, time.Hour, false},
		{"allow/later-rule-for-other-access", Input{Subject: payer, Resource: prodDB, Access: "write", Duration: 2 * time.Hour},
			true, "payments-broad", "allowed by rule payments-broad", false, 2, 4 * time.Hour, false},
		{"allow/labels-must-all-match", Input{Subject: alice, Resource: prodOther, Access: "read", Duration: time.Minute},
			false, "", "deny by default", false, 0, 0, false},
		{"deny/deny-rule-wins-over-allow", Input{Subject: sre, Resource: prodVault, Access: "read", Duration: time.Minute},
			false, "no-secrets", "denied by rule no-secrets", false, 0, 0, false},
		{"deny/deny-rule-by-group-and-access", Input{Subject: intern, Resource: prodDB, Access: "write", Duration: time.Minute},
			false, "no-interns-write", "denied by rule no-interns-write", false, 0, 0, false},
		{"deny/deny-rule-does-not-cover-other-access", Input{Subject: intern, Resource: prodDB, Access: "read", Duration: time.Minute},
			true, "payments-broad", "allowed by rule payments-broad", false, 2, 4 * time.Hour, false},
		{"deny/deny-rule-beats-break-glass", Input{Subject: sre, Resource: prodVault, Access: "read", Duration: time.Minute, BreakGlass: true},
			false, "no-secrets", "denied by rule no-secrets", false, 0, 0, false},
		{"duration/negative", Input{Subject: alice, Resource: prodDB, Access: "read", Duration: -time.Minute},
			false, "", "duration must be positive", false, 0, 0, false},
		{"duration/zero-means-not-given", Input{Subject: alice, Resource: prodDB, Access: "read"},
			true, "payments-read", "allowed", false, 1, time.Hour, false},
		{"auto/in-window", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 30 * time.Minute, Now: monMorning},
			true, "payments-read", "allowed by rule payments-read (auto-approved)", true, 1, time.Hour, false},
		{"auto/outside-hours", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 30 * time.Minute, Now: monEvening},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"auto/weekend", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 30 * time.Minute, Now: saturday},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"auto/too-long", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 31 * time.Minute, Now: monMorning},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"auto/wrong-group", Input{Subject: payer, Resource: prodDB, Access: "read", Duration: 30 * time.Minute, Now: monMorning},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"auto/no-clock-no-window", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 30 * time.Minute},
			true, "payments-read", "allowed by rule payments-read", false, 1, time.Hour, false},
		{"auto/required-zero", Input{Subject: Subject{Name: "d", Groups: []string{"devs"}}, Resource: devDB, Access: "anything", Duration: time.Hour},
			true, "self-service", "(auto-approved)", true, 0, 8 * time.Hour, false},
		{"break-glass/allowed", Input{Subject: sre, Resource: prodOther, Access: "root", Duration: 30 * time.Minute, BreakGlass: true},
			false, "", "deny by default", false, 0, 0, false},
		{"break-glass/uses-its-max", Input{Subject: sre, Resource: prodPayX, Access: "root", Duration: 30 * time.Minute, BreakGlass: true},
			true, "sre", "break-glass allowed by rule sre", false, 1, 2 * time.Hour, true},
		{"break-glass/over-its-max", Input{Subject: sre, Resource: prodPayX, Access: "root", Duration: time.Hour, BreakGlass: true},
			false, "sre", "duration 1h exceeds break-glass max 30m of rule sre", false, 1, 2 * time.Hour, true},
		{"break-glass/skips-rules-without-it", Input{Subject: sre, Resource: prodDB, Access: "read", Duration: 10 * time.Minute, BreakGlass: true},
			true, "sre", "break-glass allowed by rule sre", false, 1, 2 * time.Hour, true},
		{"break-glass/not-allowed", Input{Subject: alice, Resource: prodDB, Access: "read", Duration: 10 * time.Minute, BreakGlass: true},
			false, "payments-read", "rule payments-read does not allow break-glass", false, 0, 0, false},
		{"http/exact", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "GET /v1/invoices"},
			true, "api", "allowed", false, 1, 8 * time.Hour, false},
		{"http/under-prefix", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "GET /v1/invoices/42"},
			true, "api", "allowed", false, 1, 8 * time.Hour, false},
		{"http/not-a-segment", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "GET /v1/invoicesX"},
			false, "", "deny by default", false, 0, 0, false},
		{"http/wrong-method", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "DELETE /v1/invoices/42"},
			false, "", "deny by default", false, 0, 0, false},
		{"http/any-method", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "POST /v1/tickets/7"},
			true, "api", "allowed", false, 1, 8 * time.Hour, false},
		{"http/dot-dot-fails-closed", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "GET /v1/invoices/../admin"},
			false, "", "deny by default", false, 0, 0, false},
		{"http/encoded-slash-fails-closed", Input{Subject: Subject{Name: "s", Groups: []string{"support"}}, Resource: billingAPI, Access: "GET /v1/invoices%2F..%2Fadmin"},
			false, "", "deny by default", false, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(tt.in)
			if d.Allowed != tt.allowed || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.reason) || d.AutoApprove != tt.auto {
				t.Errorf("Evaluate = allowed %v rule %q reason %q auto %v; want allowed %v rule %q reason ~%q auto %v",
					d.Allowed, d.Rule, d.Reason, d.AutoApprove, tt.allowed, tt.rule, tt.reason, tt.auto)
			}
			if d.RequiredApprovals != tt.approvals || d.MaxDuration != tt.maxd || d.BreakGlassAllowed != tt.breakGlass {
				t.Errorf("Evaluate = approvals %d max %v breakglass %v; want %d %v %v",
					d.RequiredApprovals, d.MaxDuration, d.BreakGlassAllowed, tt.approvals, tt.maxd, tt.breakGlass)
			}
		})
	}
}

func TestEvaluateFullDecision(t *testing.T) {
	p := mustParse(t, evalPolicy)
	got := p.Evaluate(Input{Subject: Subject{Name: "alice"}, Resource: prodDB, Access: "read", Duration: time.Hour})
	want := Decision{
		Allowed: true, Rule: "payments-read", Reason: "allowed by rule payments-read",
		MaxDuration: time.Hour, PendingTTL: 2 * time.Hour, ReasonRequired: true, ReasonPrompt: "ticket?",
		RequiredApprovals: 1, ApproverGroups: []string{"payments-leads", "sre"},
		Factors:   FactorsAny,
		Freshness: Freshness{Approve: 2 * time.Minute, Connect: DefaultFreshness, BreakGlass: DefaultFreshness},
		Session:   SessionOptions{Record: true, IdleTimeout: 15 * time.Minute, MaxConcurrent: 2, Audit: AuditStrict, TokenUses: 1},
		Notify:    []string{"sec"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decision\n got %+v\nwant %+v", got, want)
	}
	bg := p.Evaluate(Input{Subject: Subject{Name: "sam", Groups: []string{"sre"}}, Resource: prodDB, Access: "write", Duration: 10 * time.Minute, BreakGlass: true})
	if !bg.Allowed || bg.Factors != FactorsPhishingResistant || !reflect.DeepEqual(bg.Alert, []string{"sec"}) || bg.BreakGlassMaxDuration != 30*time.Minute {
		t.Errorf("break-glass decision = %+v", bg)
	}
	// Built-in defaults apply when neither rule nor defaults set a value.
	q := mustParse(t, "version: 1"+minimalRule)
	d := q.Evaluate(Input{Subject: Subject{Name: "alice"}, Resource: Resource{Name: "db"}, Access: "read"})
	if d.MaxDuration != DefaultMaxDuration || d.PendingTTL != DefaultPendingTTL || !d.ReasonRequired || d.RequiredApprovals != 1 ||
		len(d.ApproverGroups) != 0 || !d.Session.Record || d.Session.TokenUses != 1 || d.Session.Audit != AuditStandard || d.BreakGlassAllowed {
		t.Errorf("built-in defaults not applied: %+v", d)
	}
}

func TestEvaluateNilPolicyDenies(t *testing.T) {
	var p *Policy
	if d := p.Evaluate(Input{Subject: Subject{Name: "a"}, Resource: prodDB, Access: "read"}); d.Allowed {
		t.Fatal("nil policy allowed")
	}
	bad, _, err := Parse(map[string][]byte{"p.yaml": []byte("version: 1\nrules:\n  - {name: r, who: {users: ['*']}, resources: {names: ['*']}, access: ['*'], factors: bad}\n")})
	if err == nil {
		t.Fatal("invalid policy parsed")
	}
	if d := bad.Evaluate(Input{Subject: Subject{Name: "a"}, Resource: prodDB, Access: "read"}); d.Allowed {
		t.Fatal("policy with errors allowed access")
	}
}

func TestWindowAcrossMidnight(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - name: night
    who: {users: [n]}
    resources: {names: [db]}
    access: [read]
    approval: {auto_approve: {window: {days: [sat], from: "22:00", to: "06:00", tz: UTC}}}
`)
	at := func(s string) bool {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return p.Evaluate(Input{Subject: Subject{Name: "n"}, Resource: Resource{Name: "db"}, Access: "read", Now: ts}).AutoApprove
	}
	for s, want := range map[string]bool{
		"2026-11-28T23:00:00Z": true,  // Saturday night
		"2026-11-28T03:00:00Z": true,  // Saturday early morning
		"2026-11-28T12:00:00Z": false, // Saturday noon
		"2026-11-28T22:00:00Z": true,  // from is inclusive
		"2026-11-28T06:00:00Z": false, // to is exclusive
		"2026-11-29T01:00:00Z": false, // Sunday (days name the local day)
	} {
		if got := at(s); got != want {
			t.Errorf("auto at %s = %v, want %v", s, got, want)
		}
	}
}

func TestRequestable(t *testing.T) {
	p := mustParse(t, evalPolicy)
	levels := func(r Resource) []string {
		switch r.Name {
		case "prod-db":
			return []string{"read", "write"}
		case "prod-vault":
			return []string{"read"}
		case "prod-pay-x":
			return []string{"admin"}
		}
		return nil
	}
	sre := Subject{Name: "sam", Groups: []string{"sre"}}
	got := p.Requestable(sre, []Resource{prodVault, prodPayX, prodDB}, levels)
	want := []Entitlement{
		{Resource: "prod-db", Access: "read", MaxDuration: time.Hour, Rule: "payments-read", AutoApprove: true, BreakGlass: true},
		{Resource: "prod-db", Access: "write", MaxDuration: 2 * time.Hour, Rule: "sre", BreakGlass: true},
		{Resource: "prod-pay-x", Access: "admin", MaxDuration: 2 * time.Hour, Rule: "sre", BreakGlass: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Requestable =\n%+v\nwant\n%+v", got, want)
	}
	if got := p.Requestable(Subject{Name: "nobody"}, []Resource{prodDB}, levels); len(got) != 0 {
		t.Errorf("nobody may request %+v", got)
	}
	// Without an accessLevels func, the policy's own resource specs are used.
	q := mustParse(t, fullPolicy)
	got = q.Requestable(Subject{Name: "x"}, []Resource{{Name: "db", Kind: "postgres"}}, nil)
	if len(got) != 1 || got[0].Access != "read" || got[0].Rule != "bg" || !got[0].BreakGlass {
		t.Errorf("Requestable(nil levels) = %+v", got)
	}
}

func TestCanApprove(t *testing.T) {
	tests := []struct {
		name     string
		approver Subject
		groups   []string
		want     bool
	}{
		{"member", Subject{Name: "l", Groups: []string{"payments-leads"}}, []string{"payments-leads", "sre"}, true},
		{"not-member", Subject{Name: "d", Groups: []string{"payments"}}, []string{"payments-leads", "sre"}, false},
		{"no-groups-admin", Subject{Name: "a", Groups: []string{"admins"}}, nil, true},
		{"no-groups-not-admin", Subject{Name: "d", Groups: []string{"payments"}}, nil, false},
		{"star", Subject{Name: "d"}, []string{"*"}, true},
		{"star-needs-a-person", Subject{}, []string{"*"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanApprove(tt.approver, Decision{ApproverGroups: tt.groups}); got != tt.want {
				t.Errorf("CanApprove = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"prod-db", "prod-db", true},
		{"prod-db", "prod-db2", false},
		{"prod-*", "prod-db", true},
		{"prod-*", "prod-", true},
		{"prod-*", "staging-db", false},
		{"*-db", "prod-db", true},
		{"*", "", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"*db*", "prod-db-1", true},
	}
	for _, tt := range tests {
		g := compileGlob(tt.pattern)
		if got := g.match(tt.s); got != tt.want {
			t.Errorf("glob %q match %q = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	p := mustParse(t, evalPolicy)
	ins := []Input{
		{Subject: Subject{Name: "alice"}, Resource: prodDB, Access: "read", Duration: time.Hour},
		{Subject: Subject{Name: "sam", Groups: []string{"sre"}}, Resource: prodDB, Access: "read", Duration: 30 * time.Minute, Now: monMorning},
		{Subject: Subject{Name: "sam", Groups: []string{"sre"}}, Resource: prodVault, Access: "read"},
	}
	for _, in := range ins {
		if n := testing.AllocsPerRun(100, func() { p.Evaluate(in) }); n != 0 {
			t.Errorf("Evaluate(%s %s) allocates %v times", in.Subject.Name, in.Resource.Name, n)
		}
	}
}

// benchPolicy builds a policy of nRules rules over nRes resources: most
// rules name resources exactly, one in ten selects by glob or labels.
func benchPolicy(b testing.TB, nRules, nRes int) (*Policy, []Input) {
	var sb strings.Builder
	sb.WriteString("version: 1\ndefaults: {max_duration: 8h}\nrules:\n")
	for i := 0; i < nRules; i++ {
		switch {
		case i%10 == 0:
			fmt.Fprintf(&sb, "  - {name: r%d, who: {groups: [team%d, sre]}, resources: {names: [\"svc%d-*\"], labels: {env: prod}}, access: [read], max_duration: 2h}\n", i, i%50, i)
		case i%97 == 0:
			fmt.Fprintf(&sb, "  - {name: r%d, effect: deny, who: {groups: [contractors]}, resources: {names: [db%d]}, access: [\"*\"]}\n", i, i)
		default:
			fmt.Fprintf(&sb, "  - {name: r%d, who: {users: [u%d], groups: [team%d]}, resources: {names: [db%d, db%d]}, access: [read, write], approval: {required: 1, groups: [leads]}}\n",
				i, i, i%50, i*(nRes/nRules), i*(nRes/nRules)+1)
		}
	}
	p := mustParse(b, sb.String())
	var ins []Input
	for i := 0; i < nRes; i++ {
		r := Resource{Name: fmt.Sprintf("db%d", i), Kind: "postgres", Labels: map[string]string{"env": "prod", "team": fmt.Sprint(i % 50)}}
		if i%7 == 0 {
			r.Name = fmt.Sprintf("svc%d-x", (i/7)%nRules)
		}
		ins = append(ins, Input{
			Subject:  Subject{Name: fmt.Sprintf("u%d", i/(nRes/nRules)), Groups: []string{fmt.Sprintf("team%d", i%50), "devs", "everyone"}},
			Resource: r, Access: "read", Duration: time.Hour, Now: monMorning,
		})
	}
	return p, ins
}

// BenchmarkEvaluate measures decisions per second with 1,000 rules and
// 10,000 resources: go test -run '^$' -bench Evaluate -cpu 1 ./policy/
func BenchmarkEvaluate(b *testing.B) {
	p, ins := benchPolicy(b, 1000, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p.Evaluate(ins[i%len(ins)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

func TestConvert(t *testing.T) {
	p := mustParse(t, fullPolicy)
	api := p.Resources[0]
	if r := ResourceOf(&airlock.Resource{Name: api.Name, Kind: api.Kind, Labels: api.Labels}); r.Name != "api" || r.Labels["env"] != "prod" {
		t.Errorf("ResourceOf = %+v", r)
	}
	if got := p.Resources[2].Credentials["write"].SecretRef(); got != "file:/etc/rw" {
		t.Errorf("SecretRef = %q", got)
	}
	if got := p.Resources[2].AccessLevels(); !reflect.DeepEqual(got, []string{"read", "write"}) {
		t.Errorf("AccessLevels = %v", got)
	}
	if s := SubjectOf(&airlock.User{Name: "a", Groups: []string{"g"}}); s.Name != "a" || s.Groups[0] != "g" {
		t.Errorf("SubjectOf = %+v", s)
	}
}

// linearDecide is the specification Evaluate's index must agree with:
// scan every rule in file order, deny rules first.
func linearDecide(p *Policy, in Input) (bool, string) {
	for _, r := range p.c.rules {
		if r.deny && r.match(&in) {
			return false, r.name
		}
	}
	first := ""
	for _, r := range p.c.rules {
		if r.deny || !r.match(&in) {
			continue
		}
		if first == "" {
			first = r.name
		}
		if !in.BreakGlass || r.dec.BreakGlassAllowed {
			maxd := r.dec.MaxDuration
			if in.BreakGlass {
				maxd = r.dec.BreakGlassMaxDuration
			}
			return in.Duration <= maxd, r.name
		}
	}
	return false, first // no rule, or none allows break-glass
}

func TestIndexAgreesWithLinearScan(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - {name: d1, effect: deny, who: {groups: [g3]}, resources: {names: ["d*"]}, access: [write]}
  - {name: a1, who: {groups: [g1]}, resources: {names: ["db*x", "cache"]}, access: [read]}
  - {name: a2, who: {groups: [g1, g2]}, resources: {names: ["d*"]}, access: [read, write], max_duration: 30m}
  - {name: a3, who: {groups: [g2]}, resources: {names: ["*x"]}, access: ["*"], break_glass: {allowed: true, alert: []}}
  - {name: d2, effect: deny, who: {users: ["*"]}, resources: {names: ["dbase-secret"]}, access: ["*"]}
  - {name: a4, who: {groups: [g3]}, resources: {names: [dbase-1, dbase-secret]}, access: [read]}
  - {name: a5, who: {groups: [g1, g3]}, resources: {names: ["dbase-*"], labels: {env: prod}}, access: [read]}
  - {name: a6, who: {groups: ["*"]}, resources: {labels: {env: dev}}, access: [read]}
  - {name: a7, who: {groups: [g2]}, resources: {names: ["dbase-1*"]}, access: [read], break_glass: {allowed: true, alert: []}}
`)
	names := []string{"d", "db", "dbx", "db-x", "dbase-1", "dbase-10", "dbase-secret", "cache", "cachex", "x", "", "other"}
	labels := []map[string]string{nil, {"env": "prod"}, {"env": "dev"}}
	groups := [][]string{nil, {"g1"}, {"g2"}, {"g3"}, {"g1", "g3"}}
	for _, n := range names {
		for _, l := range labels {
			for _, g := range groups {
				for _, access := range []string{"read", "write"} {
					for _, bg := range []bool{false, true} {
						for _, dur := range []time.Duration{10 * time.Minute, 45 * time.Minute, 2 * time.Hour} {
							in := Input{Subject: Subject{Name: "u", Groups: g}, Resource: Resource{Name: n, Labels: l}, Access: access, BreakGlass: bg, Duration: dur}
							d := p.Evaluate(in)
							allowed, rule := linearDecide(p, in)
							if d.Allowed != allowed || d.Rule != rule {
								t.Errorf("%+v: Evaluate = %v %q, linear scan = %v %q", in, d.Allowed, d.Rule, allowed, rule)
							}
						}
					}
				}
			}
		}
	}
	big, ins := benchPolicy(t, 300, 3000)
	allowedCount := 0
	for _, in := range ins[:3000] {
		d := big.Evaluate(in)
		if d.Allowed {
			allowedCount++
		}
		if allowed, rule := linearDecide(big, in); d.Allowed != allowed || d.Rule != rule {
			t.Fatalf("%+v: Evaluate = %v %q, linear scan = %v %q", in, d.Allowed, d.Rule, allowed, rule)
		}
	}
	if allowedCount == 0 || allowedCount == 3000 {
		t.Fatalf("benchmark inputs are degenerate: %d of 3000 allowed", allowedCount)
	}
}
