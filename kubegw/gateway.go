package kubegw

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/secrets"
)

// PathPrefix starts every request path (airlock.KubePathPrefix).
const PathPrefix = airlock.KubePathPrefix

// Impersonation is what the gateway asserts to the API server for a
// grant, carried in httpgw.Target.Door.
type Impersonation struct {
	// User is the Airlock user name (Impersonate-User).
	User string
	// Groups are the access level's Kubernetes groups (Impersonate-Group).
	Groups []string
	// Grant is the grant id (Impersonate-Extra-Airlock-Grant), so the
	// cluster's own audit log names it too.
	Grant string
	// Namespaces are the only namespaces requests may touch (none: all).
	Namespaces []string
}

// New returns the Kubernetes gateway: the HTTP gateway's core with the
// Kubernetes door. cfg.Door is set here; Domain, ConsoleURL and Identity
// are not used; Recordings is required. Every Target the Authenticator returns must carry an
// *Impersonation in Target.Door.
func New(cfg httpgw.Config) (*httpgw.Gateway, error) {
	if cfg.Recordings == nil {
		return nil, errors.New("kubegw: Recordings is required (exec and attach are recorded)")
	}
	cfg.Door = door{}
	cfg.Identity = nil
	if cfg.CopyBufferSize == 0 {
		// Watches and log streams are most of what stays open, and
		// their events are small: 8 KiB each instead of 32.
		cfg.CopyBufferSize = 8 << 10
	}
	// The API server speaks HTTP/2: watches and log streams share its
	// connections instead of holding one each (exec, attach and
	// port-forward upgrades still get HTTP/1.1 connections).
	cfg.UpstreamHTTP2 = true
	return httpgw.New(cfg)
}

type door struct{}

func (door) Kind() string                        { return airlock.KindKubernetes }
func (door) Actions() (request, response string) { return "k8s.request", "k8s.response" }

// Route takes the resource from the path prefix and leaves r.URL.Path the
// path inside the cluster. Which resource a token opens is checked by the
// core (a token for another resource is refused).
func (d door) Route(w http.ResponseWriter, r *http.Request) *httpgw.App {
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	name, inner, _ := strings.Cut(rest, "/")
	switch {
	case !ok || name == "" || !validResourceName(name):
		d.Error(w, r, http.StatusNotFound, "airlock: not a cluster path: use https://GATEWAY/k8s/RESOURCE (airlock kubeconfig RESOURCE writes it)")
		return nil
	case r.URL.RawPath != "":
		// An escaped character in a path (%2F) would let this gateway and
		// the API server read different names.
		d.Error(w, r, http.StatusBadRequest, "airlock: escaped characters in a Kubernetes API path are refused")
		return nil
	case !airlock.CleanHTTPPath("/" + inner):
		d.Error(w, r, http.StatusBadRequest, "airlock: the request path must be clean (no //, . or .. segments, no backslash)")
		return nil
	case httpgw.UpgradesTo(r.Header, "h2c"):
		d.Error(w, r, http.StatusBadRequest, "airlock: h2c upgrades are not forwarded")
		return nil
	}
	r.URL.Path = "/" + inner
	return &httpgw.App{Resource: name}
}

// Token is the bearer token only: kubectl sends it from the exec
// credential plugin; there are no browser sessions on this door.
func (door) Token(r *http.Request) (secrets.Secret, bool) {
	scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	if t = strings.TrimSpace(t); !strings.HasPrefix(t, httpgw.TokenPrefix) {
		return "", false
	}
	return secrets.Secret(t), false
}

// requestFields are a k8s.request event's own fields.
type requestFields struct {
	Request
	// Command is an exec's command (its "command" query parameters).
	Command   []string `json:"command,omitempty"`
	Container string   `json:"container,omitempty"`
	TTY       bool     `json:"tty,omitempty"`
}

// Inspect parses the request as the API server will and keeps it inside
// the grant's namespaces.
func (door) Inspect(r *http.Request, t *httpgw.Target) (any, *httpgw.Refusal) {
	imp, _ := t.Door.(*Impersonation)
	if imp == nil {
		return nil, &httpgw.Refusal{Status: http.StatusInternalServerError, Denied: "no_impersonation", Message: "airlock: this grant has no Kubernetes identity"}
	}
	q := r.URL.Query()
	req, ok := ParseRequest(r.Method, r.URL.Path, q)
	if !ok {
		return nil, &httpgw.Refusal{Status: http.StatusBadRequest, Denied: "malformed", Message: "airlock: not a Kubernetes API path"}
	}
	f := requestFields{Request: req}
	switch req.Subresource {
	case "exec", "attach":
		f.Command, f.Container = q["command"], q.Get("container")
		f.TTY = queryBool(q, "tty")
		if _, why := execUpgrade(r.Header); why != "" {
			return f, &httpgw.Refusal{Status: http.StatusBadRequest, Denied: "unrecordable_stream", Message: "airlock: " + why}
		}
	}
	if ok, why := Allowed(req, imp.Namespaces); !ok {
		return f, &httpgw.Refusal{Status: http.StatusForbidden, Denied: "namespace",
			Message: "airlock: " + t.Access + " access to " + t.Resource + ": " + why}
	}
	return f, nil
}

// Rewrite removes every credential and identity the client sent and
// asserts the grant's: Impersonate-User, -Group and -Extra-Airlock-Grant.
// The core then sets the gateway's own credential (t.Header).
func (door) Rewrite(pr *httputil.ProxyRequest, t *httpgw.Target) {
	h := pr.Out.Header
	for k := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "impersonate-") || strings.HasPrefix(lk, "impersonate_") ||
			strings.HasPrefix(lk, "x-remote-") || strings.HasPrefix(lk, "x-remote_") {
			delete(h, k)
		}
	}
	h.Del("Authorization")
	h.Del("Cookie")
	h.Del("Forwarded")
	imp := t.Door.(*Impersonation) // Inspect refused requests without one
	h.Set("Impersonate-User", imp.User)
	for _, g := range imp.Groups {
		h.Add("Impersonate-Group", g)
	}
	h.Set("Impersonate-Extra-Airlock-Grant", imp.Grant)
	if protos, _ := execUpgrade(pr.In.Header); len(protos) > 0 {
		// Only the framing the gateway follows (and records) is offered.
		h.Del("Sec-WebSocket-Protocol")
		h.Set("Sec-WebSocket-Protocol", strings.Join(protos, ", "))
	}
}

func (door) ModifyResponse(*http.Response, *httpgw.Target) error { return nil }

func (d door) Unauthenticated(w http.ResponseWriter, r *http.Request, app *httpgw.App, reason string) {
	msg := "airlock: no valid token for " + app.Resource + ": `airlock kubeconfig " + app.Resource + "` sets kubectl up to get one"
	if reason != "" {
		msg = "airlock: " + strings.TrimPrefix(reason, "airlock: ") +
			" (after a new grant: airlock kube-credential " + app.Resource + " --refresh)"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="airlock"`)
	d.Error(w, r, http.StatusUnauthorized, msg)
}

// Error answers as the API server does: a v1 Status object, which
// kubectl prints.
func (door) Error(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(statusObject{Kind: "Status", APIVersion: "v1", Metadata: struct{}{}, Status: "Failure",
		Message: msg, Reason: statusReason(status), Code: status})
}

type statusObject struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Metadata   struct{} `json:"metadata"`
	Status     string   `json:"status"`
	Message    string   `json:"message"`
	Reason     string   `json:"reason"`
	Code       int      `json:"code"`
}

// statusReason is the Kubernetes StatusReason for an HTTP status.
func statusReason(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	}
	return "InternalError"
}

// validResourceName is identity.ValidName's rule (lower-case letters,
// digits, '-', '_', '.'), checked here without importing the service.
func validResourceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
