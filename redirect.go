package airlock

import (
	"net/url"
	"strings"
)

// SafeRedirect reports whether next may be the target of a redirect that
// must stay on the same host (a sign-in's "next", the HTTP gateway's
// continue path): an absolute path, not scheme-relative ("//evil",
// "/\evil"), with no control characters or backslashes, at most 2 KiB.
// Anything else would make the redirect an open one.
func SafeRedirect(next string) bool {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return false
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return false
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(next)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && strings.HasPrefix(u.Path, "/")
}
