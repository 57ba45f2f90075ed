package sqlguard

import (
	"strconv"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// A query string's shape is its text with every plain literal — a
// standard string constant or a decimal number — replaced by a marker of
// its kind. Statements whose texts differ only in such literals parse to
// the same tree but for the constants' values, and in SELECT, INSERT,
// UPDATE and DELETE nothing sqlguard decides on reads a constant's value
// (classes, forms, objects and functions come from the tree's structure
// and its identifiers; other statements are never shared: shareKinds). So the
// parse cache can answer "SELECT … WHERE aid = 42" from the entry of
// "SELECT … WHERE aid = 17" (Parser.Parse; shareable says which entries
// may be).
//
// shapeOf is deliberately narrower than PostgreSQL's scanner: it gives up
// (ok false) on anything whose tokens it might cut differently — a
// backslash or a carriage return anywhere, a dollar quote, a block
// comment, a prefixed string (E'…', U&'…', B'…', X'…', N'…'), a U& name or
// UESCAPE, a number run into a letter, a dot or an underscore, an
// unterminated quote — and then the text is cached by itself only,
// exactly as before. And before a text's parse answers for its shape,
// PostgreSQL's own scanner must find exactly the same literals in it
// (cutAsScanned): a review found two pairs of texts that shared a shape
// while the server read them apart (TestShapeAttacks). What it does cut, it cuts as the
// scanner does (standard_conforming_strings on, libpg_query's setting):
// '…' with '' inside, "…" identifiers kept whole, -- comments to the end
// of the line kept whole, $n parameters kept, identifiers (letters,
// digits, _, $ and non-ASCII bytes) kept whole so that no digit inside
// one is taken for a number.

// Shape markers: bytes that never occur in a query string the gateway
// passes on (a protocol string cannot hold NUL; these are below space and
// refused in the text by shapeOf).
const (
	shapePrefix = "\x00" // a shape key is never an exact text
	markString  = '\x01'
	markInt     = '\x02'
	markDecimal = '\x03'
)

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// span is a literal's byte range in a text, end exclusive.
type span struct{ start, end int }

// shapeOf returns text's shape key and how many literals it replaced;
// ok is false when it cannot cut text safely.
func shapeOf(text string) (key string, literals int, ok bool) {
	key, spans, ok := shapeSpans(text)
	return key, len(spans), ok
}

// shapeSpans is shapeOf with the literals' spans.
func shapeSpans(text string) (key string, spans []span, ok bool) {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < ' ' && c != '\t' && c != '\n' || c == '\\' {
			// Never a marker's byte, inside quotes or not; no backslash,
			// which a server with standard_conforming_strings off reads
			// as an escape; and no carriage return, which ends a --
			// comment for PostgreSQL (a text that hid code from this cut
			// behind one was found: TestShapeAttacks).
			return "", nil, false
		}
	}
	out := make([]byte, 0, len(text)+1)
	out = append(out, shapePrefix...)
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'':
			start := i
			if i > 0 && isIdentByte(text[i-1]) {
				return "", nil, false // E'…', U&'…' (after &: below), N'…', B'…', X'…'
			}
			end, ok := closeQuote(text, i)
			if !ok {
				return "", nil, false
			}
			i = end
			// 'a' followed, across a newline, by 'b' is one constant to
			// the scanner (SQL's string continuation): not cut here. (With
			// a -- comment between them the server still joins them and
			// libpg_query does not; that is a syntax error to the latter,
			// so never shared.)
			nl := false
			for k := i; k < len(text) && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n'); k++ {
				nl = nl || text[k] == '\n'
				if nl && k+1 < len(text) && text[k+1] == '\'' {
					return "", nil, false
				}
			}
			out = append(out, markString)
			spans = append(spans, span{start, i})
		case c == '&' && i > 0 && (text[i-1] == 'U' || text[i-1] == 'u'):
			return "", nil, false // U&'…', U&"…": escapes a UESCAPE literal can redefine
		case c == '"':
			end, ok := closeQuote(text, i)
			if !ok {
				return "", nil, false
			}
			out = append(out, text[i:end]...)
			i = end
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			k := indexByteFrom(text, '\n', i)
			if k < 0 {
				k = len(text)
			}
			out = append(out, text[i:k]...)
			i = k
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			return "", nil, false
		case c == '$':
			j := i + 1
			for j < len(text) && isDigit(text[j]) {
				j++
			}
			if j == i+1 || j < len(text) && isIdentByte(text[j]) {
				return "", nil, false // a dollar quote, or $1x
			}
			out = append(out, text[i:j]...)
			i = j
		case isDigit(c) || c == '.' && i+1 < len(text) && isDigit(text[i+1]):
			if i > 0 && (isIdentByte(text[i-1]) || text[i-1] == '.') {
				return "", nil, false // t.5, x.1: not cut here
			}
			j, mark := i, byte(markInt)
			for j < len(text) && isDigit(text[j]) {
				j++
			}
			if j < len(text) && text[j] == '.' {
				mark = markDecimal
				j++
				for j < len(text) && isDigit(text[j]) {
					j++
				}
			}
			if j < len(text) && (text[j] == 'e' || text[j] == 'E') {
				mark = markDecimal
				j++
				if j < len(text) && (text[j] == '+' || text[j] == '-') {
					j++
				}
				if j >= len(text) || !isDigit(text[j]) {
					return "", nil, false
				}
				for j < len(text) && isDigit(text[j]) {
					j++
				}
			}
			if j < len(text) && (isIdentByte(text[j]) || text[j] == '.') {
				return "", nil, false // 0x1F, 1_000, 1abc, 1.2.3
			}
			out = append(out, mark)
			spans = append(spans, span{i, j})
			i = j
		case isIdentByte(c):
			j := i + 1
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			if strings.EqualFold(text[i:j], "uescape") || strings.EqualFold(text[i:j], "float") {
				// UESCAPE's literal decodes a U& name; float(N) is the
				// one type whose modifier's value the grammar checks.
				return "", nil, false
			}
			out = append(out, text[i:j]...)
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return string(out), spans, true
}

// closeQuote returns the end (just past the closing quote) of the quoted
// token opening at text[i] ('…' or "…", the quote doubled inside); ok is
// false when it is not closed.
func closeQuote(text string, i int) (end int, ok bool) {
	q := text[i]
	for j := i + 1; ; {
		k := indexByteFrom(text, q, j)
		if k < 0 {
			return 0, false
		}
		if k+1 < len(text) && text[k+1] == q {
			j = k + 2
			continue
		}
		return k + 1, true
	}
}

func indexByteFrom(s string, c byte, from int) int {
	for i := from; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// shareable reports whether a parse of text may answer other texts of
// the same shape: one statement that is the whole text but for leading
// whitespace and trailing whitespace and semicolons (lead and trail bytes,
// which hold no literal, so they are the same in every text of the
// shape: the other text's statement is its own text cut as much), parsed
// without error, decided without reading a constant, and naming no
// prepared statement (whose text would be the first one's).
func shareable(text string, stmts []Statement, err error) (lead, trail int, ok bool) {
	if err != nil || len(stmts) != 1 {
		return 0, 0, false
	}
	s := &stmts[0]
	if !shareKinds[s.Kind] || s.Class == ClassUnknown || s.Why != "" || s.Prepare != "" || s.Prepared != nil || s.Execute != "" {
		return 0, 0, false
	}
	switch ws := len(text) - len(strings.TrimLeft(text, " \t\r\n")); {
	case strings.HasPrefix(text, s.Text):
		lead = 0
	case strings.HasPrefix(text[ws:], s.Text):
		lead = ws
	default:
		return 0, 0, false
	}
	end := lead + len(s.Text)
	if strings.Trim(text[end:], " \t\r\n;") != "" {
		return 0, 0, false
	}
	return lead, len(text) - end, true
}

// shareKinds are the statements a shape may answer for: the DML, where a
// literal is a constant in an expression (A_Const) and nothing reads its
// value. Elsewhere a string literal can become a field that is read —
// COPY's file name (empty or not: FuzzShape found it), EXPLAIN's options,
// a DO or function body — so those are cached by exact text only.
var shareKinds = map[string]bool{"SelectStmt": true, "InsertStmt": true, "UpdateStmt": true, "DeleteStmt": true}

// cutAsScanned reports whether PostgreSQL's own scanner (tokens of
// text) finds exactly the literals spans names, as plain constants, and
// nothing whose meaning a literal could change: a second check, on the
// first text of a shape only, that shapeSpans cut it as the server will.
// Texts of the same shape differ only inside those literals, which the
// scanner reads the same whatever their content (no quote, backslash or
// carriage return inside), so it holds for them too.
func cutAsScanned(tokens []*pg.ScanToken, spans []span) bool {
	i := 0
	for _, t := range tokens {
		switch t.Token {
		case pg.Token_SCONST, pg.Token_ICONST, pg.Token_FCONST:
			if i >= len(spans) || int(t.Start) != spans[i].start || int(t.End) != spans[i].end {
				return false
			}
			i++
		case pg.Token_UIDENT, pg.Token_USCONST, pg.Token_BCONST, pg.Token_XCONST, pg.Token_UESCAPE:
			return false
		}
	}
	return i == len(spans)
}

// plainLiterals reports whether text's literals (spans) are ones the
// grammar takes whatever their value: integers that fit in 32 bits (a
// longer one is a numeric, which a type modifier like char(N) refuses)
// and strings of valid UTF-8 (else the parse fails). A text with others
// is parsed by itself, so that its verdict is its own even where the
// server would refuse it anyway.
func plainLiterals(text string, spans []span) bool {
	for _, sp := range spans {
		lit := text[sp.start:sp.end]
		switch {
		case lit[0] == '\'':
			if !utf8.ValidString(lit) {
				return false
			}
		case !strings.ContainsAny(lit, ".eE"):
			if _, err := strconv.ParseInt(lit, 10, 32); err != nil {
				return false
			}
		}
	}
	return true
}
