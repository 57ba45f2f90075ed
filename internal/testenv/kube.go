package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// KubeCluster is a running throwaway Kubernetes control plane: a real etcd
// and kube-apiserver on 127.0.0.1, and kwok simulating one node
// (KubeNodeName) that runs no containers but reports pods bound to it as
// Running and serves their logs and exec (see StartPod). There is no
// scheduler and no controller-manager: pods must name their node, and
// objects that controllers would create (a namespace's "default"
// ServiceAccount, garbage collection, namespace deletion) do not happen by
// themselves.
//
// Authentication is by client certificate (a client CA of the cluster's
// own) and service-account token; authorization is Node,RBAC with the
// bootstrap roles (view, edit, admin, cluster-admin…). The namespaces
// "default", "payments" and "airlock-system" exist, each with its
// "default" ServiceAccount.
//
// A KubeCluster is safe for concurrent use by parallel tests.
type KubeCluster struct {
	URL             string // "https://127.0.0.1:PORT"
	CAPEM           []byte // the CA that signed the apiserver's serving certificate
	Kubectl         string // path of the built kubectl
	AdminKubeconfig string // kubeconfig of a system:masters client certificate
	Dir             string // certificates, logs, data; removed when the cluster stops

	clientCA *kubeCA
	http     *http.Client // as admin
	tools    string
	begin    time.Time
	phases   []kubePhase // written only during start

	procsMu sync.Mutex
	procs   []*kubeProc

	tokenOnce sync.Once
	token     string
	tokenErr  error

	certOnce sync.Once
	certPEM  []byte
	keyPEM   []byte
	certErr  error
}

// KubeNodeName is the name of the kwok node of every KubeCluster.
const KubeNodeName = "kwok-node"

// KubeImpersonator names the identities ImpersonatorToken and
// ImpersonatorCert authenticate as, and the RBAC objects that grant them
// impersonation.
const (
	KubeImpersonatorNamespace      = "airlock-system"
	KubeImpersonatorServiceAccount = "airlock-gateway"
	KubeImpersonatorCertUser       = "airlock-gateway-cert"
	KubeImpersonatorClusterRole    = "airlock-gateway-impersonator"
)

// kubeToolsEnv names a directory holding the four programs, overriding
// the cache directory scripts/kube-tools.sh builds into.
const kubeToolsEnv = "AIRLOCK_KUBE_TOOLS"

// kubeStartTimeout bounds each step of starting a cluster.
const kubeStartTimeout = 90 * time.Second

var (
	kubeOnce    sync.Once
	kubeCluster *KubeCluster
	kubeErr     error
	kubeMissing bool // tools not built: skip (or fail under CI)
)

// Kube returns the running throwaway Kubernetes cluster of this test
// binary, starting it on first use; RunMain stops it when the tests end.
//
// The programs come from scripts/kube-tools.sh, which builds them once per
// machine into ${XDG_CACHE_HOME:-~/.cache}/airlock-testenv/. Without them
// the test is skipped with a message saying to run that script, unless
// the environment variable CI is set, in which case it fails (`make test`
// runs the script first under CI).
func Kube(t testing.TB) *KubeCluster {
	t.Helper()
	kubeOnce.Do(func() {
		kubeCluster, kubeErr = startKube()
	})
	if kubeErr != nil {
		if kubeMissing && os.Getenv("CI") == "" {
			t.Skipf("testenv: %v", kubeErr)
		}
		t.Fatalf("testenv: %v", kubeErr)
	}
	return kubeCluster
}

// KubeToolsDir returns the directory that holds (or, once
// scripts/kube-tools.sh has run, will hold) kube-apiserver, kubectl, etcd
// and kwok for the pins in internal/testenv/kubetools: $AIRLOCK_KUBE_TOOLS
// when set, else the cache directory named after the Kubernetes version and
// a hash of the pins' go.mod and go.sum (the script computes the same name).
func KubeToolsDir() (string, error) {
	if d := os.Getenv(kubeToolsEnv); d != "" {
		return d, nil
	}
	mod, err := kubeToolsModule()
	if err != nil {
		return "", err
	}
	gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", err
	}
	gosum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
	if err != nil {
		return "", err
	}
	version := ""
	for line := range strings.Lines(string(gomod)) {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) == 2 && f[0] == "k8s.io/kubernetes" {
			version = strings.TrimPrefix(f[1], "v")
			break
		}
	}
	if version == "" {
		return "", fmt.Errorf("%s/go.mod requires no k8s.io/kubernetes", mod)
	}
	sum := sha256.Sum256(append(gomod, gosum...))
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the Kubernetes test tools (set %s): %w", kubeToolsEnv, err)
	}
	return filepath.Join(cache, "airlock-testenv", "kube-"+version+"-"+hex.EncodeToString(sum[:])[:12]), nil
}

// kubeToolsModule finds internal/testenv/kubetools: beside this source
// file, or above the working directory (a test runs in its package's
// directory).
func kubeToolsModule() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "kubetools")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "internal", "testenv", "kubetools")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("internal/testenv/kubetools not found above %s (set %s to the directory scripts/kube-tools.sh printed)", wd, kubeToolsEnv)
		}
	}
}

// kubeToolFiles are what scripts/kube-tools.sh leaves in the tools
// directory.
var kubeToolFiles = []string{"kube-apiserver", "kubectl", "etcd", "kwok", "kwok-data/done"}

func findKubeTools() (string, error) {
	dir, err := KubeToolsDir()
	if err != nil {
		return "", err
	}
	for _, f := range kubeToolFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("the Kubernetes test tools are not built (%s missing): run scripts/kube-tools.sh from the repository root; it builds kube-apiserver, kubectl, etcd and kwok once per machine (see docs/testing.md)", filepath.Join(dir, f))
		}
	}
	return dir, nil
}

func startKube() (*KubeCluster, error) {
	tools, err := findKubeTools()
	if err != nil {
		kubeMissing = true
		return nil, err
	}
	begin := time.Now()
	dir, err := os.MkdirTemp("", "airlock-kube-")
	if err != nil {
		return nil, err
	}
	c := &KubeCluster{Dir: dir, tools: tools, Kubectl: filepath.Join(tools, "kubectl"), begin: begin}
	c.watchdog()
	kubeRegister(c)
	if err := c.start(); err != nil {
		kubeUnregister(c)
		c.stop()
		return nil, err
	}
	return c, nil
}

var (
	kubeMu      sync.Mutex
	kubeStarted []*KubeCluster
)

func kubeRegister(c *KubeCluster) {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	kubeStarted = append(kubeStarted, c)
}

func kubeUnregister(c *KubeCluster) {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	for i, k := range kubeStarted {
		if k == c {
			kubeStarted = append(kubeStarted[:i], kubeStarted[i+1:]...)
			return
		}
	}
}

// stopKube stops every cluster this process started (RunMain).
func stopKube() {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	for _, c := range kubeStarted {
		c.stop()
	}
	kubeStarted = nil
}

func (c *KubeCluster) start() error {
	pki := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	serverCA, err := newKubeCA("airlock testenv kube server CA")
	if err != nil {
		return err
	}
	c.clientCA, err = newKubeCA("airlock testenv kube client CA")
	if err != nil {
		return err
	}
	c.CAPEM = serverCA.pem
	serverCAFile := filepath.Join(pki, "server-ca.crt")
	clientCAFile := filepath.Join(pki, "client-ca.crt")
	if err := os.WriteFile(serverCAFile, serverCA.pem, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(clientCAFile, c.clientCA.pem, 0o644); err != nil {
		return err
	}
	type pair struct{ cert, key string }
	issue := func(name string, f func() ([]byte, []byte, error)) (pair, error) {
		certPEM, keyPEM, err := f()
		if err != nil {
			return pair{}, err
		}
		cf, kf, err := writePEMPair(pki, name, certPEM, keyPEM)
		return pair{cf, kf}, err
	}
	apiserverCert, err := issue("apiserver", func() ([]byte, []byte, error) {
		return serverCA.serving("kube-apiserver", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	})
	if err != nil {
		return err
	}
	kwokCert, err := issue("kwok", func() ([]byte, []byte, error) { return serverCA.serving(KubeNodeName) })
	if err != nil {
		return err
	}
	kubeletClient, err := issue("apiserver-kubelet-client", func() ([]byte, []byte, error) {
		return c.clientCA.client("kube-apiserver-kubelet-client", "system:masters")
	})
	if err != nil {
		return err
	}
	adminCertPEM, adminKeyPEM, err := c.clientCA.client("airlock-testenv-admin", "system:masters")
	if err != nil {
		return err
	}
	saKey, saPub, err := serviceAccountKeys(pki)
	if err != nil {
		return err
	}

	c.phase("certificates")
	etcdURL, err := c.startEtcd()
	if err != nil {
		return err
	}
	c.phase("etcd")

	cert, err := tls.X509KeyPair(adminCertPEM, adminKeyPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.pem)
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
	}}}
	if err := c.startAPIServer(etcdURL, []string{
		"--tls-cert-file=" + apiserverCert.cert,
		"--tls-private-key-file=" + apiserverCert.key,
		"--client-ca-file=" + clientCAFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--kubelet-certificate-authority=" + serverCAFile,
		"--kubelet-client-certificate=" + kubeletClient.cert,
		"--kubelet-client-key=" + kubeletClient.key,
	}); err != nil {
		return err
	}

	c.phase("kube-apiserver")
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.AdminKubeconfig, c.URL, c.CAPEM, adminCertPEM, adminKeyPEM); err != nil {
		return err
	}

	// The kwok Logs CRD must be served before kwok starts watching it;
	// the bootstrap objects may race the apiserver's own creation of
	// "default", so both are retried until they apply.
	crd := filepath.Join(c.tools, "kwok-data", "crds", "kwok.x-k8s.io_logs.yaml")
	if err := c.retry("install kwok Logs CRD and bootstrap objects", func(ctx context.Context) error {
		if out, err := c.kubectl(ctx, strings.NewReader(kubeBootstrapYAML), "apply", "-f", crd, "-f", "-"); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}); err != nil {
		return err
	}
	c.phase("bootstrap objects")
	if err := c.retry("aggregate the bootstrap cluster roles", c.aggregateClusterRoles); err != nil {
		return err
	}
	c.phase("aggregated roles")
	if err := c.retry("wait for the Logs CRD", func(ctx context.Context) error {
		out, err := c.kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/logs.kwok.x-k8s.io")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}); err != nil {
		return err
	}
	c.phase("Logs CRD established")
	if err := c.startKwok(kwokCert.cert, kwokCert.key); err != nil {
		return err
	}
	c.phase("kwok node Ready")
	return nil
}

// phase notes that a step of the start ended (for StartupReport).
func (c *KubeCluster) phase(name string) {
	c.phases = append(c.phases, kubePhase{name, time.Now()})
}

type kubePhase struct {
	name string
	end  time.Time
}

// StartupReport says how long the cluster took to start, step by step:
// for logs, since the start counts against the suite's time.
func (c *KubeCluster) StartupReport() string {
	var b strings.Builder
	last := c.begin
	for _, p := range c.phases {
		fmt.Fprintf(&b, "%s %v, ", p.name, p.end.Sub(last).Round(time.Millisecond))
		last = p.end
	}
	fmt.Fprintf(&b, "total %v", last.Sub(c.begin).Round(time.Millisecond))
	return b.String()
}

// kubeBootstrapYAML is what a cluster has before any test runs: the
// namespaces with their default ServiceAccounts (no controller-manager
// creates them), the kwok node, and the impersonator identities.
const kubeBootstrapYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: payments}
---
apiVersion: v1
kind: Namespace
metadata: {name: ` + KubeImpersonatorNamespace + `}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: payments}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: ` + KubeImpersonatorNamespace + `}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ` + KubeImpersonatorServiceAccount + `, namespace: ` + KubeImpersonatorNamespace + `}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ` + KubeImpersonatorClusterRole + `}
rules:
- apiGroups: [""]
  resources: [users, groups]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: [userextras/airlock-grant]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ` + KubeImpersonatorClusterRole + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ` + KubeImpersonatorClusterRole + `}
subjects:
- {kind: ServiceAccount, name: ` + KubeImpersonatorServiceAccount + `, namespace: ` + KubeImpersonatorNamespace + `}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ` + KubeImpersonatorCertUser + `}
---
apiVersion: v1
kind: Node
metadata:
  name: ` + KubeNodeName + `
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, kubernetes.io/hostname: ` + KubeNodeName + `}
`

// startEtcd starts a one-member etcd on two free loopback ports and
// returns its client URL once it reports healthy.
func (c *KubeCluster) startEtcd() (string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		client, err1 := freePort()
		peer, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return "", err
		}
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
		data := filepath.Join(c.Dir, fmt.Sprintf("etcd-%d", attempt))
		p, err := c.run("etcd", filepath.Join(c.tools, "etcd"),
			"--name=testenv",
			"--data-dir="+data,
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=testenv="+peerURL,
			"--unsafe-no-fsync", // throwaway data: durability costs time for nothing
			"--log-level=warn",
		)
		if err != nil {
			return "", err
		}
		lastErr = c.waitHTTP(p, func() error {
			resp, err := http.Get(clientURL + "/health")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"true"`)) {
				return fmt.Errorf("etcd /health: %d %s", resp.StatusCode, b)
			}
			return nil
		})
		if lastErr == nil {
			return clientURL, nil
		}
		c.kill(p)
	}
	return "", lastErr
}

// startAPIServer starts kube-apiserver on a free loopback port and waits
// until /readyz (which includes the RBAC bootstrap roles) is ok.
func (c *KubeCluster) startAPIServer(etcdURL string, pkiArgs []string) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
		args := append([]string{
			"--etcd-servers=" + etcdURL,
			"--etcd-prefix=/registry-" + strconv.Itoa(attempt),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
			"--authorization-mode=Node,RBAC",
			"--service-cluster-ip-range=10.96.0.0/16",
			// The endpoints of the "kubernetes" service would be
			// 127.0.0.1, which validation refuses; nothing here needs them.
			"--endpoint-reconciler-type=none",
			"--kubelet-preferred-address-types=InternalIP",
			"--allow-privileged=true",
			"--profiling=false",
			"--v=1",
		}, pkiArgs...)
		p, err := c.run("kube-apiserver", filepath.Join(c.tools, "kube-apiserver"), args...)
		if err != nil {
			return err
		}
		lastErr = c.waitHTTP(p, func() error {
			code, body, err := c.do(context.Background(), http.MethodGet, "/readyz", nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("/readyz: %d %s", code, body)
			}
			return nil
		})
		if lastErr == nil {
			return nil
		}
		c.kill(p)
	}
	return lastErr
}

// startKwok starts kwok managing KubeNodeName, serving the kubelet API
// (logs, exec) with its own serving certificate on a free loopback port,
// and waits until the node is Ready with that port as its kubelet
// endpoint.
func (c *KubeCluster) startKwok(certFile, keyFile string) error {
	execDir := filepath.Join(c.Dir, "exec")
	if err := os.MkdirAll(execDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "pods"), 0o755); err != nil {
		return err
	}
	stages, err := filepath.Glob(filepath.Join(c.tools, "kwok-data", "stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return fmt.Errorf("no kwok stages in %s (rerun scripts/kube-tools.sh): %v", filepath.Join(c.tools, "kwok-data"), err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		conf := filepath.Join(c.Dir, "kwok.yaml")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(kwokConfigYAML, port, port, certFile, keyFile, execDir)), 0o644); err != nil {
			return err
		}
		args := []string{"--kubeconfig=" + c.AdminKubeconfig, "--config=" + conf}
		for _, s := range stages {
			args = append(args, "--config="+s)
		}
		p, err := c.run("kwok", filepath.Join(c.tools, "kwok"), args...)
		if err != nil {
			return err
		}
		lastErr = c.waitHTTP(p, func() error {
			code, body, err := c.do(context.Background(), http.MethodGet, "/api/v1/nodes/"+KubeNodeName, nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("get node: %d %s", code, body)
			}
			var node struct {
				Status struct {
					Conditions []struct{ Type, Status string }
					// kwok's stage template writes the field as "Port".
					DaemonEndpoints struct {
						KubeletEndpoint struct{ Port int }
					}
				}
			}
			if err := json.Unmarshal(body, &node); err != nil {
				return err
			}
			if node.Status.DaemonEndpoints.KubeletEndpoint.Port != port {
				return fmt.Errorf("node kubelet port %d, want %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port, port)
			}
			for _, cond := range node.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" {
					return nil
				}
			}
			return errors.New("node not Ready")
		})
		if lastErr == nil {
			return nil
		}
		c.kill(p)
	}
	return lastErr
}

// kwokConfigYAML configures kwok: the node's address and kubelet port,
// the TLS pair it serves with, the Logs CRD it watches (StartPod creates
// one per pod), exec as a local command for every pod, and port-forward
// to any port of any pod as an echo (a local cat on the stream).
const kwokConfigYAML = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.0/24
  nodeIP: 127.0.0.1
  nodePort: %d
  serverAddress: 127.0.0.1:%d
  tlsCertFile: %s
  tlsPrivateKeyFile: %s
  manageSingleNode: ` + KubeNodeName + `
  enableCRDs: [Logs]
  enableDebuggingHandlers: true
  enableProfilingHandler: false
  # A configuration file gets none of the flags' defaults.
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata: {name: local}
spec:
  execs:
  - local:
      workDir: %s
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata: {name: echo}
spec:
  forwards:
  - command: [cat]
`

// Run runs kubectl as the cluster admin (a system:masters certificate)
// with args and returns its combined output.
func (c *KubeCluster) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := c.kubectl(ctx, nil, args...)
	return string(out), err
}

// Apply applies yaml (one or more documents) as the cluster admin and
// fails the test on error.
func (c *KubeCluster) Apply(t testing.TB, yaml string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if out, err := c.kubectl(ctx, strings.NewReader(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("testenv: kubectl apply: %v\n%s\n--- yaml ---\n%s", err, out, yaml)
	}
}
