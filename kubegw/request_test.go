package kubegw

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		method, path, query string
		want                Request
		bad                 bool
	}{
		{method: "GET", path: "/api", want: Request{Verb: "get", Path: "/api"}},
		{method: "GET", path: "/apis/apps/v1", want: Request{Verb: "get", Path: "/apis/apps/v1"}},
		{method: "GET", path: "/version", want: Request{Verb: "get", Path: "/version"}},
		{method: "POST", path: "/healthz", want: Request{Verb: "post", Path: "/healthz"}},
		{method: "GET", path: "/api/v1/namespaces/payments/pods",
			want: Request{IsResource: true, Verb: "list", APIVersion: "v1", Resource: "pods", Namespace: "payments"}},
		{method: "GET", path: "/api/v1/namespaces/payments/pods", query: "watch=true",
			want: Request{IsResource: true, Verb: "watch", APIVersion: "v1", Resource: "pods", Namespace: "payments"}},
		{method: "GET", path: "/api/v1/watch/namespaces/payments/pods",
			want: Request{IsResource: true, Verb: "watch", APIVersion: "v1", Resource: "pods", Namespace: "payments"}},
		{method: "GET", path: "/api/v1/namespaces/payments/pods/web-1/log", query: "follow=true",
			want: Request{IsResource: true, Verb: "get", APIVersion: "v1", Resource: "pods", Namespace: "payments", Name: "web-1", Subresource: "log"}},
		{method: "POST", path: "/api/v1/namespaces/payments/pods/web-1/exec", query: "command=sh",
			want: Request{IsResource: true, Verb: "create", APIVersion: "v1", Resource: "pods", Namespace: "payments", Name: "web-1", Subresource: "exec"}},
		{method: "DELETE", path: "/api/v1/namespaces/default/pods/web-1",
			want: Request{IsResource: true, Verb: "delete", APIVersion: "v1", Resource: "pods", Namespace: "default", Name: "web-1"}},
		{method: "DELETE", path: "/api/v1/namespaces/default/pods",
			want: Request{IsResource: true, Verb: "deletecollection", APIVersion: "v1", Resource: "pods", Namespace: "default"}},
		{method: "PATCH", path: "/apis/apps/v1/namespaces/payments/deployments/api",
			want: Request{IsResource: true, Verb: "patch", APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Namespace: "payments", Name: "api"}},
		{method: "GET", path: "/api/v1/pods",
			want: Request{IsResource: true, Verb: "list", APIVersion: "v1", Resource: "pods"}},
		{method: "GET", path: "/api/v1/namespaces",
			want: Request{IsResource: true, Verb: "list", APIVersion: "v1", Resource: "namespaces"}},
		{method: "GET", path: "/api/v1/namespaces/payments",
			want: Request{IsResource: true, Verb: "get", APIVersion: "v1", Resource: "namespaces", Namespace: "payments", Name: "payments"}},
		{method: "PUT", path: "/api/v1/namespaces/payments/finalize",
			want: Request{IsResource: true, Verb: "update", APIVersion: "v1", Resource: "namespaces", Namespace: "payments", Name: "payments", Subresource: "finalize"}},
		{method: "GET", path: "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
			want: Request{IsResource: true, Verb: "get", APIGroup: "rbac.authorization.k8s.io", APIVersion: "v1", Resource: "clusterroles", Name: "admin"}},
		{method: "GET", path: "/api/v1/namespaces/payments/pods/web-1:8080/proxy/healthz/ready",
			want: Request{IsResource: true, Verb: "get", APIVersion: "v1", Resource: "pods", Namespace: "payments", Name: "web-1:8080", Subresource: "proxy", ProxyPath: "/healthz/ready"}},
		{method: "POST", path: "/api/v1/namespaces/payments/services/web/proxy/",
			want: Request{IsResource: true, Verb: "create", APIVersion: "v1", Resource: "services", Namespace: "payments", Name: "web", Subresource: "proxy"}},
		{method: "GET", path: "/api/v1/nodes/n1/proxy/exec/payments/web-1/c",
			want: Request{IsResource: true, Verb: "get", APIVersion: "v1", Resource: "nodes", Name: "n1", Subresource: "proxy", ProxyPath: "/exec/payments/web-1/c"}},
		{method: "GET", path: "/api/v1/namespaces/a/pods/b/c/d", bad: true},
		{method: "GET", path: "/api/v1/namespaces/a/pods/b/exec/d", bad: true},
		{method: "GET", path: "/api/v1/watch", bad: true},
		{method: "GET", path: "api/v1/pods", bad: true},
		{method: "GET", path: "/api//v1/pods", bad: true},
		{method: "GET", path: strings.Repeat("/a", maxSegments+1), bad: true},
	} {
		q, _ := url.ParseQuery(c.query)
		got, ok := ParseRequest(c.method, c.path, q)
		if ok == c.bad {
			t.Errorf("%s %s: ok = %v, want %v", c.method, c.path, ok, !c.bad)
			continue
		}
		if !c.bad && got != c.want {
			t.Errorf("%s %s?%s:\n got %+v\nwant %+v", c.method, c.path, c.query, got, c.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	ns := []string{"payments"}
	parse := func(method, path string) Request {
		r, ok := ParseRequest(method, path, nil)
		if !ok {
			t.Fatalf("parse %s", path)
		}
		return r
	}
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/api", true},
		{"GET", "/apis/apps/v1", true},
		{"GET", "/version", true},
		{"GET", "/openapi/v3/apis/apps/v1", true},
		{"POST", "/api", false},
		{"GET", "/metrics", false},
		{"GET", "/api/v1/namespaces/payments/pods", true},
		{"DELETE", "/api/v1/namespaces/payments/pods/x", true},
		{"GET", "/api/v1/namespaces/default/pods", false},
		{"DELETE", "/api/v1/namespaces/default/pods/x", false},
		{"GET", "/api/v1/pods", false},
		{"GET", "/api/v1/nodes", false},
		{"GET", "/api/v1/nodes/n1", false},
		{"GET", "/api/v1/namespaces", false},
		{"GET", "/api/v1/namespaces/payments", true},
		{"GET", "/api/v1/namespaces/default", false},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", true},
		{"POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", false},
		{"POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", false},
		{"GET", "/api/v1/namespaces/payments/pods/web-1/proxy/metrics", true},
		{"GET", "/api/v1/namespaces/payments/services/web:http/proxy/", true},
		{"GET", "/api/v1/namespaces/default/pods/web-1/proxy/metrics", false},
		{"GET", "/api/v1/namespaces/default/services/kubernetes/proxy/api", false},
		{"GET", "/api/v1/nodes/n1/proxy/pods", false},
	} {
		ok, why := Allowed(parse(c.method, c.path), ns)
		if ok != c.want {
			t.Errorf("%s %s: allowed = %v (%s), want %v", c.method, c.path, ok, why, c.want)
		}
		if !ok && why == "" {
			t.Errorf("%s %s: refused without a reason", c.method, c.path)
		}
	}
	if ok, _ := Allowed(parse("DELETE", "/api/v1/nodes/n1"), nil); !ok {
		t.Error("a level without namespaces must leave the decision to RBAC")
	}
	// The kubelet's API runs exec unrecorded: refused at every level.
	for _, p := range []string{"/api/v1/nodes/n1/proxy", "/api/v1/nodes/n1:10250/proxy/exec/payments/web-1/c", "/api/v1/nodes/n1/proxy/run/payments/web-1/c"} {
		if ok, why := Allowed(parse("POST", p), nil); ok || why == "" {
			t.Errorf("%s allowed without namespaces", p)
		}
	}
}
