package kubegw

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzParseRequest: any method, path and query parse without a panic; a
// parsed resource request names only segments of the path; and a
// namespace-bound level never lets through a request naming another
// namespace, a cluster-scoped resource or a list across namespaces.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/api", "/api/v1/namespaces/payments/pods", "/api/v1/pods", "/apis/apps/v1/namespaces/default/deployments/x/scale",
		"/api/v1/watch/namespaces/a/pods/b", "/api/v1/namespaces/a", "/api/v1/namespaces/a/status", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
		"/version", "//api", "/api/v1/namespaces//pods", "/openapi/v3/apis/apps/v1",
	} {
		f.Add("GET", s, "watch=1")
		f.Add("POST", s, "")
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery)
		r, ok := ParseRequest(method, path, q)
		if !ok {
			return
		}
		segs := strings.Split(strings.Trim(path, "/"), "/")
		for _, v := range []string{r.Resource, r.Name, r.Subresource, r.Namespace, r.APIGroup, r.APIVersion} {
			if v != "" && !slices.Contains(segs, v) {
				t.Fatalf("%q names %q, not a segment of the path", path, v)
			}
		}
		allowed, why := Allowed(r, []string{"payments"})
		if !allowed {
			if why == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		if r.IsResource {
			if r.Namespace != "payments" && !(r.Namespace == "" && r.Verb == "create" && selfReviews[r.APIGroup+"/"+r.Resource]) {
				t.Fatalf("%s %q (%+v) let through outside payments", method, path, r)
			}
		} else if r.Verb != "get" {
			t.Fatalf("%s %q: a non-resource request other than a read let through", method, path)
		}
	})
}
