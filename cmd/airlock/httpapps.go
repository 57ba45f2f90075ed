package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/assertion"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/secrets"
)

// buildHTTPGateway builds the HTTP gateway and the identity keys it signs
// with (when --http-apps-addr is set).
func (s *server) buildHTTPGateway() error {
	c := s.cfg
	now := c.now
	if now == nil {
		now = time.Now
	}
	keys, err := assertion.New(s.store, s.keyring, assertion.Options{Issuer: c.PublicURL, Now: now, Logger: s.log})
	if err != nil {
		return err
	}
	s.idKeys = keys
	if c.HTTPAppsAddr == "" {
		return nil
	}
	cert, err := s.appsCertificate()
	if err != nil {
		return err
	}
	port := c.HTTPAppsPublicPort
	if port == "" {
		_, port, _ = net.SplitHostPort(c.HTTPAppsAddr)
	}
	s.http, err = httpgw.New(httpgw.Config{Domain: c.HTTPAppsDomain, PublicPort: port, ConsoleURL: c.PublicURL,
		TLS:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		Auth: httpAuthenticator{s}, Audit: auditSink{s.audit, s.ends}, Identity: identitySigner{keys}, Sessions: s.ends,
		Logger: s.log, Now: now, Node: s.node, Pending: s.pending})
	return err
}

// appsCertificate is --http-apps-cert/--http-apps-key, or a certificate
// for *.DOMAIN issued by the data dir's CA.
func (s *server) appsCertificate() (tls.Certificate, error) {
	c := s.cfg
	if c.HTTPAppsCert != "" || c.HTTPAppsKey != "" {
		certPEM, err := os.ReadFile(c.HTTPAppsCert)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--http-apps-cert: %v", err)
		}
		keyPEM, err := os.ReadFile(c.HTTPAppsKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--http-apps-key: %v", err)
		}
		return tls.X509KeyPair(certPEM, keyPEM)
	}
	certPEM, keyPEM, err := s.dir.IssueServerCert([]string{"*." + c.HTTPAppsDomain, c.HTTPAppsDomain}, 365*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// httpAuthenticator is the HTTP gateway's view of the access service.
type httpAuthenticator struct{ s *server }

func (a httpAuthenticator) App(ctx context.Context, host string) (*httpgw.App, error) {
	r, err := a.s.access.HTTPApp(ctx, host, a.s.cfg.HTTPAppsDomain)
	if err != nil {
		return nil, err
	}
	return &httpgw.App{Resource: r.Name, Host: host}, nil
}

func (a httpAuthenticator) Authenticate(ctx context.Context, req httpgw.AuthRequest) (*httpgw.Target, error) {
	h, err := a.s.access.AuthenticateHTTP(ctx, req.App.Resource, req.Token.Reveal())
	if err != nil {
		return nil, err
	}
	return httpTarget(h)
}

func (a httpAuthenticator) Redeem(ctx context.Context, req httpgw.RedeemRequest) (secrets.Secret, *httpgw.Target, string, error) {
	tok, h, next, err := a.s.access.RedeemHTTPCode(ctx, req.App.Resource, req.Code.Reveal(), httpgw.StateHash(req.State.Reveal()), req.SourceAddr)
	if err != nil {
		return "", nil, "", err
	}
	t, err := httpTarget(h)
	return secrets.Secret(tok), t, next, err
}

func (a httpAuthenticator) Revoke(ctx context.Context, token secrets.Secret) error {
	return a.s.access.RevokeHTTPToken(ctx, token.Reveal())
}

// httpTarget is where an app token's requests go.
func httpTarget(h *access.HTTPAccess) (*httpgw.Target, error) {
	r := h.Resource
	up, err := url.Parse(r.Addr)
	if err != nil || up.Host == "" {
		return nil, airlock.Errorf(airlock.EINTERNAL, "resource %s has an unusable addr", r.Name)
	}
	t := &httpgw.Target{UserID: h.User.ID, UserName: h.User.Name, Groups: h.User.Groups, GrantID: h.Grant.ID, Resource: r.Name,
		Access: h.Grant.Access, EndsAt: h.Grant.EndsAt, TokenExpiresAt: h.TokenExpiresAt, Upstream: up, Rules: h.Rules,
		LogQuery: h.Decision.Session.LogParameters, StrictAudit: h.Decision.Session.Audit == "strict",
		IdleTimeout: h.Decision.Session.IdleTimeout, MaxConcurrent: h.Decision.Session.MaxConcurrent}
	if ca := access.Options(r).TLSCA; ca != "" {
		pool, err := airlock.ParseCAPEM([]byte(ca))
		if err != nil {
			return nil, err
		}
		t.UpstreamTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		t.UpstreamTLSKey = ca
	}
	if len(h.Header) > 0 {
		t.Header = http.Header{}
		for k, v := range h.Header {
			t.Header.Set(k, v)
		}
	}
	return t, nil
}

// identitySigner signs the HTTP gateway's identity assertions.
type identitySigner struct{ k *assertion.Keys }

func (i identitySigner) Sign(ctx context.Context, id httpgw.Identity) (string, time.Time, error) {
	tok, err := i.k.Sign(ctx, assertion.Claims{Audience: id.Audience, Subject: id.UserID, Name: id.UserName, Groups: id.Groups,
		Grant: id.GrantID, Access: id.Access, EndsAt: id.EndsAt})
	if err != nil {
		return "", time.Time{}, err
	}
	exp := time.Now().Add(assertion.DefaultLifetime)
	if id.EndsAt.Before(exp) {
		exp = id.EndsAt
	}
	return tok, exp, nil
}

// appsDomain is the apps domain clients are told (none when the HTTP
// gateway is off).
func appsDomain(c serverConfig) string {
	if c.HTTPAppsAddr == "" {
		return ""
	}
	return c.HTTPAppsDomain
}

// appsPort is the port browsers and clients reach the HTTP gateway on.
func appsPort(c serverConfig) string {
	if c.HTTPAppsAddr == "" {
		return ""
	}
	if c.HTTPAppsPublicPort != "" {
		return c.HTTPAppsPublicPort
	}
	_, port, _ := net.SplitHostPort(c.HTTPAppsAddr)
	return port
}
