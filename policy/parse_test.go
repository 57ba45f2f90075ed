package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, diags, err := Parse(map[string][]byte{"p.yaml": []byte(src)})
	if err != nil {
		t.Fatalf("Parse: %v\n%v", err, diags)
	}
	return p
}

const minimalRule = `
rules:
  - name: r
    who: {users: [alice]}
    resources: {names: [db]}
    access: [read]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // "line:col: error: message substring"
	}{
		{"unknown-top-key", "version: 1\nrulez: []\n", `2:1: error: unknown key "rulez" in policy; did you mean "rules"?`},
		{"unknown-rule-key", "version: 1" + minimalRule + "    maxduration: 1h\n", `7:5: error: unknown key "maxduration" in rule; did you mean "max_duration"?`},
		{"missing-version", minimalRule, `1:1: error: missing key "version"`},
		{"bad-version", "version: 2\n", `1:10: error: unsupported policy version "2"`},
		{"bad-duration", "version: 1" + minimalRule + "    max_duration: 1 hour\n", `7:19: error: rule r: max_duration: invalid duration "1 hour"`},
		{"negative-duration", "version: 1" + minimalRule + "    max_duration: -1h\n", `7:19: error: rule r: max_duration must be positive`},
		{"bad-effect", "version: 1" + minimalRule + "    effect: maybe\n", `7:13: error: rule r: effect must be one of allow, deny, not "maybe"`},
		{"bad-factors", "version: 1" + minimalRule + "    factors: sms\n", `error: rule r: factors must be one of any, phishing_resistant`},
		{"bad-audit", "version: 1" + minimalRule + "    session: {audit: loud}\n", `error: rule r: session.audit must be one of standard, strict`},
		{"bad-bool", "version: 1" + minimalRule + "    session: {record: maybe}\n", `session.record must be true or false`},
		{"no-who", "version: 1\nrules:\n  - name: r\n    resources: {names: [db]}\n    access: [read]\n", `3:5: error: rule r needs who`},
		{"empty-who", "version: 1\nrules:\n  - name: r\n    who: {}\n    resources: {names: [db]}\n    access: [read]\n", `4:10: error: rule r: who selects nobody`},
		{"no-resources", "version: 1\nrules:\n  - name: r\n    who: {users: [a]}\n    access: [read]\n", `rule r needs resources`},
		{"no-access", "version: 1\nrules:\n  - name: r\n    who: {users: [a]}\n    resources: {names: [db]}\n", `rule r needs access`},
		{"empty-access", "version: 1\nrules:\n  - name: r\n    who: {users: [a]}\n    resources: {names: [db]}\n    access: []\n", `access lists no access level`},
		{"no-name", "version: 1\nrules:\n  - who: {users: [a]}\n", `3:5: error: rule needs a name`},
		{"pg-unknown-option", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {ssl_mode: verify-full}}\n",
			`3:57: error: resource db: unknown option "ssl_mode" (postgres and mysql resources take database, databases, read_only, sslmode, sslrootcert, allow_cleartext_password, credentials, owner, connection_limit, template_LEVEL)`},
		{"pg-ephemeral-no-provisioner", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: ephemeral, owner: app_owner, template_read: app_read}}\n",
			`error: resource db: credentials: ephemeral needs a provisioner`},
		{"pg-ephemeral-no-owner", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: ephemeral, template_read: app_read}, provisioner: {user: p, password_env: P}}\n",
			`error: resource db: credentials: ephemeral needs owner`},
		{"pg-ephemeral-no-template", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: ephemeral, owner: o}, provisioner: {user: p, password_env: P}}\n",
			`error: resource db: credentials: ephemeral needs a template role per access level`},
		{"pg-ephemeral-and-standing", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: ephemeral, owner: o, template_read: r}, provisioner: {user: p, password_env: P}, credentials: {read: {user: ro, password_env: RO}}}\n",
			`remove the standing credentials`},
		{"pg-bad-credentials-mode", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: temporary}, credentials: {read: {user: ro, password_env: RO}}}\n",
			`error: resource db: credentials must be static or ephemeral, not "temporary"`},
		{"pg-template-without-ephemeral", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {template_read: r}, credentials: {read: {user: ro, password_env: RO}}}\n",
			`template_LEVEL, owner and connection_limit need credentials: ephemeral`},
		{"pg-provisioner-without-ephemeral", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, provisioner: {user: p, password_env: P}, credentials: {read: {user: ro, password_env: RO}}}\n",
			`provisioner needs options credentials: ephemeral`},
		{"pg-ephemeral-bad-limit", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {credentials: ephemeral, owner: o, template_read: r, connection_limit: lots}, provisioner: {user: p, password_env: P}}\n",
			`connection_limit must be an integer from 1 to 10000, not "lots"`},
		{"ephemeral-mysql-owner", "version: 1\nresources:\n  - {name: db, kind: mysql, addr: db:3306, options: {credentials: ephemeral, owner: o, template_read: r}, provisioner: {user: p, password_env: P}}\n",
			`owner is for postgres`},
		{"ephemeral-ssh", "version: 1\nresources:\n  - {name: db, kind: ssh, addr: db:22, options: {credentials: ephemeral, template_read: r}, provisioner: {user: p, password_env: P}}\n",
			`credentials: ephemeral is for postgres and mysql resources`},
		{"pg-bad-databases", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {databases: [app, \"a,b\"]}}\n",
			`error: resource db: options: databases items must be non-empty names without commas, not "a,b"`},
		{"pg-databases-mapping", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {databases: {a: b}}}\n",
			`error: resource db: options value must be a single value`},
		{"pg-bad-cleartext", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {allow_cleartext_password: yes please}}\n",
			`error: resource db: allow_cleartext_password must be true or false, not "yes please"`},
		{"pg-bad-sslmode", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {sslmode: prefer}}\n",
			`error: resource db: sslmode must be disable, require, verify-ca or verify-full, not "prefer"`},
		{"pg-rootcert-plaintext", "version: 1\nresources:\n  - {name: db, kind: postgres, addr: db:5432, options: {sslrootcert: /ca.pem}}\n",
			`error: resource db: sslrootcert needs sslmode require, verify-ca or verify-full`},
		{"duplicate-rule", "version: 1" + minimalRule + minimalRule[len("\nrules:"):], `8:11: error: duplicate rule name "r" (first defined at p.yaml:3:11)`},
		{"duplicate-key", "version: 1" + minimalRule + "    access: [write]\n", `7:5: error: duplicate key "access" in rule`},
		{"ceiling", "version: 1\ndefaults: {max_duration: 4h}" + minimalRule + "    max_duration: 8h\n", `8:19: error: rule r: max_duration 8h exceeds the ceiling defaults.max_duration 4h`},
		{"break-glass-over-max", "version: 1" + minimalRule + "    max_duration: 1h\n    break_glass: {allowed: true, max_duration: 2h, alert: []}\n",
			`8:48: error: rule r: break_glass.max_duration 2h exceeds the rule's max_duration 1h`},
		{"break-glass-over-default", "version: 1" + minimalRule + "    break_glass: {allowed: true, max_duration: 2h}\n",
			`break_glass.max_duration 2h exceeds the rule's max_duration 1h`},
		{"auto-over-max", "version: 1" + minimalRule + "    max_duration: 1h\n    approval: {auto_approve: {max_duration: 90m}}\n",
			`8:45: error: rule r: auto_approve.max_duration 1h30m exceeds the rule's max_duration 1h`},
		{"negative-approvals", "version: 1" + minimalRule + "    approval: {required: -1}\n", `7:26: error: rule r: approval.required must be at least 0, not -1`},
		{"deny-with-approval", "version: 1" + minimalRule + "    effect: deny\n    approval: {required: 1}\n", `8:5: error: rule r: a deny rule cannot have approval`},
		{"deny-with-break-glass", "version: 1" + minimalRule + "    effect: deny\n    break_glass: {allowed: true}\n", `a deny rule cannot have break_glass`},
		{"inline-password", "version: 1\nresources:\n  - name: db\n    kind: postgres\n    addr: db:5432\n    credentials:\n      read: {user: u, password: hunter2}\n",
			`7:23: error: inline secrets are not allowed; use password_env or password_file`},
		{"inline-secret-webhook", "version: 1\nnotify:\n  - name: n\n    type: webhook\n    url: https://x\n    secret: s3cret\n", `6:5: error: inline secrets are not allowed; use secret_env or secret_file`},
		{"credential-needs-ref", "version: 1\nresources:\n  - name: db\n    kind: postgres\n    addr: db:5432\n    credentials:\n      read: {user: u}\n", `needs exactly one of password_env or password_file`},
		{"duplicate-resource", "version: 1\nresources:\n  - {name: h, kind: ssh, addr: 'h:22', logins: [u]}\n  - {name: h, kind: ssh, addr: 'h:22', logins: [u]}\n", `4:12: error: duplicate resource name "h" (first defined at p.yaml:3:12)`},
		{"bad-kind", "version: 1\nresources:\n  - {name: h, kind: ftp, addr: 'h:21'}\n", `3:21: error: resource h: kind must be one of postgres, mysql, ssh, http, kubernetes`},
		{"unknown-notify", "version: 1" + minimalRule + "    notify: [pager]\n", `7:14: error: unknown notify channel "pager"`},
		{"unknown-alert", "version: 1" + minimalRule + "    break_glass: {allowed: true, alert: [pager]}\n", `unknown notify channel "pager"`},
		{"webhook-needs-secret", "version: 1\nnotify:\n  - {name: n, type: webhook, url: 'https://x'}\n", `a webhook needs secret_env or secret_file`},
		{"bad-window", "version: 1" + minimalRule + "    approval: {auto_approve: {window: {from: '9am', to: '18:00'}}}\n", `window.from: time "9am" must be HH:MM`},
		{"bad-tz", "version: 1" + minimalRule + "    approval: {auto_approve: {window: {from: '09:00', to: '18:00', tz: Mars/Olympus}}}\n", `unknown time zone "Mars/Olympus"`},
		{"bad-day", "version: 1" + minimalRule + "    approval: {auto_approve: {window: {days: [funday], from: '09:00', to: '18:00'}}}\n", `"funday" is not one of mon`},
		{"bad-glob", "version: 1\nrules:\n  - name: r\n    who: {users: [a]}\n    resources: {names: ['db?']}\n    access: [read]\n", `5:25: error: rule r: resources.names entry "db?": only '*' is a wildcard`},
		{"bad-http-access", "version: 1" + minimalRule[:len(minimalRule)-len("    access: [read]\n")] + "    access: ['get api']\n", `6:14: error: rule r: access entry "get api"`},
		{"syntax", "version: 1\nrules: [\n", `error: invalid YAML`},
		{"anchors", "version: 1\ndefaults: &d {max_duration: 1h}\n", `YAML anchors and aliases are not allowed`},
		{"not-a-mapping", "- a\n- b\n", `1:1: error: policy must be a mapping`},
		{"two-documents", "version: 1\n---\nversion: 1\n", `only one YAML document per file`},
		{"bad-name", "version: 1\nrules:\n  - name: 'a b'\n", `rule name "a b" must be`},
		{"int-not-string", "version: 1" + minimalRule + "    session: {max_concurrent: many}\n", `max_concurrent must be an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, err := Parse(map[string][]byte{"p.yaml": []byte(tt.src)})
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if !airlock.IsCode(err, airlock.EINVALID) {
				t.Errorf("error code = %q, want invalid", airlock.ErrorCode(err))
			}
			var all []string
			found := false
			for _, d := range diags {
				all = append(all, d.String())
				if strings.Contains(d.String(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no diagnostic contains %q; got:\n%s", tt.want, strings.Join(all, "\n"))
			}
			if !strings.Contains(err.Error(), "p.yaml:") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestDiagnosticString(t *testing.T) {
	d := Diagnostic{File: "policy/team.yaml", Line: 12, Col: 5, Severity: SeverityError, Message: `unknown key "maxduration"`}
	if got, want := d.String(), `policy/team.yaml:12:5: error: unknown key "maxduration"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParseErrorsNeverLeakSecrets(t *testing.T) {
	src := "version: 1\nresources:\n  - name: db\n    kind: postgres\n    addr: db:5432\n    credentials:\n      read: {user: u, password: hunter2-secret-value}\n"
	_, diags, err := Parse(map[string][]byte{"p.yaml": []byte(src)})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	for _, d := range diags {
		if strings.Contains(d.String(), "hunter2") {
			t.Errorf("diagnostic leaks the secret: %s", d)
		}
	}
}

func TestParseMultipleFiles(t *testing.T) {
	files := map[string][]byte{
		"b-rules.yaml": []byte("rules:\n  - {name: b, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n"),
		"a-base.yaml":  []byte("version: 1\ndefaults: {max_duration: 2h}\nrules:\n  - {name: a, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n"),
		"c-empty.yaml": []byte("# nothing yet\n"),
	}
	p, diags, err := Parse(files)
	if err != nil {
		t.Fatalf("Parse: %v %v", err, diags)
	}
	if len(p.Rules) != 2 || p.Rules[0].Name != "a" || p.Rules[1].Name != "b" {
		t.Fatalf("rules = %+v, want a then b (file name order)", p.Rules)
	}
	d := p.Evaluate(Input{Subject: Subject{Name: "x"}, Resource: Resource{Name: "db"}, Access: "read", Duration: time.Hour})
	if !d.Allowed || d.Rule != "a" || d.MaxDuration != 2*time.Hour {
		t.Errorf("decision = %+v, want rule a with 2h from the other file's defaults", d)
	}

	files["d-dup.yaml"] = []byte("defaults: {max_duration: 1h}\nrules:\n  - {name: a, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n")
	_, diags, err = Parse(files)
	if err == nil {
		t.Fatal("duplicate defaults and rule across files accepted")
	}
	want := []string{`d-dup.yaml:1:1: error: defaults are already defined in another file`, `d-dup.yaml:3:12: error: duplicate rule name "a" (first defined at a-base.yaml:4:12)`}
	for _, w := range want {
		if !containsDiag(diags, w) {
			t.Errorf("missing %q in %v", w, diags)
		}
	}
}

func containsDiag(diags []Diagnostic, s string) bool {
	for _, d := range diags {
		if strings.Contains(d.String(), s) {
			return true
		}
	}
	return false
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("10-base.yaml", "version: 1\n")
	write("20-rules.yml", minimalRule)
	write("README.md", "not policy")
	files, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("Load read %d files, want 2 (*.yaml and *.yml only)", len(files))
	}
	if _, _, err := Parse(files); err != nil {
		t.Fatal(err)
	}
	one, err := Load(filepath.Join(dir, "10-base.yaml"))
	if err != nil || len(one) != 1 {
		t.Fatalf("Load(file) = %v, %v", one, err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !airlock.IsCode(err, airlock.EINVALID) {
		t.Errorf("Load(missing) err = %v, want invalid", err)
	}
	empty := t.TempDir()
	if _, err := Load(empty); !airlock.IsCode(err, airlock.EINVALID) {
		t.Errorf("Load(empty dir) err = %v, want invalid", err)
	}
}

func TestExamplePolicy(t *testing.T) {
	files, err := Load("../docs/examples/policy/team.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, diags, err := Parse(files)
	if err != nil {
		t.Fatalf("example policy invalid: %v", err)
	}
	for _, d := range diags {
		t.Errorf("example policy diagnostic: %s", d)
	}
	if w := p.Warnings(nil); len(w) != 0 {
		t.Errorf("example policy warnings: %v", w)
	}
	data, err := os.ReadFile("../docs/examples/policy/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseCases("cases.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, r := range RunCases(p, cases, nil, nil) {
		if !r.Pass {
			t.Errorf("case %q (line %d) failed: %s", r.Case.Name, r.Case.Line, r.Message)
		}
	}
	roundTrip(t, p)
}

// roundTrip checks Parse(Marshal(p)) equals p and marshals identically.
func roundTrip(t *testing.T, p *Policy) {
	t.Helper()
	out := p.Marshal()
	q, diags, err := Parse(map[string][]byte{"canonical.yaml": out})
	if err != nil {
		t.Fatalf("canonical form does not parse: %v %v\n%s", err, diags, out)
	}
	a, b := *p, *q
	a.c, b.c = nil, nil
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the policy:\nbefore %+v\nafter  %+v\n%s", a, b, out)
	}
	if again := q.Marshal(); string(again) != string(out) {
		t.Errorf("Marshal not canonical:\n%s\n---\n%s", out, again)
	}
	if d := Diff(p, q); len(d) != 0 {
		t.Errorf("Diff of round trip = %v", d)
	}
}

const fullPolicy = `version: 1
defaults:
  max_duration: 12h
  pending_ttl: 2d
  reason: {required: false, prompt: "why?"}
  factors: phishing_resistant
  freshness: {approve: 1m, connect: 2m, break_glass: 30s}
  session: {record: false, idle_timeout: 10m, max_concurrent: 5, audit: strict, log_parameters: true, token_uses: 3}
resources:
  - name: api
    kind: http
    addr: https://api.internal
    labels: {env: prod, "yes": "no"}
  - name: box
    kind: ssh
    addr: box:22
    logins: [root, "*"]
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ"
  - name: db
    kind: postgres
    addr: db:5432
    options: {database: app, databases: [app_archive, app_reports], sslmode: verify-full, sslrootcert: /etc/db-ca.pem, allow_cleartext_password: false}
    credentials:
      read: {user: ro, password_env: RO}
      write: {user: rw, password_file: /etc/rw}
notify:
  - {name: hook, type: webhook, url_file: /etc/hook-url, secret_file: /etc/hook-secret}
  - {name: chat, type: slack, url: "https://hooks.slack.com/services/x"}
rules:
  - name: all-fields
    who: {users: ["*", "09:00"], groups: [g]}
    resources: {names: ["prod-*", "db"], labels: {env: "*"}}
    access: ["GET /api", "*"]
    max_duration: 90m
    pending_ttl: 1h
    reason: {}
    approval:
      required: 0
      groups: []
      auto_approve:
        users: [u]
        groups: [g]
        access: [read]
        max_duration: 30m
        window: {days: [sat, sun], from: "22:00", to: "06:00", tz: America/New_York}
    break_glass: {allowed: false}
    factors: any
    freshness: {approve: 90s}
    session: {record: true, max_concurrent: 1, log_parameters: false}
    notify: [hook, chat]
  - name: deny-it
    effect: deny
    who: {groups: ["*"]}
    resources: {labels: {env: dev}}
    access: ["*"]
  - name: bg
    who: {users: [x]}
    resources: {names: [db]}
    access: [read]
    approval: {}
    break_glass: {allowed: true, max_duration: 1h, alert: [hook], factors: any}
`

func TestMarshalRoundTrip(t *testing.T) {
	roundTrip(t, mustParse(t, fullPolicy))
	roundTrip(t, mustParse(t, "version: 1\n"))
}

func TestDiff(t *testing.T) {
	old := mustParse(t, fullPolicy)
	changed := strings.NewReplacer(
		"max_duration: 90m", "max_duration: 2h",
		"  - name: deny-it\n", "  - name: deny-that\n",
		"read: {user: ro, password_env: RO}", "read: {user: ro2, password_env: RO}",
		"  max_duration: 12h\n", "  max_duration: 10h\n",
	).Replace(fullPolicy)
	got := Diff(old, mustParse(t, changed))
	want := []string{
		"~ defaults: max_duration 12h -> 10h",
		"~ resource db: credentials.read.user ro -> ro2",
		"~ rule all-fields: max_duration 1h30m -> 2h",
		"+ rule deny-that",
		"- rule deny-it",
		"~ rule order: all-fields, bg -> all-fields, bg",
	}
	for _, w := range want[:5] {
		if !contains(got, w) {
			t.Errorf("Diff missing %q; got %q", w, got)
		}
	}
	if contains(got, want[5]) {
		t.Errorf("Diff reports an order change that did not happen: %q", got)
	}
	// Reordering rules changes which allow rule wins: say so.
	reordered := mustParse(t, "version: 1\nrules:\n  - {name: b, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n  - {name: a, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n")
	orig := mustParse(t, "version: 1\nrules:\n  - {name: a, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n  - {name: b, who: {users: [x]}, resources: {names: [db]}, access: [read]}\n")
	if got := Diff(orig, reordered); !contains(got, "~ rule order: a, b -> b, a") {
		t.Errorf("Diff(reordered) = %q", got)
	}
	if got := Diff(nil, orig); !contains(got, "+ rule a") || !contains(got, "+ rule b") {
		t.Errorf("Diff(nil, p) = %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestWarnings(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - name: typo
    who: {users: [a]}
    resources: {names: [prod-dbb, prod-db]}
    access: [read]
  - name: labels
    who: {users: [a]}
    resources: {labels: {env: qa}}
    access: [read]
  - name: fine
    who: {users: [a]}
    resources: {names: ["prod-*"], labels: {env: prod}}
    access: [read]
`)
	known := []Resource{{Name: "prod-db", Kind: "postgres", Labels: map[string]string{"env": "prod"}}}
	got := p.Warnings(known)
	var s []string
	for _, d := range got {
		s = append(s, d.String())
	}
	want := []string{
		`p.yaml:5:25: warning: rule typo: resource name "prod-dbb" matches no known resource`,
		`p.yaml:9:16: warning: rule labels: resources selector matches no known resource`,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseCasesErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"empty", "", "no cases"},
		{"bad-expect", "cases:\n  - {name: x, who: {user: a}, resource: db, access: read, expect: maybe}\n", `2:67: error: case x: expect must be one of`},
		{"bad-at", "cases:\n  - {name: x, who: {user: a}, resource: db, access: read, expect: deny, at: tomorrow}\n", `at "tomorrow" must be an RFC 3339 time`},
		{"unknown-key", "cases:\n  - {name: x, whom: {user: a}}\n", `unknown key "whom" in case`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCases("c.yaml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRunCasesReportsFailures(t *testing.T) {
	p := mustParse(t, "version: 1"+minimalRule)
	cases, err := ParseCases("c.yaml", []byte(`cases:
  - {name: wrong-expect, who: {user: alice}, resource: {name: db}, access: read, expect: deny}
  - {name: wrong-rule, who: {user: alice}, resource: {name: db}, access: read, expect: allow, rule: other}
  - {name: wrong-approvals, who: {user: alice}, resource: {name: db}, access: read, expect: approval, approvals: 2}
  - {name: unknown-resource, who: {user: alice}, resource: nope, access: read, expect: deny}
  - {name: passes, who: {user: alice}, resource: db, access: read, expect: approval, rule: r, approvals: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := RunCases(p, cases, []Resource{{Name: "db", Kind: "postgres"}}, nil)
	want := []struct {
		pass bool
		msg  string
	}{
		{false, "expected deny, got allow"},
		{false, `expected rule "other", got "r"`},
		{false, "expected 2 approvals, got 1"},
		{false, `unknown resource "nope"`},
		{true, "allowed by rule r"},
	}
	for i, w := range want {
		if res[i].Pass != w.pass || !strings.Contains(res[i].Message, w.msg) {
			t.Errorf("case %s: pass=%v msg=%q, want pass=%v msg~%q", res[i].Case.Name, res[i].Pass, res[i].Message, w.pass, w.msg)
		}
	}
}

func TestMarshalQuotesTrickyStrings(t *testing.T) {
	src := `version: 1
defaults:
  reason: {prompt: "  leading: colon # hash\nnewline 'q' \"dq\" ~ null"}
resources:
  - name: h
    kind: http
    addr: "https://h.internal/x?y=1&z=#frag"
    labels: {"null": "~", "true": "yes", "1e3": "0x1F", "empty": "", "uni": "ünïcödé ✓"}
    options: {"- dash": "[not, a, list]", "{": "}"}
rules:
  - name: r
    who: {users: ["*", "null", "- x", "@at", "%pct"], groups: ["&anchorish", "!tag"]}
    resources: {names: ["*"], labels: {"k": "*"}}
    access: ["GET /a%20b", "* /"]
`
	p := mustParse(t, src)
	roundTrip(t, p)
	if p.Resources[0].Labels["null"] != "~" || p.Resources[0].Labels["empty"] != "" || p.Rules[0].Who.Groups[1] != "!tag" {
		t.Errorf("parsed values wrong: %+v %+v", p.Resources[0].Labels, p.Rules[0].Who)
	}
}

// TestPostgresDatabasesOption pins that a postgres resource lists the
// databases a client may open, as a YAML list or comma-separated.
// TestEphemeralResource: a postgres resource with ephemeral credentials
// offers its template_LEVEL options as access levels, keeps its
// provisioner, and survives a round trip.
func TestEphemeralResource(t *testing.T) {
	p := mustParse(t, `version: 1
resources:
  - name: db
    kind: postgres
    addr: db:5432
    options: {credentials: ephemeral, owner: app_owner, template_read: app_read, template_write: "App Write", connection_limit: 5}
    provisioner: {user: airlock_provisioner, password_env: AIRLOCK_CRED_PROVISIONER}
`)
	r := p.Resources[0]
	if !r.Ephemeral() || r.Provisioner == nil || r.Provisioner.User != "airlock_provisioner" || r.Provisioner.PasswordEnv != "AIRLOCK_CRED_PROVISIONER" {
		t.Fatalf("resource %+v", r)
	}
	if got := r.AccessLevels(); len(got) != 2 || got[0] != "read" || got[1] != "write" {
		t.Fatalf("AccessLevels = %v, want [read write]", got)
	}
	roundTrip(t, p)
}

func TestPostgresDatabasesOption(t *testing.T) {
	for _, src := range []string{
		"{name: db, kind: postgres, addr: db:5432, options: {databases: [app, app_archive]}, credentials: {read: {user: ro, password_env: RO}}}",
		"{name: db, kind: postgres, addr: db:5432, options: {databases: \"app,app_archive\"}, credentials: {read: {user: ro, password_env: RO}}}",
	} {
		p := mustParse(t, "version: 1\nresources:\n  - "+src+"\n")
		if got := p.Resources[0].Options["databases"]; got != "app,app_archive" {
			t.Fatalf("databases option %q", got)
		}
		roundTrip(t, p)
	}
}
