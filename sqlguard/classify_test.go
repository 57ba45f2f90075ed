package sqlguard

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/policy"
)

var testParser = NewParser(0)

func one(t *testing.T, text string) Statement {
	t.Helper()
	stmts, err := testParser.Parse(text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	if len(stmts) != 1 {
		t.Fatalf("parse %q: %d statements", text, len(stmts))
	}
	return stmts[0]
}

func TestClassify(t *testing.T) {
	cases := []struct {
		text      string
		class     Class
		forms     []string
		objects   []string
		functions []string
	}{
		{"SELECT * FROM orders WHERE id = 1", ClassRead, nil, []string{"orders"}, nil},
		{"select * from PUBLIC.Orders", ClassRead, nil, []string{"public.orders"}, nil},
		{`SELECT * FROM "Orders"`, ClassRead, nil, []string{"Orders"}, nil},
		{"/* DELETE */ SeLeCt 1 -- DROP TABLE x", ClassRead, nil, nil, nil},
		{"SELECT $$DELETE FROM orders$$", ClassRead, nil, nil, nil},
		{"SELECT * FROM orders FOR UPDATE", ClassWrite, nil, []string{"orders"}, nil},
		{"SELECT * INTO copy FROM orders", ClassDDL, nil, []string{"copy", "orders"}, nil},
		{"CREATE TABLE c AS SELECT * FROM orders", ClassDDL, nil, []string{"c", "orders"}, nil},
		{"WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", ClassWrite, []string{FormNoWhere}, []string{"d", "orders"}, nil},
		{"SELECT * FROM (SELECT 1) s WHERE EXISTS (SELECT 1 FROM x)", ClassRead, nil, []string{"x"}, nil},
		{"INSERT INTO orders VALUES (1)", ClassWrite, nil, []string{"orders"}, nil},
		{"UPDATE orders SET x = 1", ClassWrite, []string{FormNoWhere}, []string{"orders"}, nil},
		{"UPDATE orders SET x = 1 WHERE true", ClassWrite, []string{FormNoWhere}, []string{"orders"}, nil},
		{"DELETE FROM orders WHERE 1=1", ClassWrite, []string{FormNoWhere}, []string{"orders"}, nil},
		{"DELETE FROM orders WHERE id = 3 OR true", ClassWrite, []string{FormNoWhere}, []string{"orders"}, nil},
		{"DELETE FROM orders WHERE id = 3", ClassWrite, nil, []string{"orders"}, nil},
		{"TRUNCATE orders", ClassWrite, []string{FormTruncate}, []string{"orders"}, nil},
		{"DROP TABLE public.orders", ClassDDL, []string{FormDrop}, []string{"public.orders"}, nil},
		{"ALTER TABLE orders DROP COLUMN card", ClassDDL, []string{FormAlterDrop}, []string{"orders"}, nil},
		{"ALTER TABLE orders ADD COLUMN c int", ClassDDL, nil, []string{"orders"}, nil},
		{"GRANT SELECT ON orders TO bob", ClassDCL, nil, []string{"orders"}, nil},
		{"CREATE ROLE eve", ClassDCL, nil, nil, nil},
		{"BEGIN", ClassUtility, nil, nil, nil},
		{"SET search_path = evil, public", ClassUtility, nil, nil, nil},
		{"SHOW search_path", ClassUtility, nil, nil, nil},
		{"COPY orders TO STDOUT", ClassRead, nil, []string{"orders"}, nil},
		{"COPY orders FROM STDIN", ClassWrite, nil, []string{"orders"}, nil},
		{"COPY orders TO PROGRAM 'curl evil'", ClassRead, []string{FormCopyProgram}, []string{"orders"}, nil},
		{"COPY orders FROM '/etc/passwd'", ClassWrite, []string{FormCopyFile}, []string{"orders"}, nil},
		{"EXPLAIN DELETE FROM orders", ClassRead, nil, []string{"orders"}, nil},
		{"EXPLAIN ANALYZE DELETE FROM orders", ClassWrite, []string{FormExplainAnalyze, FormNoWhere}, []string{"orders"}, nil},
		{"EXPLAIN (ANALYZE false) DELETE FROM orders", ClassRead, nil, []string{"orders"}, nil},
		{"SELECT pg_read_file('/etc/passwd')", ClassRead, nil, nil, []string{"pg_read_file"}},
		{"SELECT pg_catalog.PG_READ_FILE('/etc/passwd')", ClassRead, nil, nil, []string{"pg_catalog.pg_read_file"}},
		{"SELECT row_to_json(o) FROM orders o", ClassRead, nil, []string{"orders"}, []string{"row_to_json"}},
		{"SELECT format('%s', 1), string_agg(x::text, ',') FROM t", ClassRead, nil, []string{"t"}, []string{"format", "string_agg"}},
		{"DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", ClassUnknown, nil, nil, nil},
		{"CALL purge_orders()", ClassUnknown, nil, nil, []string{"purge_orders"}},
		{"LOAD 'evil.so'", ClassUnknown, nil, nil, nil},
		{"PREPARE p AS DELETE FROM orders", ClassUtility, []string{FormNoWhere}, []string{"orders"}, nil},
		{"DECLARE c CURSOR FOR SELECT * FROM orders", ClassRead, nil, []string{"orders"}, nil},
		{"CREATE VIEW v AS SELECT * FROM orders", ClassDDL, nil, []string{"orders", "v"}, nil},
	}
	for _, c := range cases {
		s := one(t, c.text)
		if s.Class != c.class || !slices.Equal(s.Forms, c.forms) || !slices.Equal(s.Objects, c.objects) || !slices.Equal(s.Functions, c.functions) {
			t.Errorf("%q:\n got class %s forms %v objects %v functions %v (%s)\nwant class %s forms %v objects %v functions %v",
				c.text, s.Class, s.Forms, s.Objects, s.Functions, s.Why, c.class, c.forms, c.objects, c.functions)
		}
		if s.Class == ClassUnknown && s.Why == "" {
			t.Errorf("%q: unknown without a reason", c.text)
		}
	}
}

func TestPrepareExecute(t *testing.T) {
	p := one(t, "PREPARE p (int) AS DELETE FROM orders WHERE id = $1")
	if p.Prepare != "p" || p.Prepared == nil || p.Prepared.Class != ClassWrite {
		t.Fatalf("PREPARE: %+v", p)
	}
	e := one(t, "EXECUTE p(1)")
	if e.Execute != "p" || e.Class != ClassUnknown {
		t.Fatalf("EXECUTE: %+v", e)
	}
}

func TestMultiStatement(t *testing.T) {
	stmts, err := testParser.Parse("SELECT 1; DELETE FROM orders; SELECT 2")
	if err != nil || len(stmts) != 3 {
		t.Fatalf("%v %d", err, len(stmts))
	}
	if stmts[1].Class != ClassWrite || stmts[1].Text != " DELETE FROM orders" {
		t.Fatalf("second: %q %s", stmts[1].Text, stmts[1].Class)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := testParser.Parse("SELEC 1"); err == nil {
		t.Fatal("a syntax error parsed")
	}
	long := make([]byte, MaxText+1)
	for i := range long {
		long[i] = ' '
	}
	if _, err := testParser.Parse(string(long)); err != ErrTooLong {
		t.Fatalf("long text: %v", err)
	}
	// Cached: the same answer twice, from the cache the second time.
	a, _ := testParser.Parse("SELECT 42")
	b, _ := testParser.Parse("SELECT 42")
	if &a[0] != &b[0] {
		t.Fatal("second parse was not served from the cache")
	}
	// A long string is parsed each time: the cache holds only short keys.
	big := "SELECT 1 /*" + strings.Repeat("x", maxCachedText) + "*/"
	c, _ := testParser.Parse(big)
	d, _ := testParser.Parse(big)
	if &c[0] == &d[0] {
		t.Fatal("a query string over maxCachedText was cached")
	}
}

// guard is a small team's guardrails, the docs' example.
var guard = &policy.Statements{Rules: []policy.StatementRule{
	{Name: "no-files", Functions: []string{"pg_read_file", "pg_ls_dir", "lo_export", "dblink"}, Action: policy.StatementDeny, Message: "server files are off limits"},
	{Name: "no-program", Forms: []string{FormCopyProgram, FormCopyFile}, Action: policy.StatementDeny},
	{Name: "destructive", Forms: []string{FormNoWhere, FormTruncate, FormDrop, FormAlterDrop}, Action: policy.StatementDeny, Message: "ask a second person"},
	{Name: "secrets", Objects: []string{"vault.*", "public.api_keys"}, Action: policy.StatementDeny},
	{Name: "report-fn", Functions: []string{"report_orders"}, Class: []string{"unknown"}, Action: policy.StatementAllow},
	{Name: "dcl", Class: []string{"dcl"}, Action: policy.StatementAuditOnly},
}}

func decide(t *testing.T, sp *policy.Statements, text string, prepared Lookup) Verdict {
	t.Helper()
	stmts, err := testParser.Parse(text)
	return Decide(sp, stmts, err, prepared)
}

func TestDecide(t *testing.T) {
	cases := []struct{ text, action, rule string }{
		{"SELECT * FROM orders WHERE id = 1", policy.StatementAllow, ""},
		{"SELECT pg_read_file('/etc/passwd')", policy.StatementDeny, "no-files"},
		{"select PG_CATALOG.pg_read_file('x')", policy.StatementDeny, "no-files"},
		{"SELECT * FROM (SELECT pg_ls_dir('.')) s", policy.StatementDeny, "no-files"},
		{"COPY orders TO PROGRAM 'sh'", policy.StatementDeny, "no-program"},
		{"DELETE FROM orders", policy.StatementDeny, "destructive"},
		{"WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", policy.StatementDeny, "destructive"},
		{"EXPLAIN ANALYZE UPDATE orders SET x = 1 WHERE 'a' = 'a'", policy.StatementDeny, "destructive"},
		{"DELETE FROM orders WHERE id = 4", policy.StatementAllow, ""},
		{"SELECT 1; TRUNCATE orders", policy.StatementDeny, "destructive"},
		{"SELECT * FROM vault.keys", policy.StatementDeny, "secrets"},
		{"SELECT * FROM api_keys", policy.StatementDeny, "secrets"},                // unqualified: may be public.api_keys
		{`SELECT * FROM "API_KEYS"`, policy.StatementDeny, "secrets"},              // deny compares without case
		{"SELECT * FROM other.api_keys", policy.StatementAllow, ""},                // another schema's table
		{"DO $$BEGIN PERFORM 1; END$$", policy.StatementDeny, "on_unknown"},        // unknown: deny by default
		{"CALL report_orders()", policy.StatementAllow, "report-fn"},               // allowed by name
		{"CALL report_orders(); CALL purge()", policy.StatementDeny, "on_unknown"}, // strictest wins
		{"GRANT ALL ON orders TO eve", policy.StatementAuditOnly, "dcl"},
		{"SELEC 1", policy.StatementDeny, "on_unknown"},
		{"EXECUTE nothing_prepared", policy.StatementDeny, "on_unknown"},
		{"PREPARE p AS DELETE FROM orders", policy.StatementDeny, "destructive"},
		// Bypass attempts: quoting, comments and case do not change what
		// the grammar sees.
		{"DELETE FROM orders WHERE $x$a$x$ = $x$a$x$", policy.StatementDeny, "destructive"},
		{"DeLeTe/**/FROM/* x */orders -- WHERE id = 1", policy.StatementDeny, "destructive"},
		{"DO $q$BEGIN EXECUTE 'DELETE FROM orders'; END$q$", policy.StatementDeny, "on_unknown"},
		{"SELECT \"pg_read_file\"('/etc/passwd')", policy.StatementDeny, "no-files"},
		{"SELECT * INTO copy FROM orders WHERE true; TRUNCATE orders", policy.StatementDeny, "destructive"},
	}
	for _, c := range cases {
		v := decide(t, guard, c.text, nil)
		if v.Action != c.action || v.Rule != c.rule {
			t.Errorf("%q: got %s by %q (%s), want %s by %q", c.text, v.Action, v.Rule, v.Why, c.action, c.rule)
		}
	}
	// EXECUTE is decided as what it runs.
	p := one(t, "PREPARE p AS DELETE FROM orders")
	lookup := func(name string) ([]*Statement, bool) { return []*Statement{p.Prepared}, name == "p" }
	if v := decide(t, guard, "EXECUTE p", lookup); v.Action != policy.StatementDeny || v.Rule != "destructive" {
		t.Errorf("EXECUTE p: %+v", v)
	}
	// So is an EXECUTE inside another statement, even when on_unknown
	// lets unknown statements through.
	laxer := *guard
	laxer.OnUnknown = policy.StatementAuditOnly
	for _, c := range []struct{ text, action, rule string }{
		{"CREATE TABLE t AS EXECUTE p", policy.StatementDeny, "destructive"},
		{"EXPLAIN ANALYZE EXECUTE p", policy.StatementDeny, "destructive"},
		{"CREATE TABLE t AS EXECUTE q", policy.StatementAuditOnly, "on_unknown"},
	} {
		if v := decide(t, &laxer, c.text, lookup); v.Action != c.action || v.Rule != c.rule {
			t.Errorf("%s: %+v, want %s by %s", c.text, v, c.action, c.rule)
		}
	}
	// A name prepared twice is decided as the stricter of the two.
	q := one(t, "PREPARE p AS SELECT 1")
	both := func(name string) ([]*Statement, bool) { return []*Statement{q.Prepared, p.Prepared}, name == "p" }
	if v := decide(t, guard, "EXECUTE p", both); v.Action != policy.StatementDeny || v.Rule != "destructive" {
		t.Errorf("EXECUTE p prepared twice: %+v", v)
	}
	// on_unknown can be relaxed.
	lax := &policy.Statements{OnUnknown: policy.StatementAuditOnly}
	if v := decide(t, lax, "DO $$BEGIN END$$", nil); v.Action != policy.StatementAuditOnly {
		t.Errorf("lax DO: %+v", v)
	}
	// No guardrails: everything passes.
	if v := decide(t, nil, "DROP TABLE orders", nil); v.Action != policy.StatementAllow {
		t.Errorf("nil policy: %+v", v)
	}
}

// An allow rule allows a statement only when every name it uses is
// allowed: naming an allowed table beside another is not enough.
func TestAllowNeedsEveryName(t *testing.T) {
	sp := &policy.Statements{Rules: []policy.StatementRule{
		{Name: "reports", Objects: []string{"public.orders"}, Action: policy.StatementAllow},
		{Name: "rest", Class: []string{"read"}, Action: policy.StatementDeny},
	}}
	cases := []struct{ text, rule string }{
		{"SELECT * FROM public.orders", "reports"},
		{"SELECT * FROM public.orders, public.users", "rest"},
		{"SELECT * FROM orders", "rest"}, // unqualified: search_path decides which orders
		{`SELECT * FROM public."ORDERS"`, "rest"},
	}
	for _, c := range cases {
		if v := decide(t, sp, c.text, nil); v.Rule != c.rule {
			t.Errorf("%q: decided by %q, want %q", c.text, v.Rule, c.rule)
		}
	}
}

// The package's vocabulary is the policy's.
func TestVocabulary(t *testing.T) {
	var classes []string
	for _, c := range Classes {
		classes = append(classes, string(c))
	}
	if !slices.Equal(classes, policy.StatementClasses) {
		t.Errorf("classes %v, policy %v", classes, policy.StatementClasses)
	}
	if !slices.Equal(Forms, policy.StatementForms) {
		t.Errorf("forms %v, policy %v", Forms, policy.StatementForms)
	}
}

// BenchmarkDecideCached is the cost a guarded statement adds once its text
// is in the cache: the lookup and the rules (the pgbench guard's 20).
func BenchmarkDecideCached(b *testing.B) {
	sp := &policy.Statements{Rules: guard.Rules}
	for i := range 14 {
		sp.Rules = append(sp.Rules, policy.StatementRule{Name: "secret", Objects: []string{"vault_" + string(rune('a'+i)) + ".*"}, Action: policy.StatementDeny})
	}
	const text = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
	testParser.Parse(text)
	b.ReportAllocs()
	for b.Loop() {
		stmts, err := testParser.Parse(text)
		if v := Decide(sp, stmts, err, nil); v.Action != policy.StatementAllow {
			b.Fatal(v)
		}
	}
}

// BenchmarkParseNew is the cost of a statement text seen for the first
// time, its shape too (a new column alias each time, since texts that
// differ only in literals share a shape: BenchmarkParseShape):
// PostgreSQL's parser in WebAssembly and the classification.
func BenchmarkParseNew(b *testing.B) {
	p := NewParser(1)
	p.Warm()
	i := 0
	for b.Loop() {
		i++
		if _, err := p.Parse("SELECT abalance AS c" + strconv.Itoa(i) + " FROM pgbench_accounts WHERE aid = 1"); err != nil {
			b.Fatal(err)
		}
	}
}

// Holds rank between deny and audit_only: a string with a held statement
// and a denied one is denied; a held one beside a read is held, with the
// rule's timeout.
func TestDecideHolds(t *testing.T) {
	sp := &policy.Statements{Rules: []policy.StatementRule{
		{Name: "files", Functions: []string{"pg_read_file"}, Action: policy.StatementDeny},
		{Name: "wipe", Forms: []string{FormNoWhere, FormTruncate}, Action: policy.StatementRequireApproval, Timeout: 5 * time.Minute},
		{Name: "ddl", Class: []string{"ddl"}, Action: policy.StatementRequireMFA},
		{Name: "dcl", Class: []string{"dcl"}, Action: policy.StatementAuditOnly},
	}}
	cases := []struct {
		text, action, rule string
		timeout            time.Duration
	}{
		{"DELETE FROM orders", policy.StatementRequireApproval, "wipe", 5 * time.Minute},
		{"SELECT 1; TRUNCATE orders", policy.StatementRequireApproval, "wipe", 5 * time.Minute},
		{"CREATE TABLE t (a int)", policy.StatementRequireMFA, "ddl", policy.DefaultHoldTimeout},
		{"CREATE TABLE t (a int); DELETE FROM orders", policy.StatementRequireApproval, "wipe", 5 * time.Minute},
		{"GRANT ALL ON t TO eve; CREATE TABLE t (a int)", policy.StatementRequireMFA, "ddl", policy.DefaultHoldTimeout},
		{"DELETE FROM orders; SELECT pg_read_file('x')", policy.StatementDeny, "files", 0},
		{"PREPARE p AS DELETE FROM orders", policy.StatementRequireApproval, "wipe", 5 * time.Minute},
	}
	for _, c := range cases {
		v := decide(t, sp, c.text, nil)
		if v.Action != c.action || v.Rule != c.rule || v.Timeout != c.timeout {
			t.Errorf("%q: got %s by %q (timeout %s), want %s by %q (%s)", c.text, v.Action, v.Rule, v.Timeout, c.action, c.rule, c.timeout)
		}
	}
}

// DEALLOCATE names the statement as the server folds it (the gateway
// matches it against protocol statement names).
func TestDeallocate(t *testing.T) {
	for text, want := range map[string]struct {
		name string
		all  bool
	}{
		"DEALLOCATE a1":           {"a1", false},
		"deallocate prepare A1":   {"a1", false},
		`DEALLOCATE "A1"`:         {"A1", false},
		"DEALLOCATE ALL":          {"", true},
		"DEALLOCATE PREPARE ALL":  {"", true},
		"DISCARD ALL":             {"", true},
		"DISCARD PLANS":           {"", false},
		"SELECT 1; DEALLOCATE b2": {"b2", false},
	} {
		stmts, err := testParser.Parse(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		st := stmts[len(stmts)-1]
		if st.Deallocate != want.name || st.DeallocateAll != want.all || st.Class != ClassUtility {
			t.Errorf("%s: Deallocate %q all %v class %s", text, st.Deallocate, st.DeallocateAll, st.Class)
		}
	}
}
