package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KubePod is a pod on the kwok node. kwok runs no container: the pod's
// log is the file LogFile (AppendLog writes to it, and `kubectl logs -f`
// streams what is appended), and exec runs the command on this machine,
// as the user the tests run as, in a scratch directory of the cluster:
// `kubectl exec POD -- echo hi` prints "hi", and `kubectl exec -it POD --
// sh` is a local sh on a pseudo-terminal that kwok allocates. kwok never
// closes an exec'd command's stdin, so a command that reads it to the end
// waits forever. `kubectl port-forward POD :PORT` reaches, for every
// PORT, an echo: what is sent comes back.
type KubePod struct {
	Namespace string
	Name      string
	Container string // "main"
	LogFile   string // CRI-format log file kwok serves as the container's log
}

// StartPod creates pod name in namespace (creating the namespace and its
// default ServiceAccount if needed) bound to the kwok node, with one
// container "main", and a kwok Logs object pointing its log at an empty
// file; it returns once the pod is Running and its log is served through
// the apiserver. The pod and its Logs object are deleted when t ends.
func (c *KubeCluster) StartPod(t testing.TB, namespace, name string) *KubePod {
	t.Helper()
	p := &KubePod{
		Namespace: namespace,
		Name:      name,
		Container: "main",
		LogFile:   filepath.Join(c.Dir, "pods", namespace+"_"+name+".log"),
	}
	if err := os.WriteFile(p.LogFile, nil, 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: %[1]s}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Logs
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  logs:
  - containers: [main]
    logsFile: %[3]s
    follow: true
---
apiVersion: v1
kind: Pod
metadata:
  name: %[2]s
  namespace: %[1]s
  labels: {app: %[2]s}
spec:
  nodeName: %[4]s
  containers:
  - name: main
    image: airlock-testenv.invalid/kwok-simulated:none # never pulled: kwok runs no containers
`, namespace, name, p.LogFile, KubeNodeName))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.kubectl(ctx, nil, "delete", "--namespace="+namespace, "--ignore-not-found", "--wait=false",
			"pod/"+name, "logs.kwok.x-k8s.io/"+name); err != nil {
			t.Errorf("testenv: delete pod %s/%s: %v: %s", namespace, name, err, out)
		}
	})
	base := "/api/v1/namespaces/" + namespace + "/pods/" + name
	var last string
	Eventually(t, 60*time.Second, func() bool {
		code, body, err := c.do(t.Context(), http.MethodGet, base, nil)
		if err != nil || code != http.StatusOK {
			last = fmt.Sprintf("%d %v %s", code, err, body)
			return false
		}
		var pod struct{ Status struct{ Phase string } }
		if err := json.Unmarshal(body, &pod); err != nil {
			last = err.Error()
			return false
		}
		last = "phase " + pod.Status.Phase
		return pod.Status.Phase == "Running"
	}, "testenv: pod %s/%s not Running after 60s: %s", namespace, name, last)
	// kwok learns of the Logs object through a watch: until it has, the
	// log request fails.
	Eventually(t, 60*time.Second, func() bool {
		code, body, err := c.do(t.Context(), http.MethodGet, base+"/log?container=main", nil)
		last = fmt.Sprintf("%d %v %s", code, err, body)
		return err == nil && code == http.StatusOK
	}, "testenv: log of pod %s/%s not served after 60s: %s", namespace, name, last)
	return p
}

// AppendLog appends lines to the pod's log as the container's stdout, in
// the CRI log format kwok reads (RFC 3339 time, stream, "F", text).
func (p *KubePod) AppendLog(t testing.TB, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		fmt.Fprintf(w, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), l)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatalf("testenv: append to %s: %v", p.LogFile, err)
	}
}

func randomSuffix(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return hex.EncodeToString(b[:])
}
