package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
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

// wsExec is a minimal WebSocket client of an exec through the gateway:
// it sends masked frames and gathers what the cluster writes to stdout.
type wsExec struct {
	c      *tls.Conn
	mu     sync.Mutex
	stdout bytes.Buffer
	closed chan struct{}
}

func dialWSExec(t *testing.T, h *harness, token, query string) *wsExec {
	t.Helper()
	info, err := api.NewClient(h.url, "").Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	c, err := tls.Dial("tcp", h.cfg.KubeAddr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /k8s/prod-k8s/api/v1/namespaces/payments/pods/web-1/exec?%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n", query, h.cfg.KubeAddr, token)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("exec: %d %s", resp.StatusCode, b)
	}
	e := &wsExec{c: c, closed: make(chan struct{})}
	go func() {
		defer close(e.closed)
		for {
			var hd [2]byte
			if _, err := io.ReadFull(br, hd[:]); err != nil {
				return
			}
			n := uint64(hd[1] & 0x7f)
			switch n {
			case 126:
				var x [2]byte
				io.ReadFull(br, x[:])
				n = uint64(binary.BigEndian.Uint16(x[:]))
			case 127:
				var x [8]byte
				io.ReadFull(br, x[:])
				n = binary.BigEndian.Uint64(x[:])
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			if hd[0]&0x0f == 2 && len(p) > 0 && p[0] == 1 {
				e.mu.Lock()
				e.stdout.Write(p[1:])
				e.mu.Unlock()
			}
		}
	}()
	return e
}

// send writes one masked frame: opcode op, FIN set, payload p.
func (e *wsExec) send(op byte, p []byte) {
	mask := [4]byte{7, 1, 9, 3}
	b := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	default:
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	b = append(b, mask[:]...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	e.c.Write(b)
}

func (e *wsExec) out() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stdout.String()
}

// TestE2EKubeExecUnrecorded: two ways a terminal ran unrecorded on the
// real API server. It reads tty as any value but "0" or "false" (tty=TRUE
// is a terminal), and it takes a text frame from the client as a message
// like any other (golang.org/x/net/websocket), so input sent as one ran
// without the gateway seeing it. Now the first is recorded and the second
// ends the exec before it is relayed.
func TestE2EKubeExecUnrecorded(t *testing.T) {
	k := setupKube(t)
	h, tm := k.h, k.tm
	token := func() string {
		out, err := h.runProc(tm.alice, nil, "kube-credential", "prod-k8s", "--refresh")
		if err != nil {
			t.Fatalf("kube-credential: %v\n%s", err, out)
		}
		var cred struct{ Status struct{ Token string } }
		json.Unmarshal([]byte(out), &cred)
		return cred.Status.Token
	}

	g := h.grant(tm, "prod-k8s", "edit")
	e := dialWSExec(t, h, token(), "command=sh&stdin=true&stdout=true&stderr=true&tty=TRUE")
	e.send(2, []byte("\x00echo upper-$((6*7))\r"))
	waitFor(t, func() bool { return strings.Contains(e.out(), "upper-42") })
	if !strings.Contains(e.out(), "# ") {
		t.Fatalf("tty=TRUE gave no terminal: %q", e.out())
	}
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
	var recorded string
	waitFor(t, func() bool {
		for _, ev := range h.auditEvents(tm.admin, "session.ended") {
			var d struct{ Recordings []airlock.SessionRecording }
			json.Unmarshal(ev.Details, &d)
			if ev.GrantID == g.ID {
				if len(d.Recordings) == 1 {
					recorded = ev.SessionID
				}
				return true
			}
		}
		return false
	})
	if recorded == "" {
		t.Fatal("the tty=TRUE terminal's session has not exactly one recording")
	}
	// (one recording: sessions play needs no --part)
	if out, err := h.runProc(tm.admin, nil, "sessions", "play", recorded, "--speed", "0"); err != nil || !strings.Contains(out, "echo upper-") {
		t.Fatalf("sessions play %s: %v\n%s", recorded, err, out)
	}

	h.grant(tm, "prod-k8s", "edit")
	e = dialWSExec(t, h, token(), "command=sh&stdin=true&stdout=true&stderr=true&tty=true")
	e.send(2, []byte("\x00echo fine-$((6*7))\r"))
	waitFor(t, func() bool { return strings.Contains(e.out(), "fine-42") })
	e.send(1, []byte("\x00echo pwned-$((6*7))\r"))
	e.send(2, []byte("\x00echo after-$((6*7))\r"))
	select {
	case <-e.closed:
	case <-time.After(10 * time.Second):
		t.Errorf("the exec goes on after a text frame")
	}
	if strings.Contains(e.out(), "pwned-42") || strings.Contains(e.out(), "after-42") {
		t.Errorf("input after a text frame ran: %q", e.out())
	}
}
