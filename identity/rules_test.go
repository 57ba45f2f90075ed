package identity

import (
	"testing"

	"github.com/airlockhq/airlock"
)

// The audit-read rule: admins and auditors read the log; nobody else,
// whatever their other groups.
func TestRequireAuditReader(t *testing.T) {
	s := &Service{}
	for _, c := range []struct {
		groups []string
		ok     bool
	}{
		{[]string{airlock.GroupAdmins}, true},
		{[]string{airlock.GroupAuditors}, true},
		{[]string{"dev", airlock.GroupAuditors}, true},
		{[]string{airlock.GroupPolicyReaders, "dev"}, false},
		{nil, false},
	} {
		err := s.RequireAuditReader(&Principal{User: &airlock.User{Name: "u", Groups: c.groups}})
		if c.ok != (err == nil) {
			t.Errorf("groups %v: err = %v, want allowed %v", c.groups, err, c.ok)
		}
		if err != nil && (!airlock.IsCode(err, airlock.EFORBIDDEN) || airlock.ErrorMessage(err) != "reading the audit log needs the admins or auditors group") {
			t.Errorf("groups %v: refusal %v", c.groups, err)
		}
	}
}
