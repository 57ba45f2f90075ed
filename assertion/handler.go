package assertion

import (
	"fmt"
	"net/http"
	"strings"
)

// Handler serves the JWKS, for GET and HEAD at /.well-known/jwks.json
// (the caller mounts it there): Content-Type application/json,
// Cache-Control max-age JWKSMaxAge, an ETag, and 304 Not Modified for a
// matching If-None-Match. When the keys cannot be loaded it answers 503
// and logs why; other methods get 405.
func (k *Keys) Handler() http.Handler {
	maxAge := fmt.Sprintf("public, max-age=%d", int(JWKSMaxAge.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st, err := k.current(r.Context(), k.now(), true)
		if err != nil {
			k.log.Error("assertion: serve jwks", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "keys unavailable, retry", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", maxAge)
		h.Set("ETag", st.etag)
		if etagMatch(r.Header.Get("If-None-Match"), st.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(st.jwks)
	})
}

// etagMatch reports whether an If-None-Match header names etag (or is *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
