package pgproxy

import (
	"strconv"
	"unicode/utf8"
)

// Per-statement audit details are encoded by hand: json.Marshal's
// reflection was the largest non-syscall cost of the statement path. The
// output is byte for byte what json.Marshal produces for the same value
// (TestQueryDetailsJSON and FuzzQueryDetailsJSON compare them).

// queryJSON is the input of appendQueryDetails: the details of a db.query
// event, with the statement text as bytes or string, so that a simple
// Query's text is encoded straight from the read buffer without a copy.
type queryJSON[S string | []byte] struct {
	kind        string
	stmt        int64
	parseStmt   int64
	name        S
	portal      S
	functionOID uint32
	text        S
	truncated   bool
	textBytes   int
	sha256      string
	params      []*string
}

// appendQueryDetails appends the JSON object of a db.query event's
// details, as json.Marshal would encode the equivalent struct (see
// queryDetails in details_test.go).
func appendQueryDetails[S string | []byte](b []byte, d *queryJSON[S]) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, d.kind)
	b = append(b, `,"stmt":`...)
	b = strconv.AppendInt(b, d.stmt, 10)
	if d.parseStmt != 0 {
		b = append(b, `,"parse_stmt":`...)
		b = strconv.AppendInt(b, d.parseStmt, 10)
	}
	if len(d.name) > 0 {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, d.name)
	}
	if len(d.portal) > 0 {
		b = append(b, `,"portal":`...)
		b = appendJSONString(b, d.portal)
	}
	if d.functionOID != 0 {
		b = append(b, `,"function_oid":`...)
		b = strconv.AppendUint(b, uint64(d.functionOID), 10)
	}
	if len(d.text) > 0 {
		b = append(b, `,"text":`...)
		b = appendJSONString(b, d.text)
	}
	if d.truncated {
		b = append(b, `,"truncated":true`...)
	}
	if d.textBytes != 0 {
		b = append(b, `,"text_bytes":`...)
		b = strconv.AppendInt(b, int64(d.textBytes), 10)
	}
	if d.sha256 != "" {
		b = append(b, `,"statement_sha256":`...)
		b = appendJSONString(b, d.sha256)
	}
	if len(d.params) > 0 {
		b = append(b, `,"params":[`...)
		for i, p := range d.params {
			if i > 0 {
				b = append(b, ',')
			}
			if p == nil {
				b = append(b, "null"...)
			} else {
				b = appendJSONString(b, *p)
			}
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// detailsSize estimates the encoded size of d, for one allocation.
func detailsSize[S string | []byte](d *queryJSON[S]) int {
	n := 96 + len(d.name) + len(d.portal) + len(d.text) + len(d.sha256)
	n += len(d.text) / 8 // some escaping
	for _, p := range d.params {
		n += 3
		if p != nil {
			n += len(*p) + len(*p)/8
		}
	}
	return n
}

const hexDigits = "0123456789abcdef"

// jsonSafe[c] reports whether the ASCII byte c is written as is inside a
// JSON string by json.Marshal (which also escapes <, > and & for HTML).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string exactly as json.Marshal
// encodes it: HTML-sensitive characters, U+2028 and U+2029 escaped, and
// each byte of invalid UTF-8 replaced by U+FFFD.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes, not escaping: converted on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
