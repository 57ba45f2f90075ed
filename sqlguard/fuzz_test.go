package sqlguard

import (
	"testing"

	"github.com/airlockhq/airlock/policy"
)

// FuzzDecide feeds arbitrary query strings through the parser and the
// rules and checks the invariant the gateway relies on: with a policy
// that denies writes, a statement is allowed only when every statement
// of the string is a decided read or utility — anything the parser
// rejects, anything unknown and anything that writes is denied.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "DELETE FROM t", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"DO $$BEGIN END$$", "EXPLAIN ANALYZE DELETE FROM t", "SELECT 1; DROP TABLE t",
		"PREPARE p AS UPDATE t SET a = 1", "EXECUTE p", "COPY t FROM STDIN", "SELECT * FROM t FOR UPDATE",
		"select/*x*/1", "SELECT $q$;DELETE FROM t;$q$", "CALL p()", "\x00", "",
	} {
		f.Add(s)
	}
	sp := &policy.Statements{Rules: []policy.StatementRule{
		{Name: "writes", Class: []string{"write", "ddl", "dcl"}, Action: policy.StatementDeny},
	}}
	p := NewParser(64)
	f.Fuzz(func(t *testing.T, text string) {
		stmts, err := p.Parse(text)
		v := Decide(sp, stmts, err, nil)
		if v.Action != policy.StatementAllow {
			if v.Action != policy.StatementDeny {
				t.Fatalf("%q: action %q", text, v.Action)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: allowed although the parser refused it: %v", text, err)
		}
		for _, s := range stmts {
			c := s.Class
			if s.Prepared != nil {
				c = s.Prepared.Class
			}
			if (c != ClassRead && c != ClassUtility) || s.Execute != "" {
				t.Fatalf("%q: allowed with a %s statement %q", text, c, s.Text)
			}
		}
	})
}
