package pgproxy

import (
	"strings"
	"testing"
)

func TestPlainDeallocate(t *testing.T) {
	for _, c := range []struct {
		q       string
		name    string
		all, ok bool
	}{
		{"DEALLOCATE a5", "a5", false, true},
		{"deallocate prepare A5 ;", "a5", false, true},
		{`DEALLOCATE "A""5"`, `A"5`, false, true},
		{"DEALLOCATE ALL", "", true, true},
		{"DEALLOCATE PREPARE ALL;", "", true, true},
		{"  discard   all ; ", "", true, true},
		{"DEALLOCATE all_of_them", "all_of_them", false, true},
		{"DEALLOCATE a5; SELECT 1", "", false, false},
		{"DEALLOCATE /* c */ a5", "", false, false},
		{"DEALLOCATE", "", false, false},
		{`DEALLOCATE ""`, "", false, false},
		{`DEALLOCATE "a5`, "", false, false},
		{"DEALLOCATEa5", "", false, false},
		{"DISCARD PLANS", "", false, false},
		{"SELECT 1", "", false, false},
		{"DEALLOCATE 5a", "", false, false},
		{"DEALLOCATE " + strings.Repeat("x", 70), strings.Repeat("x", 63), false, true},
		{`DEALLOCATE "` + strings.Repeat("Y", 70) + `"`, strings.Repeat("Y", 63), false, true},
		{"DEALLOCATE a5" + strings.Repeat(" ", 600), "", false, false},
	} {
		name, all, ok := plainDeallocate([]byte(c.q))
		if ok != c.ok || ok && (name != c.name || all != c.all) {
			t.Errorf("plainDeallocate(%q) = %q, %v, %v; want %q, %v, %v", c.q, name, all, ok, c.name, c.all, c.ok)
		}
	}
}

// FuzzPlainDeallocate: any input is answered without a panic, and what
// is recognised starts with one of the two commands.
func FuzzPlainDeallocate(f *testing.F) {
	for _, s := range []string{"DEALLOCATE a5", `DEALLOCATE "x""y"`, "DISCARD ALL", "deallocate prepare all;", "DEALLOCATE \"", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		name, all, ok := plainDeallocate(q)
		if !ok {
			return
		}
		up := strings.ToUpper(strings.TrimLeft(string(q), " \t\r\n\f"))
		if !strings.HasPrefix(up, "DEALLOCATE") && !strings.HasPrefix(up, "DISCARD") {
			t.Fatalf("%q recognised as dropping %q (all %v)", q, name, all)
		}
		if !all && name == "" {
			t.Fatalf("%q recognised with no name", q)
		}
	})
}
