package mysqlproxy

import (
	"strconv"
	"strings"
)

// The gateway reads two statement forms itself (without a SQL parser):
// USE, so a client cannot switch to a database the resource does not
// open, and KILL, so a client's KILL of a connection id it was told (the
// gateway's, not the server's) reaches the right upstream thread. Both
// are read after leading whitespace and comments, as the server reads
// them; anything else is the server's to parse (the gateway offers no
// multi-statements, so a statement is the whole text).

// skipSpaceAndComments returns s after leading whitespace, /* */ comments
// and -- or # line comments, by the server's rules: "--" starts a comment
// when a space or any control character follows it. The server runs what
// is inside an executable comment (/*!40101 …*/, MariaDB's /*M!…*/), so
// for those only the opener and its version are skipped and the content
// is read as the statement; the "*/" that closes one separates tokens as
// a space does, so a leading "*/" is skipped too ("/*!USE*/ other" is USE
// other to the server).
func skipSpaceAndComments(s string) (string, bool) {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(s, "/*!"), strings.HasPrefix(s, "/*M!"):
			s = s[strings.IndexByte(s, '!')+1:]
			s = strings.TrimLeft(s, "0123456789")
		case strings.HasPrefix(s, "*/"):
			s = s[2:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return "", true
			}
			s = s[2+i+2:]
		case strings.HasPrefix(s, "#"), s == "--", strings.HasPrefix(s, "--") && (s[2] <= ' ' || s[2] == 0x7f):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return "", true
			}
			s = s[i+1:]
		default:
			return s, true
		}
	}
}

// keyword reports whether s (after whitespace and comments) starts with
// the keyword kw as the server's lexer reads it: the next byte cannot
// continue an identifier. rest is what follows the keyword.
func keyword(s, kw string) (rest string, ok bool) {
	s, _ = skipSpaceAndComments(s)
	w, rest := word(s)
	if !strings.EqualFold(w, kw) || rest != "" && identByte(rest[0]) {
		return "", false
	}
	return rest, true
}

// identByte reports whether b can continue an unquoted identifier.
func identByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '$' || b >= 0x80
}

// dynamicSQL reports whether text runs SQL the gateway cannot read
// before the server does: PREPARE … FROM, EXECUTE IMMEDIATE, and
// MariaDB's compound statements outside stored programs (BEGIN NOT
// ATOMIC, IF, CASE, LOOP, REPEAT, WHILE, and a label before one). Inside
// them a KILL or USE would pass the readers below.
func dynamicSQL(text string) bool {
	if _, ok := keyword(text, "prepare"); ok {
		return true
	}
	if rest, ok := keyword(text, "execute"); ok {
		if _, ok := keyword(rest, "immediate"); ok {
			return true
		}
	}
	if rest, ok := keyword(text, "begin"); ok {
		if rest, ok := keyword(rest, "not"); ok {
			if _, ok := keyword(rest, "atomic"); ok {
				return true
			}
		}
	}
	for _, kw := range []string{"if", "case", "loop", "repeat", "while"} {
		if _, ok := keyword(text, kw); ok {
			return true
		}
	}
	// label: statement
	s, _ := skipSpaceAndComments(text)
	i := 0
	for i < len(s) && identByte(s[i]) {
		i++
	}
	if i > 0 {
		rest, _ := skipSpaceAndComments(s[i:])
		if strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, ":=") {
			return true
		}
	}
	return false
}

// word returns the leading keyword of s (letters) and the rest.
func word(s string) (string, string) {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	return s[:i], s[i:]
}

// useTarget reports the database a USE statement switches to. ok is true
// for any text whose first word is USE, even one the gateway cannot read
// (its database is then "" and matches no allowed name: refused).
func useTarget(text string) (db string, ok bool) {
	rest, ok := keyword(text, "use")
	if !ok {
		return "", false
	}
	rest, _ = skipSpaceAndComments(rest)
	var name string
	if strings.HasPrefix(rest, "`") {
		var b strings.Builder
		i := 1
		for ; i < len(rest); i++ {
			if rest[i] == '`' {
				if i+1 < len(rest) && rest[i+1] == '`' {
					b.WriteByte('`')
					i++
					continue
				}
				break
			}
			b.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return "", true
		}
		name, rest = b.String(), rest[i+1:]
	} else {
		i := 0
		for i < len(rest) && !strings.ContainsAny(rest[i:i+1], " \t\r\n\f\v;/#-*") {
			i++
		}
		name, rest = rest[:i], rest[i:]
	}
	rest, plain := skipSpaceAndComments(rest)
	rest = strings.TrimRight(strings.TrimPrefix(rest, ";"), " \t\r\n")
	if !plain || rest != "" || name == "" {
		return "", true // something the gateway does not read follows: refused
	}
	return name, true
}

// killTarget reads KILL [QUERY|CONNECTION] ID; kind is "QUERY " or
// "CONNECTION ". isKill is true for any text whose first word is KILL:
// one the gateway cannot read (ok false) is refused, never forwarded — the
// server would read its id as one of its own threads, which may be another
// Airlock user's on a shared brokered account.
func killTarget(text string) (kind string, id uint32, isKill, ok bool) {
	rest, ok := keyword(text, "kill")
	if !ok {
		return "", 0, false, false
	}
	rest, _ = skipSpaceAndComments(rest)
	kind = "CONNECTION "
	for _, k := range []string{"query", "connection"} {
		if r2, ok := keyword(rest, k); ok {
			kind = strings.ToUpper(k) + " "
			rest, _ = skipSpaceAndComments(r2)
			break
		}
	}
	rest = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(rest, " \t\r\n"), ";"), " \t\r\n")
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return "", 0, true, false
	}
	return kind, uint32(n), true, true
}
