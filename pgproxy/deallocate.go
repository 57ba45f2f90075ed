package pgproxy

import "strings"

// plainDeallocate recognises, without a parser, a query string that is
// one SQL DEALLOCATE or DISCARD ALL and nothing else — what Rails sends
// to drop the statements it prepared through the protocol — and returns
// the statement name it drops (the name as the server folds it) or all.
// Anything else, comments and multi-statement strings included, is not
// recognised (ok false). A session without guardrails uses it to forget
// the records of statements dropped that way; forgetting too many would
// only make a Bind of the name count as one that may start a copy.
func plainDeallocate(q []byte) (name string, all, ok bool) {
	s := string(q)
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
			return b.String(), false, true
		}
		return "", false, false
	case len(s) > 0 && (s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z'):
		i := 1
		for i < len(s) && identChar(s[i]) {
			i++
		}
		// An unquoted name is folded to lower case (ASCII only: a name
		// with other bytes is left alone).
		name = strings.ToLower(s[:i])
		s = s[i:]
		return name, false, end()
	}
	return "", false, false
}

func identChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
