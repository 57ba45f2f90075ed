package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/api"
)

// kubeDo sends one request through the Kubernetes gateway with token,
// the path as written (not cleaned), and extra headers in pairs.
func kubeDo(t *testing.T, h *harness, token, method, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	info, err := api.NewClient(h.url, "").Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+h.cfg.KubeAddr+"/k8s/prod-k8s"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1]) // as written: no canonical form
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestE2EKubeAttacks: an edit grant limited to payments, against the real
// API server, tries to leave its namespace, to be someone else, and to
// get Airlock's own credential back; each is refused (by the gateway
// before the cluster, or by the cluster's RBAC as alice).
func TestE2EKubeAttacks(t *testing.T) {
	k := setupKube(t)
	h, tm := k.h, k.tm
	h.grant(tm, "prod-k8s", "edit")
	out, err := h.runProc(tm.alice, nil, "kube-credential", "prod-k8s")
	if err != nil {
		t.Fatalf("kube-credential: %v\n%s", err, out)
	}
	var cred struct{ Status struct{ Token string } }
	json.Unmarshal([]byte(out), &cred)
	tok := cred.Status.Token

	check := func(method, path, body string, want int, hdr ...string) string {
		t.Helper()
		code, rh, b := kubeDo(t, h, tok, method, path, body, hdr...)
		if code != want {
			t.Errorf("%s %s %v: %d, want %d: %s", method, path, hdr, code, want, b)
		}
		raw, _ := json.Marshal(rh)
		if strings.Contains(b+string(raw), k.token) {
			t.Errorf("%s %s: Airlock's own credential in the answer", method, path)
		}
		return b
	}
	// Leaving payments by the path or the query: refused before the cluster.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/namespaces/default/pods", 403},
		{"GET", "/api/v1/namespaces/payments/../default/pods", 400},
		{"GET", "/api/v1/namespaces/payments/%2E%2E/default/pods", 400},
		{"GET", "/api/v1/namespaces/%64efault/pods", 400},
		{"GET", "/api/v1/namespaces/pay%2Fments/pods", 400},
		{"GET", "/api/v1//namespaces/default/pods", 400},
		{"GET", "/api/v1/./namespaces/default/pods", 400},
		{"GET", "/api/v1/namespaces/Default/pods", 403},
		{"GET", "/API/v1/namespaces/default/pods", 403},
		{"GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault", 403},
		{"GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Dpayments", 403},
		{"GET", "/api/v1/watch/namespaces/default/pods", 403},
		{"GET", "/api/v1/watch/pods", 403},
		{"GET", "/api/v1/namespaces/default/pods?watch=1", 403},
		{"HEAD", "/api/v1/namespaces/default/pods", 403},
		{"OPTIONS", "/api/v1/namespaces/default/pods", 403},
		{"DELETE", "/api/v1/namespaces/default/pods/other-1?dryRun=All", 403},
		{"GET", "/api/v1/nodes", 403},
		{"GET", "/api/v1/nodes/kwok-node/proxy/pods", 403},
		{"GET", "/api/v1/nodes/kwok-node/proxy", 403},
		{"GET", "/api/v1/namespaces/default/services/kubernetes/proxy/api", 403},
		{"GET", "/api/v1/namespaces/default/pods/other-1/proxy/", 403},
		{"GET", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", 403},
		{"GET", "/apis/apps/v1/namespaces/default/deployments", 403},
		{"GET", "/metrics", 403},
		{"GET", "/logs/", 403},
		{"GET", "/debug/pprof/", 403},
	} {
		check(c.method, c.path, "", c.want)
	}
	if out, err := k.kc.Run(t, "get", "pod", "other-1", "-n", "default"); err != nil {
		t.Fatalf("other-1 is gone: %v\n%s", err, out)
	}
	// A method override header is not a method to the API server: this is
	// a get, and the pod stays.
	check("GET", "/api/v1/namespaces/payments/pods/web-1", "", 200, "X-HTTP-Method-Override", "DELETE", "X-Http-Method", "DELETE")
	if out, err := k.kc.Run(t, "get", "pod", "web-1", "-n", "payments"); err != nil {
		t.Fatalf("web-1 is gone after a method override: %v\n%s", err, out)
	}

	// Whoever the client claims to be, the cluster sees alice with the
	// grant's groups and extra only: every spelling of impersonation the
	// client sends is dropped.
	review := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	b := check("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review, 201,
		"Impersonate-User", "admin", "impersonate-user", "admin2", "IMPERSONATE-GROUP", "system:masters",
		"Impersonate-Group", "system:masters", "Impersonate-Uid", "0", "Impersonate-Extra-Scopes", "all",
		"Impersonate-Extra-Airlock-Grant", "gra_forged", "X-Remote-User", "admin", "X-Remote-Group", "system:masters")
	var rev struct {
		Status struct {
			UserInfo struct {
				Username string
				UID      string
				Groups   []string
				Extra    map[string][]string
			}
		}
	}
	if err := json.Unmarshal([]byte(b), &rev); err != nil {
		t.Fatalf("selfsubjectreview: %v %s", err, b)
	}
	ui := rev.Status.UserInfo
	if ui.Username != "alice" || ui.UID != "" || strings.Contains(strings.Join(ui.Groups, ","), "system:masters") ||
		len(ui.Extra["scopes"]) != 0 || len(ui.Extra["airlock-grant"]) != 1 || ui.Extra["airlock-grant"][0] == "gra_forged" {
		t.Errorf("the cluster saw %+v", ui)
	}
	// The caller's own access reviews are let through, and answer only
	// for alice: edit in payments, nothing in default.
	ssar := func(ns string) bool {
		b := check("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":"`+ns+`","verb":"delete","resource":"pods"}}}`, 201)
		var r struct{ Status struct{ Allowed bool } }
		json.Unmarshal([]byte(b), &r)
		return r.Status.Allowed
	}
	if !ssar("payments") || ssar("default") {
		t.Errorf("selfsubjectaccessreviews: payments %v, default %v", ssar("payments"), ssar("default"))
	}
	// Reviews of anyone else are not.
	check("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
		`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"admin","resourceAttributes":{"verb":"get","resource":"secrets"}}}`, 403)
	check("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}`, 403)

	// Airlock's own credential is in no answer, error or not.
	for _, p := range []string{"/api/v1/namespaces/payments/pods/nope", "/api/v1/namespaces/payments/secrets", "/api/v1/namespaces/payments/pods/web-1/proxy/x"} {
		_, rh, b := kubeDo(t, h, tok, "GET", p, "")
		raw, _ := json.Marshal(rh)
		if strings.Contains(b+string(raw), k.token) {
			t.Errorf("%s: Airlock's credential in the answer", p)
		}
	}
	// Nor does a request without a token, or with another's, get anywhere.
	if code, _, _ := kubeDo(t, h, "alh_forged", "GET", "/api/v1/namespaces/payments/pods", ""); code != 401 {
		t.Errorf("a forged token: %d", code)
	}
}
