package policy

import (
	"errors"
	"strings"
)

// glob is a precompiled name pattern where '*' matches any run of
// characters (including none). It has no other metacharacters.
type glob struct {
	literal bool
	parts   []string // pattern split at '*'
}

func compileGlob(pattern string) glob {
	if !strings.Contains(pattern, "*") {
		return glob{literal: true, parts: []string{pattern}}
	}
	return glob{parts: strings.Split(pattern, "*")}
}

// checkGlob validates a resources.names entry.
func checkGlob(p string) error {
	if strings.ContainsAny(p, "?[]{}\\") {
		return errors.New("only '*' is a wildcard; '?', '[', ']', '{', '}' and '\\' are not allowed")
	}
	if strings.TrimSpace(p) != p {
		return errors.New("leading or trailing spaces")
	}
	return nil
}

// match reports whether s matches the glob. It does not allocate.
func (g *glob) match(s string) bool {
	if g.literal {
		return s == g.parts[0]
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, part := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// accessPattern matches an access level. An entry "METHOD /prefix"
// matches an HTTP access "METHOD /path" whose path is the prefix or below
// it ("*" as METHOD matches any method); any other entry matches exactly.
type accessPattern struct {
	exact  string
	http   bool
	method string // "" = any
	prefix string
}

func compileAccess(a string) accessPattern {
	method, path, ok := strings.Cut(a, " ")
	if !ok {
		return accessPattern{exact: a}
	}
	if method == "*" {
		method = ""
	}
	return accessPattern{exact: a, http: true, method: method, prefix: path}
}

// checkAccess validates a rule's access entry.
func checkAccess(a string) error {
	method, path, ok := strings.Cut(a, " ")
	if !ok {
		if strings.ContainsAny(a, "\t\n") {
			return errors.New("must not contain whitespace")
		}
		return nil
	}
	if method != "*" && (method == "" || strings.ToUpper(method) != method || strings.ContainsAny(method, "/ \t")) {
		return errors.New(`an HTTP entry is "METHOD /path-prefix" with an upper-case METHOD or "*"`)
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\n") {
		return errors.New(`an HTTP entry is "METHOD /path-prefix"; the path must start with '/'`)
	}
	return nil
}

func (p *accessPattern) match(access string) bool {
	if access == p.exact {
		return true
	}
	if !p.http {
		return false
	}
	method, path, ok := strings.Cut(access, " ")
	if !ok || (p.method != "" && method != p.method) || unsafePath(path) {
		return false
	}
	return pathUnder(path, p.prefix)
}

// pathUnder reports whether path is prefix or lies below it on a segment
// boundary: "/api" covers "/api" and "/api/x", not "/apix".
func pathUnder(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	if len(path) == len(prefix) || strings.HasSuffix(prefix, "/") {
		return true
	}
	return path[len(prefix)] == '/' || path[len(prefix)] == '?'
}

// unsafePath reports whether an HTTP path could mean something other than
// it says (dot segments, doubled or encoded slashes and dots); such paths
// never match a prefix, so a gateway that forgets to clean them fails closed.
func unsafePath(path string) bool {
	if strings.Contains(path, "//") || strings.Contains(path, "/.") {
		return true
	}
	for i := 0; i+2 < len(path); i++ {
		if path[i] == '%' {
			switch path[i+1 : i+3] {
			case "2e", "2E", "2f", "2F", "5c", "5C":
				return true
			}
		}
	}
	return strings.ContainsRune(path, '\\')
}
