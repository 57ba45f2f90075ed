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
// and -- or # line comments. The server runs what is inside an executable
// comment (/*!40101 …*/, MariaDB's /*M!…*/), so for those only the opener
// and its version are skipped and the content is read as the statement.
func skipSpaceAndComments(s string) (string, bool) {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(s, "/*!"), strings.HasPrefix(s, "/*M!"):
			s = s[strings.IndexByte(s, '!')+1:]
			s = strings.TrimLeft(s, "0123456789")
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return "", true
			}
			s = s[2+i+2:]
		case strings.HasPrefix(s, "#"), strings.HasPrefix(s, "-- "), strings.HasPrefix(s, "--\t"), s == "--", strings.HasPrefix(s, "--\n"):
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
	s, plain := skipSpaceAndComments(text)
	if !plain {
		return "", true
	}
	w, rest := word(s)
	if !strings.EqualFold(w, "use") || (rest != "" && !strings.ContainsAny(rest[:1], " \t\r\n\f\v`/#-")) {
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
		for i < len(rest) && !strings.ContainsAny(rest[i:i+1], " \t\r\n\f\v;/#-") {
			i++
		}
		name, rest = rest[:i], rest[i:]
	}
	rest, plain = skipSpaceAndComments(rest)
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
	s, plain := skipSpaceAndComments(text)
	if !plain {
		return "", 0, true, false
	}
	w, rest := word(s)
	if !strings.EqualFold(w, "kill") || (rest != "" && !strings.ContainsAny(rest[:1], " \t\r\n/#-")) {
		return "", 0, false, false
	}
	rest = strings.TrimLeft(rest, " \t\r\n")
	kind = "CONNECTION "
	if w2, r2 := word(rest); strings.EqualFold(w2, "query") || strings.EqualFold(w2, "connection") {
		kind = strings.ToUpper(w2) + " "
		rest = strings.TrimLeft(r2, " \t\r\n")
	}
	rest = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(rest, " \t\r\n"), ";"), " \t\r\n")
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return "", 0, true, false
	}
	return kind, uint32(n), true, true
}
