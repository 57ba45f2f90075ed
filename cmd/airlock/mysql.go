package main

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/mysqlproxy"
	"github.com/airlockhq/airlock/pgproxy"
)

// buildMySQLGateway builds the MySQL gateway (when --mysql-addr is set),
// with a certificate from the data dir's CA.
func (s *server) buildMySQLGateway(reg prometheus.Registerer) error {
	c := s.cfg
	if c.MySQLAddr == "" {
		return nil
	}
	host, _, _ := net.SplitHostPort(c.MySQLAddr)
	certPEM, keyPEM, err := s.dir.IssueServerCert([]string{host, "localhost", "127.0.0.1"}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	now := c.now
	if now == nil {
		now = time.Now
	}
	s.mysql, err = mysqlproxy.New(mysqlproxy.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Auth: mysqlAuthenticator{s}, Audit: auditSink{s.audit, s.ends}, Sessions: s.ends, Logger: s.log, Now: now, Node: s.node,
		HandshakeTimeout: c.HandshakeTimeout, Pending: s.pending, Registerer: reg})
	return err
}

// mysqlAuthenticator validates connect tokens for the MySQL gateway.
type mysqlAuthenticator struct{ s *server }

func (m mysqlAuthenticator) Authenticate(ctx context.Context, req mysqlproxy.AuthRequest) (*mysqlproxy.Target, error) {
	resource, dbname, _ := strings.Cut(req.Database, "/")
	c, err := m.s.access.ConsumeConnectToken(ctx, req.User, resource, dbname, req.Token.Reveal(), req.SourceAddr)
	if err != nil {
		if access.IsDatabaseRefused(err) {
			return nil, airlock.Errorf(airlock.EFORBIDDEN, "%s", airlock.ErrorMessage(err))
		}
		return nil, err
	}
	if c.Resource.Kind != airlock.KindMySQL {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "%s is not a mysql resource", c.Resource.Name)
	}
	opts := access.Options(c.Resource)
	upTLS, err := pgproxy.UpstreamTLSConfig(opts.TLS, []byte(opts.TLSCA))
	if err != nil {
		return nil, err
	}
	sess := c.Decision.Session
	return &mysqlproxy.Target{
		UserID: c.User.ID, UserName: c.User.Name, GrantID: c.Grant.ID, Resource: c.Resource.Name, Access: c.Grant.Access,
		EndsAt: c.Grant.EndsAt, UpstreamAddr: c.Resource.Addr, UpstreamDatabase: c.Database, Databases: access.Databases(c.Resource),
		UpstreamUser: c.Credential.User, UpstreamPassword: c.Credential.Password, UpstreamTLS: upTLS,
		ReadOnly: access.IsReadOnly(c.Resource, c.Grant.Access), StrictAudit: sess.Audit == "strict",
		LogParameters: sess.LogParameters, IdleTimeout: sess.IdleTimeout, MaxConcurrent: sess.MaxConcurrent,
	}, nil
}
