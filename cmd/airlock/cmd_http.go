package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

func init() {
	register(func() []*cobra.Command { return []*cobra.Command{newProxyCmd(), newCurlCmd()} })
}

func newProxyCmd() *cobra.Command {
	proxy := &cobra.Command{Use: "proxy", Short: "Run a local proxy to a gateway"}
	var otp, accessLevel string
	var port int
	h := &cobra.Command{Use: "http RESOURCE [--port N]", Short: "Serve an HTTP app on 127.0.0.1, attaching a short-lived Airlock token to every request",
		Long: `Serve the http resource RESOURCE on http://127.0.0.1:PORT for curl, scripts and API
clients. Every request goes to the HTTP gateway with a short-lived token for your
grant (minted with fresh MFA per policy, renewed before it runs out); the gateway
audits it and adds the brokered credential. Only this machine can reach the port.`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			lp, err := startLocalHTTPProxy(c, args[0], accessLevel, port)
			if err != nil {
				return err
			}
			defer lp.close()
			if !c.json() {
				fmt.Fprintf(c.errw(), "airlock: %s on %s at http://%s (grant %s, until %s); Ctrl-C stops\n",
					lp.tok().Access, lp.tok().Resource, lp.addr, lp.tok().GrantID, fmtTime(lp.tok().GrantEnds))
			} else if err := c.printJSON(map[string]any{"url": "http://" + lp.addr, "resource": lp.tok().Resource, "grant_id": lp.tok().GrantID}); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.ctx(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			select {
			case <-ctx.Done():
				return nil
			case err := <-lp.done:
				return err
			}
		}}
	h.Flags().IntVar(&port, "port", 0, "local port (default: any free one, printed)")
	h.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	h.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	proxy.AddCommand(h)
	return proxy
}

func newCurlCmd() *cobra.Command {
	var otp, accessLevel string
	cmd := &cobra.Command{Use: "curl RESOURCE PATH [curl args…]", Short: "Run curl on an HTTP app through the gateway (airlock proxy http for one command)",
		Args: cobra.MinimumNArgs(2), DisableFlagParsing: false, RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			path := args[1]
			if !strings.HasPrefix(path, "/") {
				return fmt.Errorf("PATH must start with /, e.g. airlock curl %s /api/health", args[0])
			}
			curl, err := exec.LookPath("curl")
			if err != nil {
				return errors.New("curl not found on PATH; install it (apt-get install curl)")
			}
			lp, err := startLocalHTTPProxy(c, args[0], accessLevel, 0)
			if err != nil {
				return err
			}
			defer lp.close()
			x := exec.CommandContext(c.ctx(), curl, append([]string{"--silent", "--show-error", "http://" + lp.addr + path}, args[2:]...)...)
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
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().SetInterspersed(false) // everything after PATH is curl's
	return cmd
}

// localHTTPProxy serves one app on a loopback port, attaching the current
// token to every request.
type localHTTPProxy struct {
	c        *cli
	resource string
	level    string
	addr     string
	srv      *http.Server
	done     chan error

	renewMu sync.Mutex // one renewal at a time
	mu      sync.Mutex
	t       *api.HTTPTokenResponse
}

func startLocalHTTPProxy(c *cli, resource, level string, port int) (*localHTTPProxy, error) {
	lp := &localHTTPProxy{c: c, resource: resource, level: level, done: make(chan error, 1)}
	if err := lp.renew(); err != nil {
		return nil, err
	}
	t := lp.tok()
	if t.GatewayAddr == "" {
		return nil, errors.New("the server's HTTP gateway is disabled (--http-apps-addr)")
	}
	tlsConf := &tls.Config{ServerName: t.Host, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if t.TLSCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.TLSCA)) {
			return nil, errors.New("the server sent an unusable gateway CA")
		}
		tlsConf.RootCAs = pool
	}
	gw := t.GatewayAddr
	if h, p, err := net.SplitHostPort(gw); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		gw = net.JoinHostPort("127.0.0.1", p)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// Every request goes to the gateway, whatever the app's host
		// resolves to here (*.localhost, split DNS).
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, gw)
		},
		TLSClientConfig: tlsConf, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true, Proxy: nil,
	}
	host := t.Host
	if t.Port != "" && t.Port != "443" {
		host = net.JoinHostPort(t.Host, t.Port)
	}
	target := &url.URL{Scheme: "https", Host: host}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = host
			tok, err := lp.current()
			if err != nil {
				pr.Out.Header.Del("Authorization")
				return
			}
			pr.Out.Header.Set("Authorization", "Bearer "+tok)
		},
		Transport: tr, FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "airlock proxy: the gateway did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	lp.addr = ln.Addr().String()
	lp.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		err := lp.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		lp.done <- err
	}()
	return lp, nil
}

func (lp *localHTTPProxy) tok() *api.HTTPTokenResponse {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.t
}

// current returns the token to attach, minting the next one when less
// than a third of the current one's life is left and the grant outlives
// it.
func (lp *localHTTPProxy) current() (string, error) {
	t := lp.tok()
	left := time.Until(t.ExpiresAt)
	if left > api.HTTPTokenRenewBefore || !t.ExpiresAt.Before(t.GrantEnds) {
		if left <= 0 {
			return "", errors.New("the grant has ended")
		}
		return t.Token, nil
	}
	lp.renewMu.Lock()
	defer lp.renewMu.Unlock()
	if now := lp.tok(); now != t { // another request renewed it meanwhile
		return now.Token, nil
	}
	if err := lp.renew(); err != nil {
		fmt.Fprintf(lp.c.errw(), "airlock proxy: cannot renew the token: %s\n", airlock.ErrorMessage(err))
		if left > 0 {
			return t.Token, nil
		}
		return "", err
	}
	return lp.tok().Token, nil
}

func (lp *localHTTPProxy) renew() error {
	var t *api.HTTPTokenResponse
	err := lp.c.call(func(ctx context.Context) (err error) {
		t, err = lp.c.client.MintHTTPToken(ctx, api.ConnectRequest{Resource: lp.resource, Access: lp.level})
		return err
	})
	if err != nil {
		return err
	}
	lp.mu.Lock()
	lp.t = t
	lp.mu.Unlock()
	return nil
}

func (lp *localHTTPProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lp.srv.Shutdown(ctx)
}
