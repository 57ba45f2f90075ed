package pgprovision

import (
	"strings"
	"testing"
)

func TestRoleName(t *testing.T) {
	for _, tc := range []struct{ user, grant, want string }{
		{"alice", "gr_7kq2", "airlock_alice_gr_7kq2"},
		{"Alice.Smith@corp", "gr_abc", "airlock_alice_smith_corp_gr_abc"},
	} {
		if got := RoleName(tc.user, tc.grant); got != tc.want {
			t.Errorf("RoleName(%q, %q) = %q; want %q", tc.user, tc.grant, got, tc.want)
		}
	}
	if RoleName("alice", "gr_a") == RoleName("alice", "gr_b") {
		t.Error("two grants of one user share a role name")
	}
	if RoleName("alice", "GR_A") == RoleName("alice", "gr_a") {
		t.Error("grant IDs that differ in case share a role name")
	}
}

func FuzzRoleName(f *testing.F) {
	for _, s := range []string{"alice", `x"; DROP ROLE postgres; --`, "zoë_日本", strings.Repeat("a", 200), "", "\x00"} {
		f.Add(s, "gr_abcdefghijklmnop")
	}
	f.Fuzz(func(t *testing.T, user, grant string) {
		n := RoleName(user, grant)
		if len(n) > maxName || !strings.HasPrefix(n, Prefix) {
			t.Fatalf("RoleName = %q", n)
		}
		for i := 0; i < len(n); i++ {
			c := n[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("RoleName = %q: byte %q", n, c)
			}
		}
		if RoleName(user, grant) == RoleName(user, grant+"x") {
			t.Fatalf("distinct grants %q, %qx share a name", grant, grant)
		}
	})
}
