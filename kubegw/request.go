package kubegw

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Request is what a Kubernetes API request asks for, parsed from its
// method, path and query the way the API server reads them (its
// RequestInfo), so the gateway's decision and audit name the same thing the
// cluster's RBAC will.
type Request struct {
	// Resource is false for a non-resource URL (/version, /apis, /healthz).
	IsResource bool   `json:"-"`
	Verb       string `json:"verb"`
	APIGroup   string `json:"api_group,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	// Resource, Subresource, Namespace and Name are empty when the path
	// does not name them.
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	// Path is the non-resource URL.
	Path string `json:"-"` // the core's http.request path says it already
	// ProxyPath is the path a proxy subresource (pods/NAME/proxy/…,
	// services/NAME/proxy/…) asks for inside the cluster.
	ProxyPath string `json:"proxy_path,omitempty"`
}

// maxSegments bounds how much of a path is split: no API path has more
// than 8 (/apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME/SUBRESOURCE)
// but a proxy subresource's, whose path inside the cluster follows.
const maxSegments = 64

// ParseRequest reads a Kubernetes API request. path is the decoded path
// inside the cluster (without the gateway's /k8s/RESOURCE prefix). ok is
// false for a path the API server would not read as any request a client
// needs (empty segments, too many segments); the gateway refuses those.
func ParseRequest(method, path string, query url.Values) (r Request, ok bool) {
	if !strings.HasPrefix(path, "/") {
		return r, false
	}
	trimmed := strings.Trim(path, "/")
	var parts []string
	if trimmed != "" {
		parts = strings.SplitN(trimmed, "/", maxSegments+1)
		if len(parts) > maxSegments {
			return r, false
		}
		if slices.Contains(parts, "") {
			return r, false
		}
	}
	r.Verb = nonResourceVerb(method)
	r.Path = path
	var rest []string
	switch {
	case len(parts) >= 3 && parts[0] == "api": // /api/VERSION/…
		r.APIVersion, rest = parts[1], parts[2:]
	case len(parts) >= 4 && parts[0] == "apis": // /apis/GROUP/VERSION/…
		r.APIGroup, r.APIVersion, rest = parts[1], parts[2], parts[3:]
	default: // /api, /api/v1, /apis, /apis/GROUP[/VERSION], /version, /healthz…
		return r, true
	}
	r.IsResource, r.Path = true, ""
	r.Verb = resourceVerb(method)
	// The deprecated /watch/ prefix: GET …/watch/namespaces/NS/pods.
	if len(rest) > 0 && rest[0] == "watch" {
		r.Verb = "watch"
		rest = rest[1:]
	}
	if len(rest) >= 2 && rest[0] == "namespaces" {
		r.Namespace = rest[1]
		switch {
		case len(rest) == 2: // /namespaces/NS is the namespace object itself
			r.Resource, r.Name = "namespaces", rest[1]
			rest = nil
		case len(rest) == 3 && (rest[2] == "status" || rest[2] == "finalize"): // its subresources
			r.Resource, r.Name, r.Subresource = "namespaces", rest[1], rest[2]
			rest = nil
		default:
			rest = rest[2:]
		}
	}
	switch len(rest) {
	case 0:
	case 1:
		r.Resource = rest[0]
	case 2:
		r.Resource, r.Name = rest[0], rest[1]
	case 3:
		r.Resource, r.Name, r.Subresource = rest[0], rest[1], rest[2]
	default:
		// As for the API server, what follows …/NAME/proxy is the path
		// proxied to; other subresources have no further segments.
		if rest[2] != "proxy" {
			return r, false
		}
		r.Resource, r.Name, r.Subresource = rest[0], rest[1], rest[2]
		r.ProxyPath = "/" + strings.Join(rest[3:], "/")
	}
	if r.Resource == "" {
		return r, false
	}
	if r.Name == "" {
		switch r.Verb {
		case "get":
			r.Verb = "list"
		case "delete":
			r.Verb = "deletecollection"
		}
	}
	if r.Verb == "list" || r.Verb == "get" {
		if w := query.Get("watch"); w == "1" || strings.EqualFold(w, "true") {
			r.Verb = "watch"
		}
	}
	return r, true
}

func resourceVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

func nonResourceVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "post"
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

// selfReviews are the cluster-scoped requests a namespace-bound level may
// still send: questions about the caller's own rights (kubectl auth
// can-i, whoami), which reveal nothing about anyone else.
var selfReviews = map[string]bool{
	"authorization.k8s.io/selfsubjectaccessreviews": true,
	"authorization.k8s.io/selfsubjectrulesreviews":  true,
	"authentication.k8s.io/selfsubjectreviews":      true,
}

// Allowed reports whether a request stays inside namespaces (none: every
// request is forwarded, and the cluster's RBAC alone decides). With
// namespaces, only requests in one of them go through, plus reads of the
// namespace objects themselves, read-only discovery (/api, /apis,
// /version, /openapi) and the caller's own access reviews; cluster-scoped
// resources and lists across all namespaces are refused. why names the
// refusal for the client and the audit.
//
// At every level, namespaces or none, nodes/NAME/proxy is refused: it
// reaches the kubelet's own API, whose exec, attach and run would start
// commands this gateway does not see as exec and so cannot record. A
// proxy to pods or services (pods/NAME/proxy/…) is allowed in the
// grant's namespaces: it reaches only what those pods serve, and RBAC's
// pods/proxy and services/proxy decide it.
func Allowed(r Request, namespaces []string) (ok bool, why string) {
	if r.IsResource && r.APIGroup == "" && r.Resource == "nodes" && r.Subresource == "proxy" {
		return false, "nodes/" + r.Name + "/proxy reaches the kubelet's API, where exec and attach would run unrecorded"
	}
	if len(namespaces) == 0 {
		return true, ""
	}
	if !r.IsResource {
		if r.Verb == "get" && discoveryPath(r.Path) {
			return true, ""
		}
		return false, "only discovery is allowed outside the grant's namespaces"
	}
	if r.Resource == "namespaces" && r.Subresource == "" && r.Name != "" && (r.Verb == "get" || r.Verb == "watch") {
		if slices.Contains(namespaces, r.Name) {
			return true, ""
		}
		return false, "namespace " + r.Name + " is outside the grant (" + strings.Join(namespaces, ", ") + ")"
	}
	if r.Namespace == "" {
		if r.Verb == "create" && selfReviews[r.APIGroup+"/"+r.Resource] {
			return true, ""
		}
		if r.Name == "" {
			return false, r.Resource + " across all namespaces is outside the grant (" + strings.Join(namespaces, ", ") + "); name a namespace with -n"
		}
		return false, "cluster-scoped " + r.Resource + " are outside the grant (" + strings.Join(namespaces, ", ") + ")"
	}
	if !slices.Contains(namespaces, r.Namespace) {
		return false, "namespace " + r.Namespace + " is outside the grant (" + strings.Join(namespaces, ", ") + ")"
	}
	return true, ""
}

// discoveryPath reports whether a non-resource path only describes the
// API (what kubectl reads before any command).
func discoveryPath(p string) bool {
	switch {
	case p == "/api" || p == "/apis" || p == "/version" || p == "/openapi/v2":
		return true
	case strings.HasPrefix(p, "/api/"), strings.HasPrefix(p, "/apis/"), strings.HasPrefix(p, "/openapi/v3"):
		return true // /api/v1, /apis/GROUP, /apis/GROUP/VERSION (resources are parsed before this)
	}
	return false
}
