package policy

import (
	"os"
	"strings"
	"testing"
)

// yamlBlocks returns the ```yaml code blocks of a Markdown file.
func yamlBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("unterminated yaml block in %s", path)
		}
		out = append(out, block)
	}
	return out
}

// TestDocsExamplesAreTrue keeps docs/policy.md honest: its full example is
// the same policy as docs/examples/policy/team.yaml, and its cases pass.
func TestDocsExamplesAreTrue(t *testing.T) {
	files, err := Load("../docs/examples/policy/team.yaml")
	if err != nil {
		t.Fatal(err)
	}
	team, _, err := Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	var sawPolicy, sawCases int
	for _, block := range yamlBlocks(t, "../docs/policy.md") {
		switch {
		case strings.HasPrefix(block, "version: 1"):
			p, _, err := Parse(map[string][]byte{"docs/policy.md": []byte(block)})
			if err != nil {
				t.Fatalf("policy example in docs/policy.md: %v", err)
			}
			if string(p.Marshal()) != string(team.Marshal()) {
				t.Errorf("docs/policy.md example differs from team.yaml: %v", Diff(team, p))
			}
			sawPolicy++
		case strings.HasPrefix(block, "cases:"):
			cases, err := ParseCases("docs/policy.md", []byte(block))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range RunCases(team, cases, nil, nil) {
				if !r.Pass {
					t.Errorf("docs case %q: %s", r.Case.Name, r.Message)
				}
			}
			sawCases++
		}
	}
	if sawPolicy != 1 || sawCases != 2 {
		t.Errorf("found %d policy and %d cases examples in docs/policy.md, want 1 and 2", sawPolicy, sawCases)
	}
}
