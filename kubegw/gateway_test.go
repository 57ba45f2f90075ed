package kubegw

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
)

// The door's logic against a recording upstream; the real API server is
// in cmd/airlock's end-to-end test.

const (
	tokA = "alh_token_for_cluster_a"
	tokB = "alh_token_for_cluster_b"
)

type fakeAuth struct{ targets map[string]*httpgw.Target }

func (a *fakeAuth) App(context.Context, string) (*httpgw.App, error) {
	return nil, airlock.Errorf(airlock.ENOTFOUND, "no")
}
func (a *fakeAuth) Authenticate(_ context.Context, req httpgw.AuthRequest) (*httpgw.Target, error) {
	t, ok := a.targets[req.Token.Reveal()]
	if !ok {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "the token is unknown or has expired")
	}
	c := *t
	return &c, nil
}
func (a *fakeAuth) Redeem(context.Context, httpgw.RedeemRequest) (secrets.Secret, *httpgw.Target, string, error) {
	return "", nil, "", airlock.Errorf(airlock.EINVALID, "no")
}
func (a *fakeAuth) Revoke(context.Context, secrets.Secret) error { return nil }

type done struct{}

func (done) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }
func (done) Err() error            { return nil }
func (done) Seq() int64            { return 1 }

type audit struct {
	mu  sync.Mutex
	evs []airlock.Event
}

func (a *audit) Submit(e airlock.Event) airlock.AuditPending {
	a.mu.Lock()
	a.evs = append(a.evs, e)
	a.mu.Unlock()
	return done{}
}
func (a *audit) Flush() {}
func (a *audit) byAction(action string) []airlock.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []airlock.Event
	for _, e := range a.evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func newKube(t *testing.T) (*httptest.Server, *seen, *audit) {
	t.Helper()
	sn := &seen{}
	k := newKubeWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sn.mu.Lock()
		sn.reqs = append(sn.reqs, r.Clone(context.Background()))
		sn.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"PodList","items":[]}`)
	}))
	return k.srv, sn, k.au
}

// kubeGW is a gateway in front of a test upstream.
type kubeGW struct {
	srv  *httptest.Server
	au   *audit
	g    *httpgw.Gateway
	recs string // the recordings' directory
	tls  bool   // the gateway's listener speaks TLS (newKubeTLS)
}

// newKubeWith runs the gateway in front of upstream: tokA opens cluster
// "a" limited to namespace payments, tokB cluster "b" unlimited.
func newKubeWith(t *testing.T, upstream http.Handler) *kubeGW {
	t.Helper()
	return newKubeGW(t, upstream, false)
}

// newKubeTLS is newKubeWith with TLS on the gateway's listener, as a
// server runs it.
func newKubeTLS(t *testing.T, upstream http.Handler) *kubeGW {
	t.Helper()
	return newKubeGW(t, upstream, true)
}

func newKubeGW(t *testing.T, upstream http.Handler, withTLS bool) *kubeGW {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	now := time.Now()
	target := func(resource string, ns []string) *httpgw.Target {
		return &httpgw.Target{UserID: "usr_alice", UserName: "alice", GrantID: "gra_" + resource, Resource: resource, Access: "edit",
			EndsAt: now.Add(time.Hour), TokenExpiresAt: now.Add(10 * time.Minute), Upstream: u,
			Header: http.Header{"Authorization": {"Bearer gateway-sa-token"}},
			Door:   &Impersonation{User: "alice", Groups: []string{"airlock-edit", "team-b"}, Grant: "gra_" + resource, Namespaces: ns}}
	}
	au := &audit{}
	dir := t.TempDir()
	recs, err := recording.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(httpgw.Config{Recordings: recs, Auth: &fakeAuth{targets: map[string]*httpgw.Target{tokA: target("a", []string{"payments"}), tokB: target("b", nil)}}, Audit: au})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	if withTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return &kubeGW{srv: srv, au: au, g: g, recs: dir, tls: withTLS}
}

func do(t *testing.T, srv *httptest.Server, method, path, token string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestForwardImpersonates(t *testing.T) {
	srv, sn, au := newKube(t)
	code, body := do(t, srv, "GET", "/k8s/a/api/v1/namespaces/payments/pods?labelSelector=app%3Dweb", tokA,
		"Impersonate-User", "admin", "Impersonate-Group", "system:masters", "impersonate-extra-scopes", "x",
		"Impersonate-Uid", "0", "X-Remote-User", "root", "Cookie", "a=b")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	r := sn.reqs[len(sn.reqs)-1]
	if r.URL.Path != "/api/v1/namespaces/payments/pods" || r.URL.Query().Get("labelSelector") != "app=web" {
		t.Errorf("upstream got %s", r.URL)
	}
	if got := r.Header.Values("Impersonate-Group"); strings.Join(got, ",") != "airlock-edit,team-b" {
		t.Errorf("Impersonate-Group %v", got)
	}
	if r.Header.Get("Impersonate-User") != "alice" || r.Header.Get("Impersonate-Extra-Airlock-Grant") != "gra_a" {
		t.Errorf("impersonation %v", r.Header)
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if lk == "impersonate-uid" || lk == "impersonate-extra-scopes" || strings.HasPrefix(lk, "x-remote") || lk == "cookie" {
			t.Errorf("the client's %s reached the cluster", k)
		}
	}
	if r.Header.Get("Authorization") != "Bearer gateway-sa-token" {
		t.Errorf("Authorization upstream %q", r.Header.Get("Authorization"))
	}
	reqs := au.byAction("k8s.request")
	if len(reqs) != 1 {
		t.Fatalf("k8s.request events: %d", len(reqs))
	}
	var d map[string]any
	json.Unmarshal(reqs[0].Details, &d)
	if d["verb"] != "list" || d["resource"] != "pods" || d["namespace"] != "payments" || d["method"] != "GET" {
		t.Errorf("k8s.request details %v", d)
	}
	if strings.Contains(string(reqs[0].Details), "alh_") || strings.Contains(string(reqs[0].Details), "gateway-sa-token") {
		t.Errorf("a credential in the audit: %s", reqs[0].Details)
	}
}

func TestRefusedBeforeForwarding(t *testing.T) {
	srv, sn, au := newKube(t)
	for _, c := range []struct {
		method, path, token string
		want                int
		msg                 string
	}{
		{"GET", "/k8s/a/api/v1/namespaces/default/pods", tokA, 403, "namespace default is outside the grant"},
		{"DELETE", "/k8s/a/api/v1/nodes/n1", tokA, 403, "cluster-scoped nodes"},
		{"GET", "/k8s/a/api/v1/pods", tokA, 403, "across all namespaces"},
		{"GET", "/k8s/b/api/v1/namespaces/payments/pods", tokA, 401, "this token is for a"},
		{"GET", "/k8s/a/api/v1/namespaces/payments/pods", "", 401, "airlock kubeconfig a"},
		{"GET", "/k8s/a/api/v1/namespaces/payments/pods", "alh_unknown", 401, "unknown or has expired"},
		{"GET", "/k8s/a/api/v1/namespaces/pay%2Fments/pods", tokA, 400, "escaped characters"},
		{"GET", "/k8s/a/api/v1/namespaces/payments/../default/pods", tokA, 400, "clean"},
		{"GET", "/api/v1/pods", tokA, 404, "not a cluster path"},
		{"GET", "/k8s/A/api", tokA, 404, "not a cluster path"},
		{"GET", "/k8s/a/api/v1/namespaces/default/pods/x/proxy/metrics", tokA, 403, "namespace default is outside the grant"},
		{"POST", "/k8s/b/api/v1/nodes/n1/proxy/exec/payments/web-1/c", tokB, 403, "the kubelet's API"},
		{"GET", "/k8s/b/api/v1/nodes/n1/proxy", tokB, 403, "the kubelet's API"},
	} {
		before := len(sn.reqs)
		code, body := do(t, srv, c.method, c.path, c.token)
		if code != c.want || !strings.Contains(body, c.msg) {
			t.Errorf("%s %s: %d %s, want %d %q", c.method, c.path, code, body, c.want, c.msg)
		}
		var st struct{ Kind, Status string }
		if json.Unmarshal([]byte(body), &st) != nil || st.Kind != "Status" || st.Status != "Failure" {
			t.Errorf("%s %s: not a Status object: %s", c.method, c.path, body)
		}
		if len(sn.reqs) != before {
			t.Errorf("%s %s was forwarded", c.method, c.path)
		}
	}
	denied := au.byAction("k8s.request")
	if len(denied) < 3 || denied[0].Outcome != airlock.OutcomeDenied {
		t.Fatalf("refusals not audited: %v", denied)
	}
	// A proxy to a pod or service in the grant's namespace is forwarded as
	// it is (RBAC's pods/proxy decides).
	if code, body := do(t, srv, "GET", "/k8s/a/api/v1/namespaces/payments/pods/web-1:8080/proxy/metrics/x", tokA); code != http.StatusOK {
		t.Errorf("pods proxy in payments: %d %s", code, body)
	} else if p := sn.reqs[len(sn.reqs)-1].URL.Path; p != "/api/v1/namespaces/payments/pods/web-1:8080/proxy/metrics/x" {
		t.Errorf("pods proxy reached %s", p)
	}
	// Without namespaces, RBAC alone decides.
	if code, body := do(t, srv, "DELETE", "/k8s/b/api/v1/nodes/n1", tokB); code != http.StatusOK {
		t.Errorf("level without namespaces: %d %s", code, body)
	}
}

// The door's fields are merged into the core's request event: no key may
// appear twice (a non-resource path is the core's "path" alone).
func TestRequestEventHasNoDuplicateKeys(t *testing.T) {
	srv, _, au := newKube(t)
	if code, body := do(t, srv, "GET", "/k8s/b/version", tokB); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	reqs := au.byAction("k8s.request")
	d := string(reqs[len(reqs)-1].Details)
	dec := json.NewDecoder(strings.NewReader(d))
	seen := map[string]bool{}
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		key := k.(string)
		if seen[key] {
			t.Fatalf("key %q twice in %s", key, d)
		}
		seen[key] = true
		var v any
		dec.Decode(&v)
	}
	if !seen["path"] || !seen["verb"] {
		t.Fatalf("details %s", d)
	}
}
