package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

const kubePolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true}
rules:
  - name: devs-k8s
    who: {groups: [devs]}
    resources: {names: [prod-k8s]}
    access: [view, edit]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// kubeSetup is a real cluster behind a harness with the Kubernetes
// gateway, a kubernetes resource prod-k8s (view: group airlock-view bound
// to the view ClusterRole everywhere; edit: group airlock-edit bound to
// edit in payments only, and limited to payments by Airlock too), and
// alice's kubeconfig context for it.
type kubeSetup struct {
	h          *harness
	tm         *team
	kc         *testenv.KubeCluster
	kubeconfig string
	token      string // Airlock's own credential on the cluster
	pod        *testenv.KubePod
}

func setupKube(t *testing.T) *kubeSetup {
	t.Helper()
	return setupKubeWith(t, time.Now(), kubePolicy)
}

// setupKubeWith is setupKube with the server's (fake) clock starting at
// start (truncated to the second) and the team's policy.
func setupKubeWith(t *testing.T, start time.Time, policy string) *kubeSetup {
	t.Helper()
	needOathtool(t)
	kc := testenv.Kube(t)
	pod := kc.StartPod(t, "payments", "web-1")
	kc.StartPod(t, "default", "other-1")
	kc.BindGroup(t, "airlock-view", "view", "")
	kc.BindGroup(t, "airlock-edit", "edit", "payments")
	clk := &fakeClock{t: start.UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.KubeAddr = freeAddr(t) })
	tm := setupTeam(t, h, policy)
	dir := t.TempDir()
	tokFile, caFile := filepath.Join(dir, "gateway.token"), filepath.Join(dir, "ca.pem")
	token := kc.ImpersonatorToken(t)
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	os.WriteFile(caFile, kc.CAPEM, 0o600)
	h.fresh(tm.admin, tm.adminSecret)
	out, err := h.runProc(tm.admin, nil, "admin", "resources", "add", "prod-k8s", "--kind", "kubernetes", "--addr", kc.URL,
		"--sslrootcert", caFile, "--credential", "view=:file:"+tokFile, "--credential", "edit=:file:"+tokFile,
		"--kube-group", "view=airlock-view", "--kube-group", "edit=airlock-edit", "--namespace", "edit=payments")
	if err != nil {
		t.Fatalf("add kubernetes resource: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(tm.alice, "kubeconfig")
	if out, err := h.runProc(tm.alice, nil, "kubeconfig", "prod-k8s", "--kubeconfig", kubeconfig); err != nil {
		t.Fatalf("airlock kubeconfig: %v\n%s", err, out)
	}
	return &kubeSetup{h: h, tm: tm, kc: kc, kubeconfig: kubeconfig, token: token, pod: pod}
}

// kubectl runs the real kubectl with alice's kubeconfig (its exec plugin
// is this airlock binary, as alice).
func (k *kubeSetup) kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return k.h.runProc(k.tm.alice, []string{"AIRLOCK_KUBECTL=" + k.kc.Kubectl}, append([]string{"kubectl", "prod-k8s", "--"}, args...)...)
}

// kubectlProc starts kubectl with alice's kubeconfig in the background.
func (k *kubeSetup) kubectlProc(t *testing.T, args ...string) *cliProc {
	t.Helper()
	return k.h.startProc(k.tm.alice, nil, []string{"AIRLOCK_KUBECTL=" + k.kc.Kubectl}, append([]string{"kubectl", "prod-k8s", "--"}, args...)...)
}

// TestE2EKube runs the real kubectl through the Kubernetes gateway to a
// real kube-apiserver: no grant, no access; a view grant reads but cannot
// delete, and impersonation headers kubectl sends (--as) are replaced by
// the grant's; every request is audited with what it asked for; `kubectl
// logs -f` streams and is cut by a revoke; an edit grant limited to
// payments cannot touch default; `kubectl get pods -w` is cut at expiry;
// a token for another resource or after its grant is refused; Airlock's
// own credential appears in no kubeconfig, log or audit event.
func TestE2EKube(t *testing.T) {
	k := setupKube(t)
	h, tm := k.h, k.tm

	// The kubeconfig names the gateway and the plugin, never a secret.
	kcfg, _ := os.ReadFile(k.kubeconfig)
	if !strings.Contains(string(kcfg), "kube-credential") || !strings.Contains(string(kcfg), "/k8s/prod-k8s") ||
		strings.Contains(string(kcfg), k.token) || strings.Contains(string(kcfg), "alh_") {
		t.Fatalf("kubeconfig:\n%s", kcfg)
	}
	out, err := h.runProc(tm.alice, []string{"KUBECONFIG=" + k.kubeconfig}, "kube-credential", "prod-k8s")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("kube-credential without a grant: err=%v\n%s", err, out)
	}

	g := h.grant(tm, "prod-k8s", "view")
	// The plugin's answer is an ExecCredential kubectl takes (the kubectl
	// calls below use it); its shape exactly:
	out, err = h.runProc(tm.alice, nil, "kube-credential", "prod-k8s")
	if err != nil {
		t.Fatalf("kube-credential: %v\n%s", err, out)
	}
	// Decoded strictly: nothing but what client.authentication.k8s.io/v1
	// defines.
	var cred struct {
		Kind       string          `json:"kind"`
		APIVersion string          `json:"apiVersion"`
		Spec       json.RawMessage `json:"spec"`
		Status     struct {
			Token               string `json:"token"`
			ExpirationTimestamp string `json:"expirationTimestamp"`
		} `json:"status"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cred); err != nil {
		t.Fatalf("ExecCredential: %v\n%s", err, out)
	}
	exp, perr := time.Parse(time.RFC3339, cred.Status.ExpirationTimestamp)
	if cred.Kind != "ExecCredential" || cred.APIVersion != "client.authentication.k8s.io/v1" || !strings.HasPrefix(cred.Status.Token, "alh_") ||
		perr != nil || exp.Before(h.clock.Now()) || exp.After(h.clock.Now().Add(11*time.Minute)) {
		t.Fatalf("ExecCredential: %+v (%v)", cred, perr)
	}

	out, err = k.kubectl(t, "get", "pods", "-n", "payments")
	if err != nil || !strings.Contains(out, "web-1") {
		t.Fatalf("view: get pods: %v\n%s", err, out)
	}
	// view cannot delete: the cluster's RBAC refuses the impersonated user.
	out, err = k.kubectl(t, "delete", "pod", "web-1", "-n", "payments", "--wait=false")
	if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, `User "alice"`) {
		t.Fatalf("view: delete pod: err=%v\n%s", err, out)
	}
	if out, err := k.kc.Run(t, "get", "pod", "web-1", "-n", "payments"); err != nil {
		t.Fatalf("the pod is gone after a refused delete: %v\n%s", err, out)
	}
	// Impersonation the client asks for is replaced by the grant's: as
	// system:masters this would read secrets; as alice/view it cannot.
	out, err = k.kubectl(t, "--as", "admin", "--as-group", "system:masters", "get", "secrets", "-n", "payments")
	if err == nil || !strings.Contains(out, `User "alice"`) {
		t.Fatalf("client impersonation was not ignored: err=%v\n%s", err, out)
	}

	// view may not port-forward (the cluster's view role has no
	// pods/portforward): refused before any byte is relayed.
	out, err = k.kubectl(t, "port-forward", "-n", "payments", "pod/web-1", ":8080")
	if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, `User "alice"`) {
		t.Fatalf("view: port-forward: err=%v\n%s", err, out)
	}

	// Every request is audited with what it asked for.
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		list, del, status := false, false, false
		for _, e := range h.auditEvents(tm.admin, "k8s.*") {
			var d struct {
				Verb, Resource, Namespace, Name string
				Status                          int
			}
			json.Unmarshal(e.Details, &d)
			switch {
			case e.Action == "k8s.request" && d.Verb == "list" && d.Resource == "pods" && d.Namespace == "payments" && e.GrantID == g.ID && e.SessionID != "":
				list = true
			case e.Action == "k8s.request" && d.Verb == "delete" && d.Name == "web-1":
				del = true
			case e.Action == "k8s.response" && d.Status == http.StatusForbidden:
				status = true
			}
		}
		return list && del && status
	})

	// kubectl logs -f streams what the container writes, and a revoke cuts
	// it at once.
	k.pod.AppendLog(t, "first line")
	logs := k.kubectlProc(t, "logs", "-f", "web-1", "-n", "payments")
	k.pod.AppendLog(t, "second line")
	waitFor(t, func() bool { return strings.Contains(logs.out.String(), "second line") })
	k.pod.AppendLog(t, "third line")
	waitFor(t, func() bool { return strings.Contains(logs.out.String(), "third line") })
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
	select {
	case <-logs.done:
	case <-time.After(3 * time.Second):
		t.Fatalf("kubectl logs -f still running 3 s after the revoke:\n%s", logs.out.String())
	}
	out, err = k.kubectl(t, "get", "pods", "-n", "payments")
	if err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("after revoke: err=%v\n%s", err, out)
	}
	// The revoked grant's token is refused, and a token is only for its
	// own cluster.
	if code, body := kubeRaw(t, h, cred.Status.Token, "prod-k8s", "/api/v1/namespaces/payments/pods"); code != http.StatusUnauthorized {
		t.Fatalf("a revoked grant's token: %d %s", code, body)
	}

	// edit, limited to payments: writes there, refused in default by
	// Airlock before the cluster sees it.
	g2 := h.grant(tm, "prod-k8s", "edit")
	out, err = h.runProc(tm.alice, nil, "kube-credential", "prod-k8s", "--refresh")
	if err != nil {
		t.Fatalf("kube-credential --refresh: %v\n%s", err, out)
	}
	json.Unmarshal([]byte(out), &cred)
	if code, body := kubeRaw(t, h, cred.Status.Token, "other-cluster", "/api/v1/namespaces/payments/pods"); code != http.StatusUnauthorized {
		t.Fatalf("a token used for another resource: %d %s", code, body)
	}
	out, err = k.kubectl(t, "annotate", "pod", "web-1", "-n", "payments", "airlock-test=1")
	if err != nil {
		t.Fatalf("edit: annotate in payments: %v\n%s", err, out)
	}
	out, err = k.kubectl(t, "get", "pods", "-n", "default")
	if err == nil || !strings.Contains(out, "namespace default is outside the grant") {
		t.Fatalf("edit: get pods in default: err=%v\n%s", err, out)
	}
	out, err = k.kubectl(t, "delete", "pod", "other-1", "-n", "default", "--wait=false")
	if err == nil || !strings.Contains(out, "outside the grant") {
		t.Fatalf("edit: delete in default: err=%v\n%s", err, out)
	}
	if out, err := k.kc.Run(t, "get", "pod", "other-1", "-n", "default"); err != nil {
		t.Fatalf("other-1 is gone: %v\n%s", err, out)
	}
	out, err = k.kubectl(t, "port-forward", "-n", "default", "pod/other-1", ":8080")
	if err == nil || !strings.Contains(out, "outside the grant") {
		t.Fatalf("edit: port-forward in default: err=%v\n%s", err, out)
	}
	out, err = k.kubectl(t, "exec", "web-1", "-n", "payments", "--", "echo", "hello-from-exec")
	if err != nil || !strings.Contains(out, "hello-from-exec") {
		t.Fatalf("edit: exec: %v\n%s", err, out)
	}

	// kubectl port-forward streams through the gateway; its bytes are in
	// its k8s.response once it ends.
	pf := k.kubectlProc(t, "port-forward", "-n", "payments", "pod/web-1", ":8080")
	var local string
	waitFor(t, func() bool {
		for _, l := range strings.Split(pf.out.String(), "\n") {
			if a, ok := strings.CutPrefix(l, "Forwarding from "); ok && strings.HasPrefix(a, "127.0.0.1:") {
				local, _, _ = strings.Cut(a, " ")
				return true
			}
		}
		return false
	})
	conn, err := net.DialTimeout("tcp", local, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, "ping through airlock\n")
	pfr := bufio.NewReader(conn)
	if line, err := pfr.ReadString('\n'); err != nil || line != "ping through airlock\n" {
		t.Fatalf("port-forward echo: %q %v\n%s", line, err, pf.out.String())
	}
	// The forwarded connection stays open: the grant's end below cuts it.
	pfCut := make(chan error, 1)
	go func() {
		_, err := pfr.ReadString('\n')
		pfCut <- err
	}()

	// kubectl exec -it runs a shell on a terminal, recorded; kubectl get
	// pods -w watches; the grant's end cuts both, and the terminal is told
	// why first.
	// A first exec -it ends on its own; each has a recording of its own.
	first := k.execTTY(t, "exec", "-it", "web-1", "-n", "payments", "--", "sh")
	fmt.Fprint(first.pty, "echo first-$((2*3))\n")
	waitFor(t, func() bool { return strings.Contains(first.screen(), "first-6") })
	fmt.Fprint(first.pty, "exit\n")
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the first kubectl exec -it did not end at exit:\n%s", first.screen())
	}
	term := k.execTTY(t, "exec", "-it", "web-1", "-n", "payments", "--", "sh")
	fmt.Fprint(term.pty, "echo rec-$((6*7))\n")
	waitFor(t, func() bool { return strings.Contains(term.screen(), "rec-42") })
	watch := k.kubectlProc(t, "get", "pods", "-w", "-n", "payments")
	waitFor(t, func() bool { return strings.Contains(watch.out.String(), "web-1") })
	h.clock.Advance(2 * time.Hour)
	for what, done := range map[string]<-chan struct{}{"kubectl get pods -w": watch.done, "kubectl exec -it": term.done} {
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("%s still running 3 s after the grant's end:\n%s%s", what, watch.out.String(), term.screen())
		}
	}
	select {
	case err := <-pfCut:
		// Whatever kubectl does with the lost stream, nothing more comes
		// through: the connection ends (EOF or reset), not the deadline.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("port-forward connection not cut by the grant's end: %v\n%s", err, pf.out.String())
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("port-forward connection still open 3 s after the grant's end:\n%s", pf.out.String())
	}
	pf.kill()
	screen := term.finalScreen(t)
	h.fresh(tm.admin, tm.adminSecret)
	if !strings.Contains(screen, "[airlock] "+airlock.EndGrantExpired.Text()+": this session is closed") {
		// What the gateway noted of the exec says which side lost it.
		var execs []string
		for _, e := range h.auditEvents(tm.admin, "k8s.response") {
			if strings.Contains(string(e.Details), `"stdin_bytes"`) {
				execs = append(execs, string(e.Details))
			}
		}
		t.Fatalf("the terminal was not told why it closed:\n%s\nthe execs' k8s.response: %s", screen, strings.Join(execs, "\n"))
	}
	var recorded string
	var parts []airlock.SessionRecording
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "session.ended") {
			var d struct {
				EndReason  string                     `json:"end_reason"`
				Recordings []airlock.SessionRecording `json:"recordings"`
			}
			json.Unmarshal(e.Details, &d)
			if e.GrantID == g2.ID && d.EndReason == "grant_expired" && len(d.Recordings) > 0 {
				recorded, parts = e.SessionID, d.Recordings
				return true
			}
		}
		return false
	})
	if len(parts) != 2 || parts[0].ID != recorded+"-1" || parts[1].ID != recorded+"-2" || parts[0].SHA256 == "" || parts[0].SHA256 == parts[1].SHA256 {
		t.Fatalf("session %s's recordings: %+v; want one per exec -it", recorded, parts)
	}
	// The port-forward is a k8s.request, and its k8s.response (same
	// session, same number) carries the bytes each way.
	var pfN float64
	var pfSession string
	for _, e := range h.auditEvents(tm.admin, "k8s.request") {
		var d struct {
			N           float64 `json:"n"`
			Subresource string  `json:"subresource"`
		}
		json.Unmarshal(e.Details, &d)
		if d.Subresource == "portforward" && e.GrantID == g2.ID {
			pfN, pfSession = d.N, e.SessionID
		}
	}
	pfBytes := false
	for _, e := range h.auditEvents(tm.admin, "k8s.response") {
		var d struct {
			N        float64 `json:"n"`
			BytesIn  int64   `json:"bytes_in"`
			BytesOut int64   `json:"bytes_out"`
		}
		json.Unmarshal(e.Details, &d)
		if e.SessionID == pfSession && d.N == pfN {
			pfBytes = d.BytesIn >= int64(len("ping through airlock\n")) && d.BytesOut >= int64(len("ping through airlock\n"))
			if !pfBytes {
				t.Errorf("port-forward response: %s", e.Details)
			}
		}
	}
	if pfSession == "" || !pfBytes {
		t.Fatalf("no k8s.request/k8s.response pair with bytes for the port-forward (session %q n %v)", pfSession, pfN)
	}
	// The exec's exit and what it ran are in its events.
	execSeen := false
	for _, e := range h.auditEvents(tm.admin, "k8s.request") {
		var d struct {
			Subresource string
			Command     []string
			TTY         bool
		}
		json.Unmarshal(e.Details, &d)
		if d.Subresource == "exec" && d.TTY && strings.Join(d.Command, " ") == "sh" {
			execSeen = true
		}
	}
	if !execSeen {
		t.Fatal("no k8s.request for the exec -it with its command")
	}
	// Each recording replays on its own (hash-checked by the CLI); which
	// one must be said.
	out, err = h.runProc(tm.admin, nil, "sessions", "play", recorded, "--part", "1", "--speed", "0")
	if err != nil || !strings.Contains(out, "first-6") || strings.Contains(out, "rec-42") {
		t.Fatalf("sessions play %s --part 1: %v\n%s", recorded, err, out)
	}
	out, err = h.runProc(tm.admin, nil, "sessions", "play", recorded, "--part", "2", "--speed", "0")
	if err != nil || !strings.Contains(out, "rec-42") || !strings.Contains(out, "echo rec-") || strings.Contains(out, "first-6") {
		t.Fatalf("sessions play %s --part 2: %v\n%s", recorded, err, out)
	}
	out, err = h.runProc(tm.admin, nil, "sessions", "play", recorded, "--speed", "0")
	if err == nil || !strings.Contains(out, "has 2 recordings") {
		t.Fatalf("sessions play %s without --part: %v\n%s", recorded, err, out)
	}
	// The evidence pack carries both, each checked against the end.
	pack := filepath.Join(t.TempDir(), "pack.zip")
	h.fresh(tm.admin, tm.adminSecret)
	// (made once a checkpoint covers the grant's last event)
	waitFor(t, func() bool { _, err := h.run(tm.admin, "", "evidence", g2.ID, "-o", pack); return err == nil })
	if out := h.must(tm.admin, "", "evidence", "verify", pack); !strings.Contains(out, "2 recordings verified") {
		t.Fatalf("evidence verify:\n%s", out)
	}

	// Airlock's own credential is nowhere a user or the audit can see it.
	if strings.Contains(h.logs.String(), k.token) {
		t.Fatal("the server log carries the gateway's cluster credential")
	}
	export := h.must(tm.admin, "", "--output", "json", "audit", "tail", "-n", "1000")
	if strings.Contains(export, k.token) || strings.Contains(export, "alh_") {
		t.Fatal("the audit log carries a credential or a gateway token")
	}
	for _, f := range []string{k.kubeconfig} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(k.token)) {
			t.Fatalf("%s carries the gateway's cluster credential", f)
		}
	}
}

// ttyProc is a CLI process on a pseudo-terminal.
type ttyProc struct {
	pty     *os.File
	done    chan struct{} // the process has exited
	drained chan struct{} // everything it wrote to the terminal has been read
	mu      sync.Mutex
	buf     strings.Builder
}

func (p *ttyProc) screen() string { p.mu.Lock(); defer p.mu.Unlock(); return p.buf.String() }

// finalScreen is the whole screen once the process has exited: the reader
// may not yet have read the last output when the exit is seen.
func (p *ttyProc) finalScreen(t *testing.T) string {
	t.Helper()
	select {
	case <-p.drained:
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal still open 10 s after its process ended:\n%s", p.screen())
	}
	return p.screen()
}

// execTTY runs airlock kubectl on a terminal of its own (kubectl exec -it
// needs one).
func (k *kubeSetup) execTTY(t *testing.T, args ...string) *ttyProc {
	t.Helper()
	master, slave, err := testenv.OpenPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	cmd := k.h.command(k.tm.alice, []string{"AIRLOCK_KUBECTL=" + k.kc.Kubectl}, append([]string{"kubectl", "prod-k8s", "--"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &ttyProc{pty: master, done: make(chan struct{}), drained: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		defer close(p.drained)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// kubeRaw sends one API request with token straight to the gateway.
func kubeRaw(t *testing.T, h *harness, token, resource, path string) (int, string) {
	t.Helper()
	info, err := api.NewClient(h.url, "").Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+h.cfg.KubeAddr+"/k8s/"+resource+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("kube gateway: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
