package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const statementsRule = "version: 1" + minimalRule + `    statements:
      on_unknown: audit_only
      rules:
        - name: destructive
          forms: [no_where, truncate, drop]
          action: deny
          message: ask a second person
        - name: files
          functions: [pg_read_file, Pg_Catalog.LO_EXPORT]
          objects: [vault.*]
          action: deny
        - {name: dcl, class: [dcl], action: audit_only}
        - {name: wipe, forms: [no_where], action: require_approval, timeout: 5m}
        - {name: ddl, class: [ddl], action: require_mfa}
`

func TestStatementsParse(t *testing.T) {
	p := mustParse(t, statementsRule)
	got := p.Rules[0].Statements
	want := &Statements{OnUnknown: StatementAuditOnly, Rules: []StatementRule{
		{Name: "destructive", Forms: []string{"no_where", "truncate", "drop"}, Action: StatementDeny, Message: "ask a second person"},
		{Name: "files", Functions: []string{"pg_read_file", "pg_catalog.lo_export"}, Objects: []string{"vault.*"}, Action: StatementDeny},
		{Name: "dcl", Class: []string{"dcl"}, Action: StatementAuditOnly},
		{Name: "wipe", Forms: []string{"no_where"}, Action: StatementRequireApproval, Timeout: 5 * time.Minute},
		{Name: "ddl", Class: []string{"ddl"}, Action: StatementRequireMFA},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	d := p.Evaluate(Input{Subject: Subject{Name: "alice"}, Resource: Resource{Name: "db", Kind: "postgres"}, Access: "read"})
	if !d.Allowed || d.Statements != got {
		t.Fatalf("decision does not carry the rule's statements: %+v", d)
	}
	// The canonical form round-trips.
	again := mustParse(t, string(p.Marshal()))
	if !reflect.DeepEqual(again.Rules[0].Statements, got) {
		t.Fatalf("round trip: %+v\n%s", again.Rules[0].Statements, p.Marshal())
	}
	if got.Rules[3].HoldTimeout() != 5*time.Minute || got.Rules[4].HoldTimeout() != DefaultHoldTimeout {
		t.Fatal("hold timeouts")
	}
	if (&Statements{}).OnUnknownAction() != StatementDeny || (*Statements)(nil).OnUnknownAction() != StatementDeny {
		t.Fatal("on_unknown does not default to deny")
	}
}

func TestStatementsErrors(t *testing.T) {
	base := "version: 1" + minimalRule + "    statements:\n"
	cases := []struct{ src, want string }{
		{"      rules:\n        - {name: a, class: [writes], action: deny}\n", `unknown "writes"`},
		{"      rules:\n        - {name: a, forms: [nowhere], action: deny}\n", `unknown "nowhere"`},
		{"      on_unknown: require_mfa\n", "a statement that cannot be classified is not shown"},
		{"      rules:\n        - {name: a, action: deny, timeout: 1m}\n", "only require_mfa and require_approval rules hold"},
		{"      rules:\n        - {name: a, action: require_mfa, timeout: 1h}\n", "timeout must be between"},
		{"      rules:\n        - {name: a, action: require_mfa, timeout: 1s}\n", "timeout must be between"},
		{"      rules:\n        - {name: a, class: [read]}\n", "needs an action"},
		{"      rules:\n        - {class: [read], action: deny}\n", "needs a name"},
		{"      rules:\n        - {name: a, objects: [\"*\"], action: deny}\n", "is not name, schema.name or schema.*"},
		{"      rules:\n        - {name: a, objects: [a.b.c], action: deny}\n", "is not name, schema.name or schema.*"},
		{"      rules:\n        - {name: a, action: deny}\n        - {name: a, action: deny}\n", "duplicate statement rule name"},
		{"      rulez: []\n", `unknown key "rulez"`},
	}
	for _, c := range cases {
		_, diags, err := Parse(map[string][]byte{"p.yaml": []byte(base + c.src)})
		if err == nil {
			t.Errorf("%q: parsed", c.src)
			continue
		}
		var msgs []string
		for _, d := range diags {
			msgs = append(msgs, d.String())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
			t.Errorf("%q: diagnostics %v, want %q", c.src, msgs, c.want)
		}
	}
}
