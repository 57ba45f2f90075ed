package policy

import (
	"regexp"
	"strings"
	"testing"
)

// nameRE is the rule validName replaced; the test and the fuzz target
// below pin that the two agree.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func TestValidName(t *testing.T) {
	for _, s := range []string{"", "a", "A9", "prod-db", "team:ops.x_y-z", "-a", ".a", "_a", ":a", "a b", "a\n", "é",
		"a/b", strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat(".", 127), "0"} {
		if got, want := validName(s), nameRE.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, the regular expression says %v", s, got, want)
		}
	}
}

func FuzzValidName(f *testing.F) {
	f.Add("prod-db")
	f.Add("-x")
	f.Add(strings.Repeat("b", 128))
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validName(s), nameRE.MatchString(s); got != want {
			t.Fatalf("validName(%q) = %v, the regular expression says %v", s, got, want)
		}
	})
}
