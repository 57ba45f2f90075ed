package policy

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"go.yaml.in/yaml/v3"
)

// pos is a position in a source file.
type pos struct {
	file      string
	line, col int
}

// decoder turns yaml.Node trees into typed values, collecting diagnostics
// with positions. It never stops at the first problem.
type decoder struct {
	file  string
	diags []Diagnostic
}

func (d *decoder) at(n *yaml.Node) pos {
	if n == nil {
		return pos{file: d.file}
	}
	return pos{file: d.file, line: n.Line, col: n.Column}
}

func (d *decoder) report(p pos, sev, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{File: p.file, Line: p.line, Col: p.col, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) {
	d.report(d.at(n), SeverityError, format, args...)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// document parses data into its single YAML document's root node, or nil
// for an empty document. Syntax errors, anchors/aliases and multiple
// documents are reported.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		line := 0
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		d.report(pos{file: d.file, line: line}, SeverityError, "invalid YAML: %s", msg)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.report(pos{file: d.file, line: extra.Line, col: extra.Column}, SeverityError, "only one YAML document per file is allowed")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if d.hasAnchors(root, 0) {
		return nil
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	return root
}

// hasAnchors reports (and diagnoses) anchors and aliases, which the
// schema does not support: they make reviews of policy diffs misleading.
func (d *decoder) hasAnchors(n *yaml.Node, depth int) bool {
	if depth > 100 {
		d.errf(n, "document nested too deeply")
		return true
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errf(n, "YAML anchors and aliases are not allowed in policy")
		return true
	}
	for _, c := range n.Content {
		if d.hasAnchors(c, depth+1) {
			return true
		}
	}
	return false
}

// field is one key/value pair of a mapping.
type field struct{ k, v *yaml.Node }

// inlineSecretKeys are keys that would put a secret into the policy.
var inlineSecretKeys = []string{"password", "secret", "token", "private_key", "api_key"}

// mapping checks that n is a mapping with only allowed keys (no
// duplicates) and returns its fields by key; nil when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, what string, allowed ...string) map[string]field {
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping", what)
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: keys must be plain strings", what)
			continue
		}
		key := k.Value
		if !slices.Contains(allowed, key) {
			if slices.Contains(inlineSecretKeys, key) {
				d.errf(k, "inline secrets are not allowed; use %s_env or %s_file", key, key)
				continue
			}
			msg := fmt.Sprintf("unknown key %q in %s", key, what)
			if s := suggest(key, allowed); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.errf(k, "%s", msg)
			continue
		}
		if _, dup := out[key]; dup {
			d.errf(k, "duplicate key %q in %s", key, what)
			continue
		}
		out[key] = field{k, v}
	}
	return out
}

// suggest returns the allowed key that key probably meant, or "".
func suggest(key string, allowed []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for _, a := range allowed {
		if norm(a) == norm(key) {
			return a
		}
	}
	for _, a := range allowed {
		if editDistance(a, key) <= 2 && len(key) > 3 {
			return a
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of short ASCII keys; keys
// longer than 64 bytes count as far from everything (99).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	return airlock.Levenshtein(a, b)
}

func (d *decoder) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, what string) string {
	s, _ := d.scalar(n, what)
	if s == "" && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		d.errf(n, "%s must not be empty", what)
	}
	return s
}

func (d *decoder) boolean(n *yaml.Node, what string) bool {
	s, ok := d.scalar(n, what)
	if !ok {
		return false
	}
	if n.Tag != "!!bool" {
		d.errf(n, "%s must be true or false, not %q", what, s)
		return false
	}
	return s == "true" || s == "True" || s == "TRUE"
}

func (d *decoder) boolPtr(n *yaml.Node, what string) *bool {
	b := d.boolean(n, what)
	return &b
}

func (d *decoder) integer(n *yaml.Node, what string, min int) int {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(s)
	if n.Tag != "!!int" || err != nil {
		d.errf(n, "%s must be an integer, not %q", what, s)
		return 0
	}
	if i < min {
		d.errf(n, "%s must be at least %d, not %d", what, min, i)
		return min
	}
	if i > 1_000_000 {
		d.errf(n, "%s is too large", what)
		return min
	}
	return i
}

// duration parses a positive duration such as "90s", "1h30m" or "7d".
func (d *decoder) duration(n *yaml.Node, what string) time.Duration {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0
	}
	v, err := airlock.ParseDuration(s)
	if err != nil {
		d.errf(n, "%s: invalid duration %q (use e.g. 30m, 1h, 1h30m, 7d)", what, s)
		return 0
	}
	if v <= 0 {
		d.errf(n, "%s must be positive, not %q", what, s)
		return 0
	}
	return v
}

func (d *decoder) enum(n *yaml.Node, what string, options ...string) string {
	s, ok := d.scalar(n, what)
	if !ok {
		return ""
	}
	if !slices.Contains(options, s) {
		d.errf(n, "%s must be one of %s, not %q", what, strings.Join(options, ", "), s)
		return ""
	}
	return s
}

// strList accepts a sequence of non-empty scalars (or a single scalar).
func (d *decoder) strList(n *yaml.Node, what string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{d.str(n, what)}
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		s := d.str(c, what+" entry")
		if s == "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// strMap accepts a mapping of scalars to scalars.
func (d *decoder) strMap(n *yaml.Node, what string) map[string]string {
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping", what)
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, ok := d.scalar(k, what+" key")
		if !ok {
			continue
		}
		if slices.Contains(inlineSecretKeys, key) {
			d.errf(k, "inline secrets are not allowed; use %s_env or %s_file", key, key)
			continue
		}
		if _, dup := out[key]; dup {
			d.errf(k, "duplicate key %q in %s", key, what)
			continue
		}
		val, _ := d.scalar(v, what+" value")
		out[key] = val
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// validName reports whether s is 1-128 letters, digits, '.', '_', ':' or
// '-', starting with a letter or digit. (It was the regular expression
// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$, whose compilation at package init
// — the {0,127} unrolled — cost every airlock command about 0.3 ms of
// start-up; TestValidName pins that the two agree.)
func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (d *decoder) name(n *yaml.Node, what string) string {
	s := d.str(n, what)
	if s != "" && !validName(s) {
		d.errf(n, "%s %q must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", what, s)
	}
	return s
}
