package pgproxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// queryDetails is the reference definition of a db.query event's details:
// appendQueryDetails must produce exactly what json.Marshal makes of it.
type queryDetails struct {
	Kind        string `json:"kind"`
	Stmt        int64  `json:"stmt"`
	ParseStmt   int64  `json:"parse_stmt,omitempty"`
	Name        string `json:"name,omitempty"`
	Portal      string `json:"portal,omitempty"`
	FunctionOID uint32 `json:"function_oid,omitempty"`
	stmtText
	Params []*string `json:"params,omitempty"`
}

func (d *queryDetails) fast() queryJSON[string] {
	return queryJSON[string]{
		kind: d.Kind, stmt: d.Stmt, parseStmt: d.ParseStmt, name: d.Name, portal: d.Portal,
		functionOID: d.FunctionOID, text: d.Text, truncated: d.Truncated, textBytes: d.TextBytes,
		sha256: d.SHA256, params: d.Params,
	}
}

// checkDetails compares appendQueryDetails, for both string and byte
// text, with json.Marshal, and checks the result is compact valid JSON.
func checkDetails(t *testing.T, d *queryDetails) {
	t.Helper()
	want, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	fs := d.fast()
	got := appendQueryDetails(nil, &fs)
	if !bytes.Equal(got, want) {
		t.Fatalf("string input:\n got %s\nwant %s", got, want)
	}
	fb := queryJSON[[]byte]{
		kind: fs.kind, stmt: fs.stmt, parseStmt: fs.parseStmt, name: []byte(fs.name), portal: []byte(fs.portal),
		functionOID: fs.functionOID, text: []byte(fs.text), truncated: fs.truncated, textBytes: fs.textBytes,
		sha256: fs.sha256, params: fs.params,
	}
	// Appending to a non-empty prefix must leave the prefix alone.
	got = appendQueryDetails([]byte("xx"), &fb)
	if !bytes.Equal(got[2:], want) || string(got[:2]) != "xx" {
		t.Fatalf("byte input:\n got %s\nwant xx%s", got, want)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, got[2:]); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("not compact JSON: %v", err)
	}
}

func strp(s string) *string { return &s }

func TestQueryDetailsJSON(t *testing.T) {
	all := make([]byte, 0, 256)
	for c := range 256 {
		all = append(all, byte(c))
	}
	long := strings.Repeat("é", MaxStatementText) // cut inside a rune
	text, truncated, n, sum := cutText([]byte(long))
	cases := []*queryDetails{
		{Kind: "query", Stmt: 1, stmtText: stmtText{Text: "SELECT 1"}},
		{Kind: "query", Stmt: 2},
		{Kind: "query", Stmt: 3, stmtText: stmtText{Text: `a"b\c` + "\n\r\t\b\f\x00\x01\x1f\x7f <tag>&amp;"}},
		{Kind: "query", Stmt: 4, stmtText: stmtText{Text: string(all)}},
		{Kind: "query", Stmt: 5, stmtText: stmtText{Text: "ok é 日本 🙂 \u2028 \u2029 \ufffd bad:\xff\xfe \xe2\x82 \xed\xa0\x80 end"}},
		{Kind: "query", Stmt: 6, stmtText: stmtText{Text: string(text), Truncated: truncated, TextBytes: n, SHA256: sum}},
		{Kind: "parse", Stmt: 7, Name: "s\"1", stmtText: stmtText{Text: "SELECT $1"}},
		{Kind: "execute", Stmt: 8, ParseStmt: 7, Name: "s1", Portal: "p<1>", stmtText: stmtText{Text: "SELECT $1"},
			Params: []*string{strp("x"), nil, strp(""), strp("\xff\"<")}},
		{Kind: "execute", Stmt: 9, Params: []*string{}},
		{Kind: "function_call", Stmt: 1 << 62, FunctionOID: 4294967295},
		{Kind: "execute", Stmt: -1, ParseStmt: -2},
	}
	for _, d := range cases {
		checkDetails(t, d)
	}
	if !truncated || n != len(long) || len(text) > MaxStatementText || !utf8.Valid(text) {
		t.Fatalf("cutText: truncated=%v n=%d len=%d valid=%v", truncated, n, len(text), utf8.Valid(text))
	}
	if st := newStmtText([]byte(long)); st.Text != string(text) || st.SHA256 != sum || st.TextBytes != n || !st.Truncated {
		t.Fatalf("newStmtText disagrees with cutText: %+v", st)
	}
	if st := newStmtText([]byte("SELECT 1")); st != (stmtText{Text: "SELECT 1"}) {
		t.Fatalf("newStmtText short: %+v", st)
	}
}

// FuzzQueryDetailsJSON compares the hand-written encoder with json.Marshal
// on arbitrary (also invalid UTF-8) statement text, names and parameters.
func FuzzQueryDetailsJSON(f *testing.F) {
	f.Add("SELECT 1", "", "", "", int64(1), uint32(0))
	f.Add("a\"b\\c\n<>&\u2028\xff", "s1", "p1", "v", int64(-5), uint32(7))
	f.Add("\xed\xa0\x80\xf4\x90\x80\x80", "\x00", "\x1f", "\xc3", int64(0), uint32(1))
	f.Fuzz(func(t *testing.T, text, name, portal, param string, stmt int64, oid uint32) {
		d := &queryDetails{Kind: "execute", Stmt: stmt, ParseStmt: stmt / 2, Name: name, Portal: portal,
			FunctionOID: oid, stmtText: newStmtText([]byte(text)), Params: []*string{&param, nil}}
		checkDetails(t, d)
	})
}

func BenchmarkQueryDetails(b *testing.B) {
	text := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 4242;")
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := queryJSON[[]byte]{kind: "query", stmt: 42, text: text}
			_ = appendQueryDetails(make([]byte, 0, detailsSize(&d)), &d)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&queryDetails{Kind: "query", Stmt: 42, stmtText: newStmtText(text)})
		}
	})
}
