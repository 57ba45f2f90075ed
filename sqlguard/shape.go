package sqlguard

import "strings"

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
// backslash anywhere, a dollar quote, a block comment, a prefixed string
// (E'…', U&'…', B'…', X'…', N'…'), a number run into a letter, a dot or an
// underscore, an unterminated quote — and then the text is cached by
// itself only, exactly as before. What it does cut, it cuts as the
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

// shapeOf returns text's shape key and how many literals it replaced;
// ok is false when it cannot cut text safely.
func shapeOf(text string) (key string, literals int, ok bool) {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < ' ' && c != '\t' && c != '\n' && c != '\r' || c == '\\' {
			// Never a marker's byte, inside quotes or not; and no
			// backslash, which a server with standard_conforming_strings
			// off reads as an escape.
			return "", 0, false
		}
	}
	out := make([]byte, 0, len(text)+1)
	out = append(out, shapePrefix...)
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'':
			if i > 0 && isIdentByte(text[i-1]) {
				return "", 0, false // E'…', U&'…' (after &: below), N'…', B'…', X'…'
			}
			j := i + 1
			for {
				k := indexByteFrom(text, '\'', j)
				if k < 0 {
					return "", 0, false
				}
				if k+1 < len(text) && text[k+1] == '\'' {
					j = k + 2
					continue
				}
				i = k + 1
				break
			}
			out = append(out, markString)
			literals++
		case c == '&' && i+1 < len(text) && text[i+1] == '\'':
			return "", 0, false // U&'…'
		case c == '"':
			j := i + 1
			for {
				k := indexByteFrom(text, '"', j)
				if k < 0 {
					return "", 0, false
				}
				if k+1 < len(text) && text[k+1] == '"' {
					j = k + 2
					continue
				}
				out = append(out, text[i:k+1]...)
				i = k + 1
				break
			}
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			k := indexByteFrom(text, '\n', i)
			if k < 0 {
				k = len(text)
			}
			out = append(out, text[i:k]...)
			i = k
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			return "", 0, false
		case c == '$':
			j := i + 1
			for j < len(text) && isDigit(text[j]) {
				j++
			}
			if j == i+1 || j < len(text) && isIdentByte(text[j]) {
				return "", 0, false // a dollar quote, or $1x
			}
			out = append(out, text[i:j]...)
			i = j
		case isDigit(c) || c == '.' && i+1 < len(text) && isDigit(text[i+1]):
			if i > 0 && (isIdentByte(text[i-1]) || text[i-1] == '.') {
				return "", 0, false // t.5, x.1: not cut here
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
					return "", 0, false
				}
				for j < len(text) && isDigit(text[j]) {
					j++
				}
			}
			if j < len(text) && (isIdentByte(text[j]) || text[j] == '.') {
				return "", 0, false // 0x1F, 1_000, 1abc, 1.2.3
			}
			out = append(out, mark)
			literals++
			i = j
		case isIdentByte(c):
			j := i + 1
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			out = append(out, text[i:j]...)
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return string(out), literals, true
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
