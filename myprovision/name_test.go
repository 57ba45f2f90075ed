package myprovision

import (
	"strings"
	"testing"
)

// Whatever the person and grant are, the user name is Airlock's, within
// MySQL's 32 characters, and needs no quoting; a quoted identifier is one
// identifier (every backtick inside doubled).
func FuzzUserName(f *testing.F) {
	f.Add("alice", "gra_1")
	f.Add("Ålice `x` 'y'", "gr\x00a")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, user, grant string) {
		n := UserName(user, grant)
		if checkUser(n) != nil || len(n) > MaxName {
			t.Fatalf("UserName(%q, %q) = %q", user, grant, n)
		}
		q := ident(user)
		inner := q[1 : len(q)-1]
		if !strings.HasPrefix(q, "`") || !strings.HasSuffix(q, "`") || strings.ReplaceAll(inner, "``", "") != strings.ReplaceAll(user, "`", "") {
			t.Fatalf("ident(%q) = %q", user, q)
		}
	})
}
