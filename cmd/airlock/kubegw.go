package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/kubegw"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
)

// buildKubeGateway builds the Kubernetes gateway (when --kube-addr is
// set): the HTTP gateway's core with the Kubernetes door, on its own
// listener, with a certificate from the data dir's CA.
func (s *server) buildKubeGateway() error {
	c := s.cfg
	if c.KubeAddr == "" {
		return nil
	}
	now := c.now
	if now == nil {
		now = time.Now
	}
	u, err := url.Parse(kubeURL(c))
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("--kube-public-url: %q is not a URL", c.KubePublicURL)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1", u.Hostname()}
	if h, _, err := net.SplitHostPort(c.KubeAddr); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		hosts = append(hosts, h)
	}
	certPEM, keyPEM, err := s.dir.IssueServerCert(hosts, 365*24*time.Hour)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	recs, err := recording.NewDir(s.dir.File("recordings"))
	if err != nil {
		return err
	}
	s.kube, err = kubegw.New(httpgw.Config{Recordings: recs,
		TLS:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		Auth: kubeAuthenticator{s}, Audit: auditSink{s.audit, s.ends}, Sessions: s.ends,
		Logger: s.log, Now: now, Node: s.node, Pending: s.pending})
	return err
}

// kubeURL is the Kubernetes gateway's public base URL: --kube-public-url,
// or https://--kube-addr (loopback when it binds every address).
func kubeURL(c serverConfig) string {
	if c.KubeAddr == "" {
		return ""
	}
	if c.KubePublicURL != "" {
		return c.KubePublicURL
	}
	host, port, err := net.SplitHostPort(c.KubeAddr)
	if err != nil {
		return "https://" + c.KubeAddr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// kubeAuthenticator is the Kubernetes gateway's view of the access
// service: the HTTP gateway's tokens, for kubernetes resources.
type kubeAuthenticator struct{ s *server }

func (a kubeAuthenticator) App(ctx context.Context, name string) (*httpgw.App, error) {
	return nil, airlock.Errorf(airlock.ENOTFOUND, "clusters are routed by path")
}

func (a kubeAuthenticator) Authenticate(ctx context.Context, req httpgw.AuthRequest) (*httpgw.Target, error) {
	h, err := a.s.access.AuthenticateHTTP(ctx, req.App.Resource, req.Token.Reveal())
	if err != nil {
		return nil, err
	}
	return kubeTarget(h)
}

func (a kubeAuthenticator) CheckGrant(ctx context.Context, t *httpgw.Target) (*httpgw.Target, error) {
	h, err := a.s.access.CheckHTTPGrant(ctx, t.UserID, t.GrantID, t.Resource)
	if err != nil {
		return nil, err
	}
	h.TokenExpiresAt = t.TokenExpiresAt
	return kubeTarget(h)
}

func (a kubeAuthenticator) Redeem(context.Context, httpgw.RedeemRequest) (secrets.Secret, *httpgw.Target, string, error) {
	return "", nil, "", airlock.Errorf(airlock.EINVALID, "the Kubernetes gateway has no browser sign-in")
}

func (a kubeAuthenticator) Revoke(ctx context.Context, token secrets.Secret) error {
	return a.s.access.RevokeHTTPToken(ctx, token.Reveal())
}

// kubeTarget is where a kubernetes token's requests go and as whom.
func kubeTarget(h *access.HTTPAccess) (*httpgw.Target, error) {
	if h.Resource.Kind != airlock.KindKubernetes || h.Kube == nil {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "this token is not for a kubernetes cluster")
	}
	t, err := httpTarget(h)
	if err != nil {
		return nil, err
	}
	t.Rules = nil
	k := h.Kube
	if k.ClientCert != nil {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.UpstreamTLS != nil {
			conf = t.UpstreamTLS.Clone()
		}
		conf.Certificates = []tls.Certificate{*k.ClientCert}
		t.UpstreamTLS = conf
		// Transports are shared by equal settings: the certificate is part
		// of them.
		t.UpstreamTLSKey += "\x00cert:" + h.Resource.Name + "/" + h.Grant.Access
	}
	t.Door = &kubegw.Impersonation{User: h.User.Name, Groups: k.Groups, Grant: h.Grant.ID, Namespaces: k.Namespaces}
	return t, nil
}
