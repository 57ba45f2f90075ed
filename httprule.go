package airlock

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// HTTPRule allows some methods on a path and everything below it. Its text
// form is "METHODS PATH": a comma-separated list of methods or "*", a
// space, and an absolute path ("GET,HEAD /", "* /api/"). A PATH that ends
// in "/" matches itself and everything below; any other PATH matches
// itself and everything below PATH + "/" (so "/api" does not match
// "/apix").
type HTTPRule struct {
	Methods []string // upper case; nil means any method
	Path    string
}

// maxRuleLen bounds a rule's text.
const maxRuleLen = 1024

// ParseHTTPRule parses the text form of an HTTPRule; an http resource's
// allow option holds them per access level.
func ParseHTTPRule(s string) (HTTPRule, error) {
	if len(s) > maxRuleLen {
		return HTTPRule{}, fmt.Errorf("rule longer than %d bytes", maxRuleLen)
	}
	ms, p, ok := strings.Cut(strings.TrimSpace(s), " ")
	p = strings.TrimSpace(p)
	if !ok || ms == "" || p == "" {
		return HTTPRule{}, fmt.Errorf("rule %q: want \"METHODS PATH\", e.g. \"GET,HEAD /\" or \"* /api/\"", s)
	}
	if !strings.HasPrefix(p, "/") || !CleanHTTPPath(p) {
		return HTTPRule{}, fmt.Errorf("rule %q: the path must be absolute and clean (no //, . or .. segments)", s)
	}
	r := HTTPRule{Path: p}
	if ms == "*" {
		return r, nil
	}
	for _, m := range strings.Split(ms, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
			return HTTPRule{}, fmt.Errorf("rule %q: %q is not an HTTP method", s, m)
		}
		if !slices.Contains(r.Methods, m) {
			r.Methods = append(r.Methods, m)
		}
	}
	return r, nil
}

// String is r's text form.
func (r HTTPRule) String() string {
	if r.Methods == nil {
		return "* " + r.Path
	}
	return strings.Join(r.Methods, ",") + " " + r.Path
}

// Allows reports whether r admits method on p (a clean, decoded path).
func (r HTTPRule) Allows(method, p string) bool {
	if r.Methods != nil && !slices.Contains(r.Methods, method) {
		return false
	}
	if strings.HasSuffix(r.Path, "/") {
		return strings.HasPrefix(p, r.Path) || p+"/" == r.Path
	}
	return p == r.Path || strings.HasPrefix(p, r.Path+"/")
}

// HTTPAllowed reports whether rules admit method on p: any rule does, or
// there are no rules. p must be clean (see CleanHTTPPath); callers refuse
// others.
func HTTPAllowed(rules []HTTPRule, method, p string) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if r.Allows(method, p) {
			return true
		}
	}
	return false
}

// CleanHTTPPath reports whether p is an absolute path with no empty, "." or
// ".." segments (also with ";params") and no NUL or backslash, so that the
// gateway's rules and
// the app see the same path. A trailing slash is allowed.
func CleanHTTPPath(p string) bool {
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	if p == "/" {
		return true
	}
	for _, seg := range strings.Split(p, "/") {
		// Servlet containers drop a segment's ";params" before resolving
		// dot segments: "/public/..;/admin" is /admin to them.
		if s, _, ok := strings.Cut(seg, ";"); ok && (s == "." || s == "..") {
			return false
		}
	}
	c := path.Clean(p)
	return c == p || c+"/" == p
}
