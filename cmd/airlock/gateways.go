package main

import (
	"context"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/sshproxy"
)

// auditSink adapts the audit log to the PostgreSQL gateway's pipeline;
// failed session.ended events go to ends for retrying.
type auditSink struct {
	l    *audit.Log
	ends *sessionEnds
}

func (a auditSink) Submit(e airlock.Event) airlock.AuditPending {
	if e.Action == "session.ended" && a.ends != nil {
		return a.submitEnd(e)
	}
	return a.l.Submit(e)
}
func (a auditSink) Flush() { a.l.Flush() }

// pgAuthenticator validates connect tokens for the PostgreSQL gateway.
type pgAuthenticator struct{ s *server }

func (p pgAuthenticator) Authenticate(ctx context.Context, req pgproxy.AuthRequest) (*pgproxy.Target, error) {
	resource, dbname, _ := strings.Cut(req.Database, "/")
	c, err := p.s.access.ConsumeConnectToken(ctx, req.User, resource, dbname, req.Token.Reveal(), req.SourceAddr)
	if err != nil {
		return nil, pgRefusal(err)
	}
	return pgTarget(c)
}

// pgRefusal passes a refused database on to the client as such; every
// other error stays the invalid-token error.
func pgRefusal(err error) error {
	if access.IsDatabaseRefused(err) {
		return &pgproxy.Refusal{Code: "42501", Message: "airlock: " + airlock.ErrorMessage(err)}
	}
	if access.IsDBRoleUnavailable(err) {
		return &pgproxy.Refusal{Code: "08004", Message: "airlock: " + airlock.ErrorMessage(err)}
	}
	return err
}

// SCRAMCandidates lists the verifiers of the user's live tokens for the
// resource (plaintext loopback clients prove a token with SCRAM).
func (p pgAuthenticator) SCRAMCandidates(ctx context.Context, req pgproxy.AuthRequest) (*pgproxy.SCRAMCandidates, error) {
	resource, _, _ := strings.Cut(req.Database, "/")
	c, err := p.s.access.SCRAMCandidates(ctx, req.User, resource)
	if err != nil {
		return nil, err
	}
	return &pgproxy.SCRAMCandidates{Salt: c.Salt, Iterations: c.Iterations, Verifiers: c.Verifiers, State: c}, nil
}

// AuthenticateSCRAM uses the token whose verifier accepted the proof.
func (p pgAuthenticator) AuthenticateSCRAM(ctx context.Context, req pgproxy.AuthRequest, sc *pgproxy.SCRAMCandidates, match int) (*pgproxy.Target, error) {
	resource, dbname, _ := strings.Cut(req.Database, "/")
	ac, _ := sc.State.(*access.SCRAMCandidates)
	c, err := p.s.access.ConsumeSCRAMToken(ctx, req.User, resource, dbname, ac, match, req.SourceAddr)
	if err != nil {
		return nil, pgRefusal(err)
	}
	return pgTarget(c)
}

// pgTarget is where an authenticated connection goes upstream: the
// database the access service checked against the resource's list.
func pgTarget(c *access.Connection) (*pgproxy.Target, error) {
	if c.Resource.Kind != airlock.KindPostgres {
		return nil, airlock.Errorf(airlock.EINVALID, "%s is not a postgres resource", c.Resource.Name)
	}
	opts := access.Options(c.Resource)
	dbname := c.Database
	if dbname == "" { // never: the access service sets it for postgres
		return nil, airlock.Errorf(airlock.EINTERNAL, "no upstream database for %s", c.Resource.Name)
	}
	upTLS, err := pgproxy.UpstreamTLSConfig(opts.TLS, []byte(opts.TLSCA))
	if err != nil {
		return nil, err
	}
	tlsKey := "" // kept upstream connections are shared only under equal TLS settings
	if upTLS != nil {
		tlsKey = opts.TLS + "\n" + opts.TLSCA
	}
	sess := c.Decision.Session
	return &pgproxy.Target{
		UserID: c.User.ID, UserName: c.User.Name, GrantID: c.Grant.ID, Resource: c.Resource.Name, Access: c.Grant.Access,
		EndsAt: c.Grant.EndsAt, UpstreamAddr: c.Resource.Addr, UpstreamDatabase: dbname,
		UpstreamUser: c.Credential.User, UpstreamPassword: c.Credential.Password, UpstreamTLS: upTLS, UpstreamTLSKey: tlsKey,
		AllowCleartextPassword: opts.AllowCleartextPassword,
		ReadOnly:               access.IsReadOnly(c.Resource, c.Grant.Access), StrictAudit: sess.Audit == "strict",
		LogParameters: sess.LogParameters, IdleTimeout: sess.IdleTimeout, MaxConcurrent: sess.MaxConcurrent,
		Statements:      c.Decision.Statements,
		ApplicationName: appName(c),
	}, nil
}

// appName is the upstream application_name of a session on a resource
// with ephemeral credentials, airlock:<user>:<grant>, so that the
// database's own logs and pg_stat_activity name the person; "" (the
// client's own) otherwise.
func appName(c *access.Connection) string {
	if !c.Ephemeral {
		return ""
	}
	return "airlock:" + c.User.Name + ":" + c.Grant.ID
}

var _ pgproxy.SCRAMAuthenticator = pgAuthenticator{}

// sshAuthorizer checks grants for the SSH gateway.
type sshAuthorizer struct{ s *server }

func (a sshAuthorizer) Authorize(ctx context.Context, req sshproxy.AuthRequest) (*sshproxy.Target, error) {
	c, err := a.s.access.AuthorizeSSH(ctx, req.UserName, req.GrantID, req.Resource, req.Login)
	if err != nil {
		return nil, err
	}
	opts := access.Options(c.Resource)
	t := &sshproxy.Target{UserID: c.User.ID, UserName: c.User.Name, GrantID: c.Grant.ID, Resource: c.Resource.Name,
		Access: c.Grant.Access, Login: c.Grant.Access, Addr: c.Resource.Addr, EndsAt: c.Grant.EndsAt,
		Record: c.Decision.Session.Record, IdleTimeout: c.Decision.Session.IdleTimeout,
		MaxConcurrent: c.Decision.Session.MaxConcurrent}
	if host, _, err := net.SplitHostPort(c.Resource.Addr); err == nil {
		t.HostName = host
	}
	if opts.HostKey != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(opts.HostKey))
		if err != nil {
			return nil, airlock.Errorf(airlock.EINTERNAL, "resource %s has an unparsable pinned host key", c.Resource.Name)
		}
		t.HostKey = k
	}
	return t, nil
}
