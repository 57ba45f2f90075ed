package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
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
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
// one per pod), and exec as a local command for every pod.
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
`

// kubeProc is one program of a cluster.
type kubeProc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// run starts a program of the cluster with its output in DIR/NAME.log.
func (c *KubeCluster) run(name, bin string, args ...string) (*kubeProc, error) {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.Dir
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &kubeProc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	// The watchdog kills what is listed here if this process dies.
	if pf, err := os.OpenFile(filepath.Join(c.Dir, "pids"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintln(pf, cmd.Process.Pid)
		pf.Close()
	}
	c.procsMu.Lock()
	c.procs = append(c.procs, p)
	c.procsMu.Unlock()
	return p, nil
}

// waitHTTP polls ready until it succeeds, the program exits, or
// kubeStartTimeout passes; the error carries the tail of its log.
func (c *KubeCluster) waitHTTP(p *kubeProc, ready func() error) error {
	var err error
	exited := false
	ok := PollEvery(50*time.Millisecond, kubeStartTimeout, func() bool {
		select {
		case <-p.exited:
			exited = true
			return true
		default:
		}
		err = ready()
		return err == nil
	})
	switch {
	case exited:
		return fmt.Errorf("%s exited during start: %v\n--- tail of %s ---\n%s", p.name, p.err, p.log, tail(p.log, 40))
	case !ok:
		return fmt.Errorf("%s not ready after %v: %v\n--- tail of %s ---\n%s", p.name, kubeStartTimeout, err, p.log, tail(p.log, 40))
	}
	return nil
}

// retry runs f (with a per-call timeout) until it succeeds or
// kubeStartTimeout passes.
func (c *KubeCluster) retry(what string, f func(ctx context.Context) error) error {
	var err error
	ok := PollEvery(200*time.Millisecond, kubeStartTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err = f(ctx)
		return err == nil
	})
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (c *KubeCluster) kill(p *kubeProc) {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop kills the programs (the data is throwaway: no graceful shutdown)
// and removes the directory.
func (c *KubeCluster) stop() {
	c.procsMu.Lock()
	procs := c.procs
	c.procs = nil
	c.procsMu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		c.kill(procs[i])
	}
	os.RemoveAll(c.Dir)
}

// watchdog starts a shell, in a process group of its own, that kills the
// cluster's programs (listed in DIR/pids) and removes DIR once this test
// process is gone, however it went (see PG.watchdog).
func (c *KubeCluster) watchdog() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	defer r.Close()
	// A pid is killed only while its command line still names DIR (every
	// program of the cluster gets a path in it): a pid of a program that
	// died earlier may belong to someone else by now.
	script := `cat >/dev/null
[ -f "$0/pids" ] && for p in $(cat "$0/pids"); do
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$0" && kill -9 "$p" 2>/dev/null
done
rm -rf "$0"`
	cmd := exec.Command("/bin/sh", "-c", script, c.Dir)
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	lifelines = append(lifelines, w)
	go func() { _ = cmd.Wait() }()
}

// do sends a request to the apiserver as admin.
func (c *KubeCluster) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// kubectl runs kubectl as admin.
func (c *KubeCluster) kubectl(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{
		"--kubeconfig=" + c.AdminKubeconfig,
		"--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache"),
	}, args...)...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// writeKubeconfig writes a kubeconfig (JSON, which kubectl reads as YAML)
// for one cluster and one client certificate.
func writeKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte) error {
	conf := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{"name": "testenv", "cluster": map[string]any{
			"server":                     server,
			"certificate-authority-data": caPEM,
		}}},
		"users": []any{map[string]any{"name": "testenv", "user": map[string]any{
			"client-certificate-data": certPEM,
			"client-key-data":         keyPEM,
		}}},
		"contexts":        []any{map[string]any{"name": "testenv", "context": map[string]any{"cluster": "testenv", "user": "testenv"}}},
		"current-context": "testenv",
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

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

// ImpersonatorToken returns a service-account token (TokenRequest, valid
// 48h) of ServiceAccount airlock-gateway in namespace airlock-system. Its
// only RBAC grant beyond what every authenticated user has (discovery,
// SelfSubjectReview…) is ClusterRole airlock-gateway-impersonator:
// impersonate on users, groups and userextras/airlock-grant. Every call
// returns the same token.
func (c *KubeCluster) ImpersonatorToken(t testing.TB) string {
	t.Helper()
	c.tokenOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := c.kubectl(ctx, nil, "create", "token", KubeImpersonatorServiceAccount,
			"--namespace="+KubeImpersonatorNamespace, "--duration=48h")
		if err != nil {
			c.tokenErr = fmt.Errorf("kubectl create token: %w: %s", err, out)
			return
		}
		c.token = strings.TrimSpace(string(out))
	})
	if c.tokenErr != nil {
		t.Fatalf("testenv: %v", c.tokenErr)
	}
	return c.token
}

// ImpersonatorCert returns a client certificate and its key (PEM) for the
// user airlock-gateway-cert, signed by the cluster's client CA, with the
// same rights as ImpersonatorToken. Every call returns the same pair.
func (c *KubeCluster) ImpersonatorCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	c.certOnce.Do(func() {
		c.certPEM, c.keyPEM, c.certErr = c.clientCA.client(KubeImpersonatorCertUser)
	})
	if c.certErr != nil {
		t.Fatalf("testenv: %v", c.certErr)
	}
	return c.certPEM, c.keyPEM
}

// BindGroup binds clusterRole (such as the bootstrap "view" or "edit") to
// group: cluster-wide when namespace is "", else in namespace only. It
// returns once the apiserver's authorizer grants the group the role's
// first resource rule, and removes the binding when t ends.
func (c *KubeCluster) BindGroup(t testing.TB, group, clusterRole, namespace string) {
	t.Helper()
	name := "testenv-" + randomSuffix(t)
	kind, meta := "ClusterRoleBinding", "{name: "+name+"}"
	if namespace != "" {
		kind, meta = "RoleBinding", "{name: "+name+", namespace: "+namespace+"}"
	}
	c.Apply(t, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: %s
metadata: %s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %q}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: %q}
`, kind, meta, clusterRole, group))
	t.Cleanup(func() {
		args := []string{"delete", strings.ToLower(kind), name, "--ignore-not-found"}
		if namespace != "" {
			args = append(args, "--namespace="+namespace)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.kubectl(ctx, nil, args...); err != nil {
			t.Errorf("testenv: remove %s %s: %v: %s", kind, name, err, out)
		}
	})
	c.waitGranted(t, group, clusterRole, namespace)
}

// waitGranted waits until a SubjectAccessReview for a member of group
// allows the first resource rule of clusterRole: RBAC reads bindings from
// a watch cache, so a fresh binding takes a moment to count.
func (c *KubeCluster) waitGranted(t testing.TB, group, clusterRole, namespace string) {
	t.Helper()
	code, body, err := c.do(t.Context(), http.MethodGet, "/apis/rbac.authorization.k8s.io/v1/clusterroles/"+clusterRole, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("testenv: get clusterrole %s: %d %v %s", clusterRole, code, err, body)
	}
	var role struct {
		Rules []struct {
			APIGroups, Resources, Verbs []string
		}
	}
	if err := json.Unmarshal(body, &role); err != nil {
		t.Fatalf("testenv: clusterrole %s: %v", clusterRole, err)
	}
	for _, r := range role.Rules {
		if len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
			continue
		}
		if strings.Contains(r.Resources[0], "/") {
			continue // a subresource: keep the probe simple
		}
		attrs := map[string]string{"group": r.APIGroups[0], "resource": r.Resources[0], "verb": r.Verbs[0], "namespace": namespace}
		if attrs["group"] == "*" {
			attrs["group"] = ""
		}
		if attrs["resource"] == "*" {
			attrs["resource"] = "pods"
		}
		if attrs["verb"] == "*" {
			attrs["verb"] = "get"
		}
		if namespace == "" {
			attrs["namespace"] = "default"
		}
		review := map[string]any{
			"apiVersion": "authorization.k8s.io/v1",
			"kind":       "SubjectAccessReview",
			"spec": map[string]any{
				"user":               "testenv-probe",
				"groups":             []string{group},
				"resourceAttributes": attrs,
			},
		}
		var last string
		Eventually(t, 30*time.Second, func() bool {
			code, body, err := c.do(t.Context(), http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
			if err != nil || code != http.StatusCreated {
				last = fmt.Sprintf("%d %v %s", code, err, body)
				return false
			}
			var res struct{ Status struct{ Allowed bool } }
			last = string(body)
			return json.Unmarshal(body, &res) == nil && res.Status.Allowed
		}, "testenv: binding of %s to group %s not in force after 30s: %s", clusterRole, group, last)
		return
	}
	t.Fatalf("testenv: clusterrole %s has no resource rule to bind (an aggregated role is filled by aggregateClusterRoles only at start)", clusterRole)
}

// aggregateClusterRoles does once what kube-controller-manager's
// clusterrole-aggregation controller does continuously: it sets the rules
// of every ClusterRole with an aggregationRule to the union of the rules
// of the ClusterRoles its label selectors match. Without it the bootstrap
// roles view, edit and admin are empty. Passes repeat until nothing
// changes, since edit aggregates view and admin aggregates edit.
// matchExpressions are not evaluated (the bootstrap roles use only
// matchLabels): a selector with them matches nothing.
func (c *KubeCluster) aggregateClusterRoles(ctx context.Context) error {
	const path = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
	type selector struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []any             `json:"matchExpressions"`
	}
	type role struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		AggregationRule *struct {
			ClusterRoleSelectors []selector `json:"clusterRoleSelectors"`
		} `json:"aggregationRule"`
		Rules []json.RawMessage `json:"rules"`
		raw   map[string]any
	}
	for pass := 0; pass < 5; pass++ {
		code, body, err := c.do(ctx, http.MethodGet, path, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("list clusterroles: %d %v %s", code, err, body)
		}
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		roles := make([]*role, len(list.Items))
		for i, item := range list.Items {
			roles[i] = &role{}
			if err := json.Unmarshal(item, roles[i]); err != nil {
				return err
			}
			if err := json.Unmarshal(item, &roles[i].raw); err != nil {
				return err
			}
		}
		changed := false
		for _, r := range roles {
			if r.AggregationRule == nil {
				continue
			}
			var rules []json.RawMessage
			seen := map[string]bool{}
			for _, sel := range r.AggregationRule.ClusterRoleSelectors {
				if len(sel.MatchExpressions) > 0 || len(sel.MatchLabels) == 0 {
					continue
				}
				for _, o := range roles {
					if o == r || !labelsMatch(o.Metadata.Labels, sel.MatchLabels) {
						continue
					}
					for _, rule := range o.Rules {
						if !seen[string(rule)] {
							seen[string(rule)] = true
							rules = append(rules, rule)
						}
					}
				}
			}
			before, _ := json.Marshal(r.Rules)
			after, _ := json.Marshal(rules)
			if bytes.Equal(before, after) || len(rules) == 0 {
				continue
			}
			r.raw["rules"] = rules
			code, body, err := c.do(ctx, http.MethodPut, path+"/"+r.Metadata.Name, r.raw)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("update clusterrole %s: %d %v %s", r.Metadata.Name, code, err, body)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("aggregated clusterroles still changing after 5 passes")
}

func labelsMatch(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// KubePod is a pod on the kwok node. kwok runs no container: the pod's
// log is the file LogFile (AppendLog writes to it, and `kubectl logs -f`
// streams what is appended), and exec runs the command on this machine,
// as the user the tests run as, in a scratch directory of the cluster:
// `kubectl exec POD -- echo hi` prints "hi", and `kubectl exec -it POD --
// sh` is a local sh on a pseudo-terminal that kwok allocates.
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
