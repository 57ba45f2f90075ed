package airlock_test

import (
	"testing"

	"github.com/airlockhq/airlock"
)

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"prod-db", "prod-db", 0},
		{"kitten", "sitting", 3}, {"max_duration", "max_duraton", 1}, {"approvers", "aprovers", 1},
		{"ab", "ba", 2},
	} {
		if got := airlock.Levenshtein(c.a, c.b); got != c.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
