package sqlguard

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/policy"
)

func testCatalog(t *testing.T, unknown string) *Catalog {
	t.Helper()
	sp := &policy.Statements{UnknownColumns: unknown, Columns: []policy.ColumnMask{
		{Pattern: "orders.card_number", Action: policy.ColumnMaskValue},
		{Pattern: "orders.*", Action: policy.ColumnHash},
		{Pattern: "hr.salaries.*", Action: policy.ColumnDeny},
	}}
	rows := [][]string{
		{"r", "100", "public", "orders", "r", ""},
		{"r", "101", "public", "orders_2026", "r", ""}, // a partition of orders
		{"r", "102", "public", "items", "r", ""},
		{"r", "103", "public", "order_view", "v", ""},
		{"r", "104", "hr", "salaries", "r", ""},
		{"r", "105", "public", "salaries", "r", ""},
		{"r", "1259", "pg_catalog", "pg_class", "r", ""},
		{"a", "100", "public", "orders", "1", "id"},
		{"a", "100", "public", "orders", "2", "card_number"},
		{"a", "101", "public", "orders", "1", "card_number"}, // attnum differs in the child
		{"a", "104", "hr", "salaries", "1", "amount"},
		{"a", "105", "public", "salaries", "1", "amount"},
		{"f", "", "c", "count", "", ""},
		{"f", "", "c", "upper", "", ""},
		{"f", "", "c", "=", "", ""},
		{"f", "", "c", "lower", "", ""},
		{"f", "", "u", "lower", "", ""}, // shadows pg_catalog.lower
		{"f", "", "u", "get_cards", "s", ""},
		{"f", "", "c", "set_config", "v", ""},
		{"f", "", "c", "set_config", "s", ""}, // any volatile overload counts
		{"f", "", "c", "query_to_xml", "s", ""},
		{"f", "", "u", "log_it", "v", ""},
		{"f", "", "u", "###", "v", ""},
		{"f", "", "b", "btrim", "", ""}, // in pg_catalog and another schema
		{"f", "", "u", "#<", "s", ""},
	}
	c, err := NewCatalog(sp, rows)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCatalogColumns(t *testing.T) {
	c := testCatalog(t, "")
	for _, x := range []struct {
		rel      uint32
		attnum   int16
		touching bool
		want     string
	}{
		{100, 2, false, policy.ColumnMaskValue}, // mask beats orders.*: hash
		{100, 1, false, policy.ColumnHash},
		{101, 1, false, policy.ColumnMaskValue}, // the partition, by its own column number
		{104, 1, false, policy.ColumnDeny},
		{105, 1, true, ""}, // public.salaries is not hr.salaries
		{102, 1, true, ""}, // a plain column of an unmasked table
		{0, 0, false, ""},  // an expression in a statement that touches nothing masked
		{0, 0, true, policy.ColumnMaskValue},
		{102, 0, true, policy.ColumnMaskValue},  // a whole-row reference
		{102, -1, true, policy.ColumnMaskValue}, // a system column
		{103, 1, true, policy.ColumnMaskValue},  // a view
		{999, 1, true, policy.ColumnMaskValue},  // a relation made since
		{999, 1, false, policy.ColumnMaskValue}, // even when the statement names a known table (a temporary one shadows it)
	} {
		if a := c.Column(x.rel, x.attnum, x.touching); a != x.want {
			t.Errorf("Column(%d, %d, %v) = %q, want %q", x.rel, x.attnum, x.touching, a, x.want)
		}
	}
	if d := testCatalog(t, policy.ColumnDeny); d.Column(0, 0, true) != policy.ColumnDeny {
		t.Error("unknown_columns: deny")
	}
}

func TestCatalogTouches(t *testing.T) {
	c := testCatalog(t, "")
	p := NewParser(0)
	prepared := map[string][]*Statement{}
	lookup := func(n string) ([]*Statement, bool) { s, ok := prepared[n]; return s, ok }
	for _, x := range []struct {
		sql     string
		touches bool
		refused string
	}{
		{"SELECT id FROM items", false, ""},
		{"SELECT count(*) FROM items WHERE id = 1", false, ""},
		{"SELECT relname FROM pg_catalog.pg_class", false, ""},
		{"SELECT 1", false, ""},
		{"SELECT count(*) FROM orders", true, ""},
		{"SELECT * FROM Public.ORDERS", true, ""},
		{`SELECT * FROM "Orders"`, true, ""}, // compared without regard to case: fail closed
		{"SELECT * FROM orders_2026", true, ""},
		{"SELECT * FROM mydb.public.orders", true, ""},
		{"SELECT * FROM order_view", true, ""},
		{"SELECT * FROM not_there", true, ""},
		{"WITH x AS (SELECT 1) SELECT * FROM x", true, ""},
		{"SELECT lower(name) FROM items", true, ""}, // a user's lower may shadow pg_catalog's
		{"SELECT pg_catalog.lower(name) FROM items", false, ""},
		{"SELECT upper(name) FROM items", false, ""},
		{"SELECT btrim(name) FROM items", true, ""},
		{"SELECT pg_catalog.btrim(name) FROM items", false, ""},
		{"SELECT get_cards()", true, ""},
		{"SELECT public.upper(name) FROM items", true, ""},
		{"SELECT name ||| 'x' FROM items", true, ""},
		{"SELECT id FROM salaries", true, ""},
		// Functions that read what a string names touch; volatile ones
		// may not be called in a statement that touches.
		{"SELECT query_to_xml('SELECT card_number FROM orders', true, false, '')", true, ""},
		{"SELECT pg_catalog.table_to_xml('orders', true, false, '')", true, ""},
		{"SELECT set_config('x.c', card_number, false) FROM orders", true, "volatile function (set_config)"},
		{"SELECT set_config('x.c', 'v', false)", false, ""},
		{"SELECT log_it(card_number) FROM orders", true, "volatile function (log_it)"},
		{"SELECT count(*) FROM orders WHERE log_it(note)", true, "volatile"},
		{"SELECT (card_number).log_it FROM orders", true, "volatile function (log_it)"},
		{"SELECT o.log_it FROM orders o", true, "volatile function (log_it)"},
		{"SELECT i.get_cards FROM items i", true, ""}, // attribute notation of a function of your own
		{"SELECT i.name FROM items i", false, ""},
		{"SELECT 1 FROM orders WHERE card_number ### 'x'", true, "volatile function (###)"},
		{"SELECT 1 WHERE 1 #< ANY (SELECT 1)", true, ""},
		{"SELECT id FROM items ORDER BY id USING #<", true, ""},
		{"CREATE DOMAIN d AS text CHECK (VALUE = '')", false, "server-side code"},
		// FETCH reads a cursor's or portal's rows.
		{"FETCH ALL FROM c1", true, ""},
		// An EXECUTE inside another statement runs what it names.
		{"CREATE TABLE t2 AS EXECUTE nope", true, "only reads"},
		{"INSERT INTO items SELECT * FROM orders", true, "only reads"},
		{"INSERT INTO items VALUES (1, 'x')", false, ""},
		{"UPDATE items SET name = 'x' WHERE id = 1", false, ""},
		{"CREATE TABLE t AS SELECT * FROM orders", true, "only reads"},
		{"COPY orders TO STDOUT", true, "COPY"},
		{"COPY items TO STDOUT", false, ""},
		{"DECLARE c CURSOR FOR SELECT * FROM orders", true, "cursor"},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", false, "server-side code"},
		{"DO $$BEGIN END$$", false, "server-side code"},
		{"CREATE EXTENSION tablefunc", false, "server-side code"},
		{"CALL p()", true, "server-side code"},
		{"PREPARE w AS DELETE FROM orders WHERE id = 1", true, "only reads"},
		{"PREPARE r AS SELECT card_number FROM orders", true, ""},
		{"EXECUTE r", true, ""},
		{"EXECUTE nope", true, "did not prepare"},
		{"PREPARE q AS SELECT 1", false, ""},
		{"EXECUTE q", false, ""},
		{"PREPARE q AS SELECT card_number || '' FROM orders", true, ""},
		{"EXECUTE q", true, ""}, // either may run
		{"CREATE TABLE t3 AS EXECUTE q", true, "only reads"},
		{"EXPLAIN SELECT * FROM orders", true, ""},
		{"SET search_path = evil, pg_catalog", false, ""},
	} {
		stmts, err := p.Parse(x.sql)
		if err != nil {
			t.Fatalf("%s: %v", x.sql, err)
		}
		st := &stmts[0]
		if got := c.Touches(st, lookup); got != x.touches {
			t.Errorf("%s: Touches %v, want %v", x.sql, got, x.touches)
		}
		r := c.Refusal(st, lookup)
		if (r == "") != (x.refused == "") || !strings.Contains(r, x.refused) {
			t.Errorf("%s: Refusal %q, want %q", x.sql, r, x.refused)
		}
		if st.Prepared != nil {
			prepared[st.Prepare] = append(prepared[st.Prepare], st.Prepared)
		}
	}
}

func TestCatalogRefusesBadRows(t *testing.T) {
	sp := &policy.Statements{Columns: []policy.ColumnMask{{Pattern: "a.b", Action: policy.ColumnMaskValue}}}
	for _, rows := range [][][]string{
		{{"r", "x", "public", "a", "r", ""}},
		{{"r", "1", "public", "a", "rr", ""}},
		{{"a", "1", "public", "a", "0", "b"}},
		{{"a", "1", "public", "a", "99999", "b"}},
		{{"z", "", "", "", "", ""}},
		{{"r", "1"}},
	} {
		if _, err := NewCatalog(sp, rows); err == nil {
			t.Errorf("%v: accepted", rows)
		}
	}
	if _, err := CatalogQuery(&policy.Statements{Columns: []policy.ColumnMask{{Pattern: "a\x00b.c", Action: "mask"}}}); err == nil {
		t.Error("a NUL in a table name")
	}
	q, err := CatalogQuery(&policy.Statements{Columns: []policy.ColumnMask{{Pattern: `o'r\d.c`, Action: "mask"}, {Pattern: "s.x.*", Action: "deny"}}})
	if err != nil || !strings.Contains(q, `E'o''r\\d'`) || !strings.Contains(q, "E'x'") {
		t.Errorf("quoting: %v\n%s", err, q)
	}
}
