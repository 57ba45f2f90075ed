package airlock

import "testing"

func TestEndReasons(t *testing.T) {
	seen := map[string]EndReason{}
	for _, r := range EndReasons {
		if !r.Valid() {
			t.Errorf("%q is listed but not Valid", r)
		}
		if r.Text() == string(r) {
			t.Errorf("%q has no text for people", r)
		}
		if prev, ok := seen[r.Text()]; ok {
			t.Errorf("%q and %q share the text %q", prev, r, r.Text())
		}
		seen[r.Text()] = r
	}
	for _, r := range []EndReason{"", "revoked", "grant revoked", "killed"} {
		if r.Valid() {
			t.Errorf("%q is Valid; the set is closed", r)
		}
	}
}
