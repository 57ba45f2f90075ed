package pgproxy

import "strings"

// plainDeallocate recognises, without a parser, a query string that is
// one SQL DEALLOCATE or DISCARD ALL and nothing else — what Rails sends
// to drop the statements it prepared through the protocol — and returns
// the statement name it drops (as the server folds it, keyed like the
// records: serverName) or all. Anything else, comments, multi-statement
// strings and strings over maxPlainDeallocate bytes included, is not
// recognised (ok false). A session without guardrails uses it to forget
// the records of statements dropped that way (forgetStmt keeps those that
// may start a copy). It runs on every query string of such a session, so
// one that cannot start with either command costs a byte test.
func plainDeallocate(q []byte) (name string, all, ok bool) {
	i := 0
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\r' || q[i] == '\n' || q[i] == '\f') {
		i++
	}
	if len(q) > maxPlainDeallocate || i == len(q) || q[i]|0x20 != 'd' {
		return "", false, false
	}
	s := string(q[i:])
	kw := func(word string) bool {
		s = strings.TrimLeft(s, " \t\r\n\f")
		if len(s) < len(word) || !strings.EqualFold(s[:len(word)], word) {
			return false
		}
		if len(s) > len(word) && identChar(s[len(word)]) {
			return false
		}
		s = s[len(word):]
		return true
	}
	end := func() bool {
		s = strings.TrimLeft(s, " \t\r\n\f")
		s = strings.TrimPrefix(s, ";")
		return strings.TrimLeft(s, " \t\r\n\f") == ""
	}
	if kw("discard") {
		return "", true, kw("all") && end()
	}
	if !kw("deallocate") {
		return "", false, false
	}
	kw("prepare")
	if kw("all") {
		return "", true, end()
	}
	s = strings.TrimLeft(s, " \t\r\n\f")
	switch {
	case strings.HasPrefix(s, `"`):
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			s = s[i+1:]
			if b.Len() == 0 || !end() {
				return "", false, false
			}
			name = b.String()
			return name[:min(len(name), maxNameBytes)], false, true
		}
		return "", false, false
	case len(s) > 0 && (s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z'):
		i := 1
		for i < len(s) && identChar(s[i]) {
			i++
		}
		// An unquoted name is folded to lower case (ASCII only: a name
		// with other bytes is left alone).
		name = strings.ToLower(s[:min(i, maxNameBytes)])
		s = s[i:]
		return name, false, end()
	}
	return "", false, false
}

// maxPlainDeallocate bounds the query strings plainDeallocate reads: the
// longest name the server keeps is 63 bytes (126 quoted with every
// character doubled), so a longer string is one with a great deal of
// whitespace, and leaving its record is the safe side.
const maxPlainDeallocate = 512

func identChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
