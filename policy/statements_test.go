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

func TestColumnMasksParse(t *testing.T) {
	src := "version: 1" + minimalRule + `    statements:
      unknown_columns: deny
      columns:
        Orders.Card_Number: mask
        public.users.email: hash
        salaries.*: deny
        orders.*: hash
`
	p := mustParse(t, src)
	got := p.Rules[0].Statements
	want := []ColumnMask{{"orders.card_number", ColumnMaskValue}, {"public.users.email", ColumnHash}, {"salaries.*", ColumnDeny}, {"orders.*", ColumnHash}}
	if !reflect.DeepEqual(got.Columns, want) || got.UnknownColumnsAction() != ColumnDeny || !got.HasMasks() {
		t.Fatalf("got %+v", got)
	}
	again := mustParse(t, string(p.Marshal()))
	if !reflect.DeepEqual(again.Rules[0].Statements, got) {
		t.Fatalf("round trip: %+v\n%s", again.Rules[0].Statements, p.Marshal())
	}
	for _, c := range []struct{ schema, table, column, want string }{
		{"public", "orders", "card_number", ColumnMaskValue}, // mask is stricter than orders.*: hash
		{"billing", "ORDERS", "Card_Number", ColumnMaskValue},
		{"public", "orders", "id", ColumnHash},
		{"public", "users", "email", ColumnHash},
		{"crm", "users", "email", ""},
		{"public", "users", "name", ""},
		{"hr", "salaries", "amount", ColumnDeny},
	} {
		if a := got.ColumnAction(c.schema, c.table, c.column); a != c.want {
			t.Errorf("%s.%s.%s: %q, want %q", c.schema, c.table, c.column, a, c.want)
		}
	}
	if !got.MaskedTable("", "users") || !got.MaskedTable("public", "users") || got.MaskedTable("crm", "users") || got.MaskedTable("", "items") {
		t.Error("MaskedTable")
	}
	if (&Statements{}).UnknownColumnsAction() != ColumnMaskValue || (&Statements{}).HasMasks() {
		t.Error("defaults")
	}
}

func TestColumnMasksErrors(t *testing.T) {
	base := "version: 1" + minimalRule + "    statements:\n"
	for _, c := range []struct{ src, want string }{
		{"      columns: {card_number: mask}\n", "is not table.column"},
		{"      columns: {a.b.c.d: mask}\n", "is not table.column"},
		{"      columns: {\"*.c\": mask}\n", "is not table.column"},
		{"      columns: {a..c: mask}\n", "is not table.column"},
		{"      columns: {a.c: hide}\n", "must be one of mask, hash, deny"},
		{"      columns: {a.c: mask, A.C: hash}\n", "is given twice"},
		{"      columns: [a.c]\n", "must be a mapping of column patterns"},
		{"      unknown_columns: hash\n", "must be one of mask, deny"},
	} {
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
