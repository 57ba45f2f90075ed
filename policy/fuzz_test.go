package policy

import (
	"testing"
	"time"
)

// FuzzParse feeds arbitrary YAML to Parse: it must never panic, and a
// policy it accepts must survive Marshal/Parse and evaluate without panic.
// Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullPolicy))
	f.Add([]byte(evalPolicy))
	f.Add([]byte("version: 1" + minimalRule))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, diags, err := Parse(map[string][]byte{"f.yaml": data})
		if err == nil {
			for _, d := range diags {
				if d.Severity == SeverityError {
					t.Fatalf("error diagnostic without error: %s", d)
				}
			}
			out := p.Marshal()
			q, _, err := Parse(map[string][]byte{"m.yaml": out})
			if err != nil {
				t.Fatalf("canonical form of an accepted policy does not parse: %v\n%s", err, out)
			}
			if again := q.Marshal(); string(again) != string(out) {
				t.Fatalf("canonical form is not stable:\n%s\n---\n%s", out, again)
			}
			if d := Diff(p, q); len(d) != 0 {
				t.Fatalf("round trip differs: %v", d)
			}
			in := Input{Subject: Subject{Name: "alice", Groups: []string{"sre"}}, Resource: Resource{Name: "prod-db", Labels: map[string]string{"env": "prod"}},
				Access: "read", Duration: time.Hour, Now: time.Unix(1_800_000_000, 0)}
			p.Evaluate(in)
			in.BreakGlass = true
			p.Evaluate(in)
			p.Warnings(nil)
			Diff(p, p)
		}
	})
}

// FuzzParseCases feeds arbitrary YAML to ParseCases and runs what parses.
func FuzzParseCases(f *testing.F) {
	f.Add([]byte("cases:\n  - {name: x, who: {user: a, groups: [g]}, resource: db, access: read, duration: 1h, expect: deny, at: '2026-11-30T10:00:00Z'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := ParseCases("c.yaml", data)
		if err != nil {
			return
		}
		p := mustParse(t, evalPolicy)
		RunCases(p, cases, []Resource{prodDB}, nil)
	})
}
