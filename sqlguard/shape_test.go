package sqlguard

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	pgquery "github.com/wasilibs/go-pgquery"
)

// variant is text with every literal shapeOf replaced by another of its
// kind, or "" when shapeOf gives up.
func variant(text string) string {
	key, n, ok := shapeOf(text)
	if !ok || n == 0 {
		return ""
	}
	r := strings.NewReplacer(string(markString), "'other ''value'''", string(markInt), "987654", string(markDecimal), "0.5e3")
	return r.Replace(strings.TrimPrefix(key, shapePrefix))
}

func TestShapeOf(t *testing.T) {
	same := [][2]string{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;", "SELECT abalance FROM pgbench_accounts WHERE aid = 7;"},
		{"UPDATE t SET name = 'it''s' WHERE id = 1", "UPDATE t SET name = 'x' WHERE id = 99999"},
		{"SELECT 1.5, 2e10, .5 -- note 'x' 3\n", "SELECT 7.25, 3E-2, 0.75 -- note 'x' 3\n"},
		{`SELECT "col 1" FROM "t""x" WHERE a = 'q'`, `SELECT "col 1" FROM "t""x" WHERE a = ''`},
		{"SELECT x1, t2.c3 FROM t2 WHERE c3 > $1 AND c4 = 5", "SELECT x1, t2.c3 FROM t2 WHERE c3 > $1 AND c4 = 6"},
	}
	for _, c := range same {
		a, _, okA := shapeOf(c[0])
		b, _, okB := shapeOf(c[1])
		if !okA || !okB || a != b {
			t.Errorf("%q and %q: shapes %q (%v), %q (%v); want one", c[0], c[1], a, okA, b, okB)
		}
	}
	differ := [][2]string{
		{"DELETE FROM t WHERE a = 1", "DELETE FROM t WHERE 1 = 1"},
		{"SELECT 1", "SELECT '1'"},
		{"SELECT 1", "SELECT 1.0"},
		{"SELECT x1", "SELECT x2"},
		{"SELECT $1", "SELECT $2"},
		{`SELECT "a"`, `SELECT "b"`},
	}
	for _, c := range differ {
		a, _, _ := shapeOf(c[0])
		b, _, _ := shapeOf(c[1])
		if a == b {
			t.Errorf("%q and %q share the shape %q", c[0], c[1], a)
		}
	}
	for _, text := range []string{
		`SELECT E'a\'b'`, `SELECT 'a\'`, "SELECT $$x$$", "SELECT $q$x$q$", "SELECT /* 'x' */ 1", "SELECT U&'d\\0061t'",
		"SELECT B'101'", "SELECT X'1F'", "SELECT N'x'", "SELECT 0x1F", "SELECT 1_000", "SELECT 1abc", "SELECT 1.2.3",
		"SELECT 'unterminated", `SELECT "unterminated`, "SELECT t.5", "SELECT 1e", "SELECT $1x", "SELECT '\x01'",
		"SELECT --\r'x'\n", `SELECT U&"x"`, `SELECT * FROM t UESCAPE '!'`, "SELECT 'a'\r",
	} {
		if _, _, ok := shapeOf(text); ok {
			t.Errorf("shapeOf(%q) cut it; want it left whole", text)
		}
	}
}

// A text answered from the cache by its shape is classified as its own
// parse would classify it, carries its own text, and is not parsed again;
// a statement whose decision reads a constant (EXPLAIN's ANALYZE 0 or 1)
// or that prepares one is never answered for another.
func TestParseByShape(t *testing.T) {
	p := NewParser(0)
	first, err := p.Parse("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
	if err != nil {
		t.Fatal(err)
	}
	n := p.misses.Load()
	second, err := p.Parse("SELECT abalance FROM pgbench_accounts WHERE aid = 2")
	if err != nil || p.misses.Load() != n {
		t.Fatalf("the same shape was parsed again (%v)", err)
	}
	if second[0].Text != "SELECT abalance FROM pgbench_accounts WHERE aid = 2" || first[0].Text == second[0].Text {
		t.Fatalf("texts %q, %q", first[0].Text, second[0].Text)
	}
	for _, c := range [][2]string{
		{"EXPLAIN (ANALYZE 0) DELETE FROM orders", "EXPLAIN (ANALYZE 1) DELETE FROM orders"},
		{"PREPARE p1 AS DELETE FROM orders WHERE id = 1", "PREPARE p1 AS DELETE FROM orders WHERE id = 2"},
		{"SELECT 1; SELECT 2", "SELECT 3; DELETE FROM orders"},
	} {
		p.Parse(c[0])
		n := p.misses.Load()
		got, _ := p.Parse(c[1])
		if p.misses.Load() == n {
			t.Errorf("%q answered from the entry of %q", c[1], c[0])
		}
		own, _ := NewParser(0).Parse(c[1])
		if !sameDecision(got, own) {
			t.Errorf("%q: %+v, want %+v", c[1], got, own)
		}
	}
}

func sameDecision(a, b []Statement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Kind != y.Kind || x.Class != y.Class || x.Why != y.Why || !slices.Equal(x.Forms, y.Forms) ||
			!slices.Equal(x.Objects, y.Objects) || !slices.Equal(x.Functions, y.Functions) || x.Text != y.Text {
			return false
		}
	}
	return true
}

// Whatever the text, a variant of it with other literals gets, through
// the cache, exactly the classification its own parse gives.
func FuzzShape(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42", "DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE 1 = 1",
		"UPDATE t SET a = 'x' WHERE b = 2 OR true", "SELECT pg_read_file('/etc/passwd', 0, 100)", "COPY t TO '/tmp/x'",
		"COPY t FROM PROGRAM 'id'", "SET search_path = 'evil', public", "WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT 1",
		"EXPLAIN (ANALYZE 1) DELETE FROM t", "SELECT * FROM t LIMIT 10 OFFSET 5", "TRUNCATE t", "DROP TABLE x",
		"SELECT --\r'\n' AS a --'", `SELECT * FROM U&"!0073ecrets" UESCAPE '#'`, "SELECT 1 -- x\n, 'y'",
	} {
		f.Add(s)
	}
	p := NewParser(0)
	f.Fuzz(func(t *testing.T, text string) {
		v := variant(text)
		if v == "" || len(text) > 2000 {
			return
		}
		if k1, _, _ := shapeOf(text); func() bool { k2, _, ok := shapeOf(v); return !ok || k2 != k1 }() {
			return // the replacement ran into a neighbour ("0.''" → "0.5e3'…'"): not the same shape, never shared
		}
		p.Parse(text)
		got, gerr := p.Parse(v)
		own, oerr := NewParser(1).Parse(v)
		if (gerr == nil) != (oerr == nil) || !sameDecision(got, own) {
			t.Fatalf("%q after %q: %+v (%v), its own parse %+v (%v)", v, text, got, gerr, own, oerr)
		}
	})
}

// pgbench's statement ends with a semicolon, which the statement's own
// text leaves out: shared all the same, each with its own text.
func TestParseByShapeTrimmed(t *testing.T) {
	p := NewParser(0)
	p.Parse("  SELECT abalance FROM pgbench_accounts WHERE aid = 1; \n")
	n := p.misses.Load()
	got, err := p.Parse("  SELECT abalance FROM pgbench_accounts WHERE aid = 123456; \n")
	if err != nil || p.misses.Load() != n {
		t.Fatalf("parsed again (%v)", err)
	}
	own, _ := NewParser(0).Parse("  SELECT abalance FROM pgbench_accounts WHERE aid = 123456; \n")
	if !sameDecision(got, own) {
		t.Fatalf("%+v, own parse %+v", got, own)
	}
}

// BenchmarkParseShape is the cost of a statement whose text is new but
// whose shape is cached (pgbench -S: a new aid each time): the shape key
// and the lookup.
func BenchmarkParseShape(b *testing.B) {
	p := NewParser(0)
	p.Parse("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
	texts := make([]string, 1024)
	for i := range texts {
		texts[i] = "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(i*7919+3) + ";"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := p.Parse(texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
	}
	if p.misses.Load() != 1 {
		b.Fatalf("%d parses", p.misses.Load())
	}
}

// Pairs a review found sharing a shape while PostgreSQL read them apart:
// a carriage return ends a -- comment for the server (so the cut hid a
// DROP inside a "literal"), and a UESCAPE literal decodes a U& name. Each
// second text must be classified as its own parse classifies it.
func TestShapeAttacks(t *testing.T) {
	for _, c := range [][2]string{
		{"SELECT --\r'\n' AS a --'", "SELECT --\r'\n' AS a; DROP TABLE users --'"},
		{"SELECT --\r'\n' AS a FROM public_t --'", "SELECT --\r'\n' AS a FROM secrets --'"},
		{`SELECT * FROM U&"!0073ecrets" UESCAPE '#'`, `SELECT * FROM U&"!0073ecrets" UESCAPE '!'`},
		{`SELECT U&"pg_read_fil!0065" UESCAPE '#' ('/etc/passwd')`, `SELECT U&"pg_read_fil!0065" UESCAPE '!' ('/etc/passwd')`},
	} {
		p := NewParser(0)
		p.Parse(c[0])
		got, gerr := p.Parse(c[1])
		own, oerr := NewParser(0).Parse(c[1])
		if (gerr == nil) != (oerr == nil) || !sameDecision(got, own) {
			t.Errorf("%q after %q: %+v, its own parse %+v", c[1], c[0], got, own)
		}
	}
}

// The scanner check agrees with shapeSpans's cuts and refuses any other:
// a span moved by a byte, one missing, one too many.
func TestCutAsScanned(t *testing.T) {
	p := NewParser(0)
	text := "SELECT a FROM t WHERE b = 'x''y' AND c = 1.5 AND d = 7"
	_, spans, ok := shapeSpans(text)
	if !ok || len(spans) != 3 || !p.scannedAs(text, spans) {
		t.Fatalf("shapeSpans(%q) = %v, %v; the scanner disagrees", text, spans, ok)
	}
	moved := append([]span(nil), spans...)
	moved[1].end++
	for _, bad := range [][]span{moved, spans[:2], append(append([]span(nil), spans...), span{0, 6})} {
		if p.scannedAs(text, bad) {
			t.Errorf("scannedAs accepted %v", bad)
		}
	}
}

// Every text shapeSpans cuts, PostgreSQL's scanner cuts the same way (the
// run-time check, cutAsScanned, refuses to share any that it does not;
// this looks for where the two part).
func FuzzShapeCut(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT 'a''b', 1.5e3 FROM t -- c\n WHERE x = $1", `SELECT "a""b" FROM t WHERE c = 'd'`,
		"SELECT --\r'\n' AS a --'", "SELECT 1.", "SELECT .5", "SELECT 1e-5", "SELECT a-1"} {
		f.Add(s)
	}
	p := NewParser(1)
	f.Fuzz(func(t *testing.T, text string) {
		_, spans, ok := shapeSpans(text)
		if !ok || len(text) > 2000 {
			return
		}
		if _, err := pgquery.Scan(text); err != nil {
			return
		}
		if !p.scannedAs(text, spans) {
			t.Fatalf("shapeSpans cut %q at %v; PostgreSQL's scanner does not", text, spans)
		}
	})
}

// A text whose literal the grammar would refuse by its value (an integer
// past 32 bits in a type modifier, a string that is not UTF-8) or that
// names float(N) is parsed by itself, not answered by its shape.
func TestShapeValueChecks(t *testing.T) {
	for _, c := range [][2]string{
		{"SELECT '1'::char(10) FROM t", "SELECT '1'::char(10000000000) FROM t"},
		{"SELECT 'abc' FROM t", "SELECT 'caf\xe9' FROM t"},
		{"SELECT 1::float(10) FROM t", "SELECT 1::float(99) FROM t"},
	} {
		p := NewParser(0)
		p.Parse(c[0])
		n := p.misses.Load()
		got, gerr := p.Parse(c[1])
		own, oerr := NewParser(0).Parse(c[1])
		if p.misses.Load() == n || (gerr == nil) != (oerr == nil) || !sameDecision(got, own) {
			t.Errorf("%q after %q: answered from the cache (%v, %+v); its own parse %v", c[1], c[0], gerr, got, oerr)
		}
	}
}
