package testenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestKube(t *testing.T) {
	k := Kube(t)
	t.Logf("cluster at %s started: %s", k.URL, k.StartupReport())
	if !strings.HasPrefix(k.URL, "https://127.0.0.1:") || len(k.CAPEM) == 0 || k.AdminKubeconfig == "" {
		t.Fatalf("bad cluster: %+v", k)
	}
	pod := k.StartPod(t, "payments", "web-1")

	t.Run("admin/get-pods", func(t *testing.T) {
		out, err := k.Run(t, "get", "pods", "--namespace=payments", "--output=custom-columns=NAME:.metadata.name,PHASE:.status.phase,NODE:.spec.nodeName", "--no-headers")
		if err != nil {
			t.Fatalf("kubectl get pods: %v\n%s", err, out)
		}
		if f := strings.Fields(out); len(f) != 3 || f[0] != "web-1" || f[1] != "Running" || f[2] != KubeNodeName {
			t.Fatalf("kubectl get pods = %q, want web-1 Running %s", out, KubeNodeName)
		}
	})

	t.Run("bootstrap/namespaces-and-roles", func(t *testing.T) {
		out, err := k.Run(t, "get", "namespace/default", "namespace/payments", "clusterrole/view", "clusterrole/edit",
			"serviceaccount/default", "--namespace=payments", "--output=name")
		if err != nil {
			t.Fatalf("kubectl get: %v\n%s", err, out)
		}
		want := "namespace/default\nnamespace/payments\nclusterrole.rbac.authorization.k8s.io/view\nclusterrole.rbac.authorization.k8s.io/edit\nserviceaccount/default\n"
		if out != want {
			t.Fatalf("kubectl get = %q, want %q", out, want)
		}
	})

	// kubectl as the gateway: its own credentials, no kubeconfig.
	token := k.ImpersonatorToken(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, k.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := k.ImpersonatorCert(t)
	certFile, keyFile, err := writePEMPair(t.TempDir(), "gateway", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string][]string{
		"token": {"--token=" + token},
		"cert":  {"--client-certificate=" + certFile, "--client-key=" + keyFile},
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(k.CAPEM)
	// No client certificate: the apiserver tries x509 before tokens, so
	// the admin's client would authenticate as admin whatever the token.
	tokenClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	k.BindGroup(t, "view-group", "view", "payments")
	for name, cred := range creds {
		gateway := func(t *testing.T, args ...string) (string, error) {
			t.Helper()
			return kubectlAs(t, k, caFile, cred, args...)
		}
		t.Run("impersonator/"+name+"/cannot-list-pods-itself", func(t *testing.T) {
			out, err := gateway(t, "get", "pods", "--namespace=payments")
			if err == nil || !strings.Contains(out, "Forbidden") {
				t.Fatalf("gateway get pods without impersonation: err=%v, output %q; want Forbidden", err, out)
			}
		})
		t.Run("impersonator/"+name+"/as-bound-group", func(t *testing.T) {
			out, err := gateway(t, "--as=alice", "--as-group=view-group", "get", "pods", "--namespace=payments", "--output=name")
			if err != nil || out != "pod/web-1\n" {
				t.Fatalf("gateway get pods as alice/view-group: err=%v, output %q; want pod/web-1", err, out)
			}
		})
		t.Run("impersonator/"+name+"/as-unbound-group", func(t *testing.T) {
			out, err := gateway(t, "--as=bob", "--as-group=nobody", "get", "pods", "--namespace=payments")
			if err == nil || !strings.Contains(out, `User "bob" cannot list resource "pods"`) {
				t.Fatalf("gateway get pods as bob/nobody: err=%v, output %q; want bob forbidden", err, out)
			}
		})
		t.Run("impersonator/"+name+"/view-is-namespaced", func(t *testing.T) {
			out, err := gateway(t, "--as=alice", "--as-group=view-group", "get", "pods", "--namespace=default")
			if err == nil || !strings.Contains(out, `User "alice" cannot list resource "pods"`) {
				t.Fatalf("gateway get pods in default as alice/view-group: err=%v, output %q; want forbidden", err, out)
			}
		})
	}

	t.Run("impersonator/edit-cluster-wide", func(t *testing.T) {
		k.BindGroup(t, "edit-group", "edit", "")
		out, err := kubectlAs(t, k, caFile, creds["token"], "--as=carol", "--as-group=edit-group", "create", "configmap", "carols", "--namespace=default", "--from-literal=a=b")
		if err != nil {
			t.Fatalf("gateway create configmap as carol/edit-group: %v\n%s", err, out)
		}
		out, err = kubectlAs(t, k, caFile, creds["token"], "--as=carol", "--as-group=edit-group", "create", "clusterrolebinding", "escalate", "--clusterrole=cluster-admin", "--user=carol")
		if err == nil || !strings.Contains(out, `User "carol" cannot create resource "clusterrolebindings"`) {
			t.Fatalf("gateway create clusterrolebinding as carol/edit-group: err=%v, output %q; want Forbidden", err, out)
		}
	})

	t.Run("pods/new-namespace-and-delete", func(t *testing.T) {
		k.StartPod(t, "team-x", "job-1")
		// kwok's pod-delete stage finishes the deletion a kubelet would.
		out, err := k.Run(t, "delete", "pod", "job-1", "--namespace=team-x", "--timeout=60s")
		if err != nil {
			t.Fatalf("kubectl delete pod: %v\n%s", err, out)
		}
	})

	t.Run("pods/namespace-without-default-serviceaccount", func(t *testing.T) {
		// No controller-manager creates "default": the ServiceAccount
		// admission plugin refuses the pod (StartPod creates it).
		k.Apply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: bare}\n")
		out, err := k.Run(t, "run", "lonely", "--namespace=bare", "--image=none", "--overrides={\"spec\":{\"nodeName\":\""+KubeNodeName+"\"}}")
		if err == nil || !strings.Contains(out, `serviceaccount "default" not found`) {
			t.Fatalf("pod in a namespace without default ServiceAccount: err=%v, output %q; want refused", err, out)
		}
	})

	t.Run("impersonator/user-extras", func(t *testing.T) {
		// kubectl has no flag for user extras; the gateway sends the
		// headers itself, so check the grant the same way.
		for _, tc := range []struct {
			extra string
			want  int
		}{
			{"Airlock-Grant", http.StatusOK},
			{"Something-Else", http.StatusForbidden},
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, k.URL+"/api/v1/namespaces/payments/pods", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Impersonate-User", "alice")
			req.Header.Set("Impersonate-Group", "view-group")
			req.Header.Set("Impersonate-Extra-"+tc.extra, "g-123")
			resp, err := tokenClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("impersonate extra %s: %d %s, want %d", tc.extra, resp.StatusCode, body, tc.want)
			}
		}
	})

	t.Run("impersonator/token-identity", func(t *testing.T) {
		review := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
		b, _ := json.Marshal(review)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, k.URL+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := tokenClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res struct {
			Status struct{ UserInfo struct{ Username string } }
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			t.Fatal(err)
		}
		if want := "system:serviceaccount:" + KubeImpersonatorNamespace + ":" + KubeImpersonatorServiceAccount; res.Status.UserInfo.Username != want {
			t.Fatalf("token authenticates as %q, want %q", res.Status.UserInfo.Username, want)
		}
	})

	t.Run("logs/follow", func(t *testing.T) {
		pod.AppendLog(t, "before-follow")
		out, err := k.Run(t, "logs", "--namespace=payments", "web-1")
		if err != nil || out != "before-follow\n" {
			t.Fatalf("kubectl logs: err=%v, output %q", err, out)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cmd := exec.CommandContext(ctx, k.Kubectl, "--kubeconfig="+k.AdminKubeconfig, "logs", "--follow", "--namespace=payments", "web-1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cancel()
			_ = cmd.Wait()
		}()
		lines := make(chan string, 100)
		go func() {
			s := bufio.NewScanner(stdout)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
		}()
		expect := func(want string) {
			t.Helper()
			select {
			case got, ok := <-lines:
				if !ok || got != want {
					t.Fatalf("kubectl logs -f: got %q (open %v), want %q", got, ok, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("kubectl logs -f: no %q after 30s", want)
			}
		}
		expect("before-follow")
		pod.AppendLog(t, "appended-while-following")
		expect("appended-while-following")
	})

	t.Run("exec/echo", func(t *testing.T) {
		out, err := k.Run(t, "exec", "--namespace=payments", "web-1", "--", "echo", "hi")
		if err != nil || out != "hi\n" {
			t.Fatalf("kubectl exec -- echo hi: err=%v, output %q", err, out)
		}
	})

	t.Run("exec/stdin", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), k.Kubectl, "--kubeconfig="+k.AdminKubeconfig, "exec", "-i", "--namespace=payments", "web-1", "--", "sh", "-c", "read line; echo \"$line\" | tr a-z A-Z")
		cmd.Stdin = strings.NewReader("shout\n")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "SHOUT\n" {
			t.Fatalf("kubectl exec -i: err=%v, output %q", err, out)
		}
	})

	t.Run("exec/tty", func(t *testing.T) {
		master, slave, err := OpenPTY()
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err)
		}
		defer master.Close()
		cmd := exec.CommandContext(t.Context(), k.Kubectl, "--kubeconfig="+k.AdminKubeconfig, "exec", "-i", "-t", "--namespace=payments", "web-1", "--", "sh")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		var (
			mu  sync.Mutex
			buf strings.Builder
		)
		go func() {
			b := make([]byte, 4096)
			for {
				n, err := master.Read(b)
				mu.Lock()
				buf.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		screen := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
		// The arithmetic proves a shell ran it (the echo of the typed
		// line holds only the expression); test -t proves the remote sh
		// has a terminal.
		fmt.Fprint(master, "test -t 0 && echo tty-$((6*7))\n")
		Eventually(t, 30*time.Second, func() bool { return strings.Contains(screen(), "tty-42") },
			"no tty-42 from kubectl exec -it sh; screen:\n%s", screen())
		fmt.Fprint(master, "exit\n")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("kubectl exec -it exited: %v; screen:\n%s", err, screen())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("kubectl exec -it did not exit after exit; screen:\n%s", screen())
		}
	})
}

// kubectlAs runs kubectl with the gateway's credentials cred and no
// kubeconfig.
func kubectlAs(t *testing.T, k *KubeCluster, caFile string, cred []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), k.Kubectl, append(append([]string{
		"--server=" + k.URL,
		"--certificate-authority=" + caFile,
	}, cred...), args...)...)
	// An absent file: no kubeconfig credentials mix in.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(t.TempDir(), "none"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKubePortForward(t *testing.T) {
	k := Kube(t)
	k.StartPod(t, "payments", "echo-1")
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, k.Kubectl, "--kubeconfig="+k.AdminKubeconfig, "port-forward", "--namespace=payments", "pod/echo-1", ":8080")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	// "Forwarding from 127.0.0.1:PORT -> 8080"
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if a, ok := strings.CutPrefix(s.Text(), "Forwarding from 127.0.0.1:"); ok {
				addr <- "127.0.0.1:" + strings.Fields(a)[0]
			}
		}
	}()
	var local string
	select {
	case local = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl port-forward printed no local address after 30s")
	}
	conn, err := net.DialTimeout("tcp", local, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "ping through the apiserver\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "ping through the apiserver\n" {
		t.Fatalf("port-forward echo: %q, %v", line, err)
	}
}

func TestKubeToolsDirMatchesScript(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not found")
	}
	t.Setenv(kubeToolsEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir, err := KubeToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	// Ask the script for its directory without building: every program
	// it would build is already "there".
	for _, f := range []string{"kube-apiserver", "kubectl", "etcd", "kwok"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "kwok-data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kwok-data", "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := kubeToolsModule()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(mod, "..", "..", "..", "scripts", "kube-tools.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/kube-tools.sh: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != dir {
		t.Fatalf("scripts/kube-tools.sh builds into %s, KubeToolsDir says %s", got, dir)
	}
}
