package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

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
