package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

// kubectl through the Kubernetes gateway, the ecosystem's own way: a
// kubeconfig context whose user runs `airlock kube-credential`, an exec
// credential plugin (client.authentication.k8s.io/v1) that kubectl itself
// calls for a token and calls again when it runs out or is refused.

func init() {
	register(func() []*cobra.Command {
		return []*cobra.Command{newKubeconfigCmd(), newKubeCredentialCmd(), newKubectlCmd()}
	})
}

// execCredentialVersion is the exec plugin API kubectl speaks (1.22+).
const execCredentialVersion = "client.authentication.k8s.io/v1"

// kubeRenewBefore is how long before its end a cached token is replaced.
const kubeRenewBefore = time.Minute

func newKubeconfigCmd() *cobra.Command {
	var path, accessLevel, contextName string
	var use bool
	cmd := &cobra.Command{Use: "kubeconfig RESOURCE", Short: "Add a kubectl context for a kubernetes resource through the Airlock gateway",
		Long: `Add (or update) a context in your kubeconfig ($KUBECONFIG, or ~/.kube/config; --kubeconfig
to choose) for the kubernetes resource RESOURCE: its cluster is the Airlock gateway, which
kubectl trusts through Airlock's CA, and its user runs "airlock kube-credential" for a token
valid for minutes. kubectl asks for a new one when it runs out; MFA is asked only when the
policy's freshness window has passed. The kubeconfig holds no secret.`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var info *api.GatewayInfo
			if err := c.call(func(ctx context.Context) (err error) { info, err = c.client.Info(ctx); return err }); err != nil {
				return err
			}
			if info.KubeURL == "" {
				return errors.New("the server's Kubernetes gateway is disabled (--kube-addr)")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if path == "" {
				path = defaultKubeconfig()
			}
			if contextName == "" {
				contextName = "airlock-" + args[0]
			}
			if err := writeKubeconfig(path, kubeContext{Name: contextName, Server: info.KubeURL + airlock.KubePathPrefix + args[0],
				CAPEM: info.TLSCA, Command: self, Args: kubeCredentialArgs(args[0], accessLevel)}, use); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"kubeconfig": path, "context": contextName})
			}
			fmt.Fprintf(c.out(), "Context %s in %s: kubectl --context %s get pods (or airlock kubectl %s -- get pods)\n",
				contextName, path, contextName, args[0])
			return nil
		}}
	cmd.Flags().StringVar(&path, "kubeconfig", "", "kubeconfig file to edit (default $KUBECONFIG's first file, or ~/.kube/config)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().StringVar(&contextName, "context", "", "context name (default airlock-RESOURCE)")
	cmd.Flags().BoolVar(&use, "use", false, "make it the current context")
	return cmd
}

// kubeCredentialArgs are the plugin's arguments: the server is named so
// kubectl reaches the same Airlock whatever its environment.
func kubeCredentialArgs(resource, accessLevel string) []string {
	a := []string{"kube-credential", resource, "--server", global.server}
	if accessLevel != "" {
		a = append(a, "--access", accessLevel)
	}
	return a
}

func newKubeCredentialCmd() *cobra.Command {
	var otp, accessLevel string
	var refresh bool
	cmd := &cobra.Command{Use: "kube-credential RESOURCE", Short: "kubectl's exec credential plugin: print an ExecCredential with a short-lived gateway token",
		Long: `Print a client.authentication.k8s.io/v1 ExecCredential holding a token for the Kubernetes
gateway under your grant on RESOURCE. kubectl runs this itself (see airlock kubeconfig); a token
is reused from ~/.airlock (mode 0600) until a minute before it ends, so kubectl calls in a row
mint no new one. MFA is prompted for on the terminal only when the policy asks for it.`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			cache := kubeTokenCache(global.server, args[0], accessLevel)
			t := readKubeToken(cache)
			if refresh || t == nil || time.Until(t.ExpiresAt) < kubeRenewBefore {
				if err := c.call(func(ctx context.Context) (err error) {
					t, err = c.client.MintKubeToken(ctx, api.ConnectRequest{Resource: args[0], Access: accessLevel})
					return err
				}); err != nil {
					return err
				}
				writeKubeToken(cache, t)
			}
			return json.NewEncoder(c.out()).Encode(execCredential(t))
		}}
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "mint a new token even if the cached one is still valid (after a new grant)")
	return cmd
}

func newKubectlCmd() *cobra.Command {
	var accessLevel string
	cmd := &cobra.Command{Use: "kubectl RESOURCE -- ARGS…", Short: "Run kubectl on a kubernetes resource through the gateway (a kubeconfig of its own)",
		Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			kubectl := os.Getenv("AIRLOCK_KUBECTL")
			if kubectl == "" {
				if kubectl, err = exec.LookPath("kubectl"); err != nil {
					return errors.New("kubectl not found on PATH; install it or set AIRLOCK_KUBECTL")
				}
			}
			var info *api.GatewayInfo
			if err := c.call(func(ctx context.Context) (err error) { info, err = c.client.Info(ctx); return err }); err != nil {
				return err
			}
			if info.KubeURL == "" {
				return errors.New("the server's Kubernetes gateway is disabled (--kube-addr)")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "airlock-kube-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			kc := filepath.Join(dir, "kubeconfig")
			if err := writeKubeconfig(kc, kubeContext{Name: "airlock-" + args[0], Server: info.KubeURL + airlock.KubePathPrefix + args[0],
				CAPEM: info.TLSCA, Command: self, Args: kubeCredentialArgs(args[0], accessLevel)}, true); err != nil {
				return err
			}
			rest := args[1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			x := exec.CommandContext(c.ctx(), kubectl, append([]string{"--kubeconfig", kc}, rest...)...)
			x.Stdin, x.Stdout, x.Stderr = os.Stdin, c.out(), c.errw()
			if err := x.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &exitError{code: ee.ExitCode()}
				}
				return err
			}
			return nil
		}}
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().SetInterspersed(false) // everything after RESOURCE is kubectl's
	return cmd
}

// execCredential is the plugin's answer in the shape kubectl decodes.
func execCredential(t *api.KubeTokenResponse) map[string]any {
	return map[string]any{
		"kind":       "ExecCredential",
		"apiVersion": execCredentialVersion,
		"spec":       map[string]any{},
		"status": map[string]any{
			"token":               t.Token,
			"expirationTimestamp": t.ExpiresAt.UTC().Format(time.RFC3339),
		},
	}
}

// kubeTokenCache is where a resource's token is kept between kubectl
// calls: per server, resource and access level.
func kubeTokenCache(server, resource, accessLevel string) string {
	h := sha256.Sum256([]byte(strings.TrimRight(server, "/") + "\x00" + resource + "\x00" + accessLevel))
	return filepath.Join(airlockHome(), "kube", hex.EncodeToString(h[:12])+".json")
}

func readKubeToken(path string) *api.KubeTokenResponse {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var t api.KubeTokenResponse
	if json.Unmarshal(b, &t) != nil || t.Token == "" {
		return nil
	}
	return &t
}

// writeKubeToken caches t (0600 in a 0700 directory); a failure only
// costs a new token next time.
func writeKubeToken(path string, t *api.KubeTokenResponse) {
	if os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	b, _ := json.Marshal(t)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, path)
	}
}

func defaultKubeconfig() string {
	if k := os.Getenv("KUBECONFIG"); k != "" {
		return filepath.SplitList(k)[0]
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".kube", "config")
}

// kubeContext is one Airlock cluster, user and context in a kubeconfig.
type kubeContext struct {
	Name, Server, CAPEM string
	Command             string
	Args                []string
}

// writeKubeconfig adds or replaces k's cluster, user and context (all
// named k.Name) in the kubeconfig at path, keeping everything else in it.
func writeKubeconfig(path string, k kubeContext, use bool) error {
	doc := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: not a kubeconfig: %v", path, err)
		}
		if doc == nil {
			doc = map[string]any{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc["apiVersion"], doc["kind"] = "v1", "Config"
	cluster := map[string]any{"server": k.Server}
	if k.CAPEM != "" {
		cluster["certificate-authority-data"] = base64.StdEncoding.EncodeToString([]byte(k.CAPEM))
	}
	upsertNamed(doc, "clusters", k.Name, "cluster", cluster)
	upsertNamed(doc, "users", k.Name, "user", map[string]any{"exec": map[string]any{
		"apiVersion":         execCredentialVersion,
		"command":            k.Command,
		"args":               k.Args,
		"interactiveMode":    "IfAvailable",
		"provideClusterInfo": false,
	}})
	upsertNamed(doc, "contexts", k.Name, "context", map[string]any{"cluster": k.Name, "user": k.Name})
	if use || doc["current-context"] == nil || doc["current-context"] == "" {
		doc["current-context"] = k.Name
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".airlock-tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// upsertNamed sets doc[list]'s entry called name to {name, key: value}.
func upsertNamed(doc map[string]any, list, name, key string, value map[string]any) {
	items, _ := doc[list].([]any)
	entry := map[string]any{"name": name, key: value}
	for i, it := range items {
		if m, ok := it.(map[string]any); ok && m["name"] == name {
			items[i] = entry
			doc[list] = items
			return
		}
	}
	doc[list] = append(items, entry)
}
