package report

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

// TestAttackCSVSemicolonFormula: a spreadsheet in a locale whose list
// separator is ';' (Excel in most of Europe) splits a CSV's lines on ';'.
// encoding/csv quotes a field only for ',', '"', CR/LF or a leading space,
// so a ticket "T;=cmd|' /C calc'!A0;" (no quote, comma or leading space)
// is written bare, and that spreadsheet reads a cell "=cmd|' /C calc'!A0"
// (the classic DDE payload) and one "=1+1". Every field is now quoted,
// so such a reader keeps each field whole. No cell of the report, read
// either way, may start a formula.
func TestAttackCSVSemicolonFormula(t *testing.T) {
	a := &Access{Grants: []Grant{{ID: "gr_1", User: "mallory", Resource: "prod-db", Access: "read", State: "active",
		Reason: "refunds;=1+1;", Ticket: "T;=cmd|' /C calc'!A0;"}}}
	var buf bytes.Buffer
	if err := a.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	// Read the way such a spreadsheet does: a CSV reader with ';' as the
	// separator (quotes honoured), and the usual ',' one.
	for _, sep := range []rune{';', ','} {
		r := csv.NewReader(bytes.NewReader(buf.Bytes()))
		r.Comma, r.FieldsPerRecord, r.LazyQuotes = sep, -1, true
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("sep %q: %v", sep, err)
		}
		for _, rec := range recs {
			for _, c := range rec {
				if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
					t.Errorf("read with %q the report has a cell %q, which a spreadsheet evaluates", sep, c)
				}
			}
		}
	}
}
