package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/myprovision"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/secrets"
)

// provisionConnectTimeout bounds one provisioning connection.
const provisionConnectTimeout = 10 * time.Second

// provisioners returns the access service's access.ProvisionerFunc for
// every engine: pgProvisioners for postgres, myProvisioner for mysql.
func provisioners(pools *pgprovision.Pools) access.ProvisionerFunc {
	pg := pgProvisioners(pools)
	return func(r *airlock.Resource, c *access.Credential) access.DBProvisioner {
		if r.Kind == airlock.KindMySQL {
			return myProvisioner(r, c)
		}
		return pg(r, c)
	}
}

// myProvisioner dials MySQL resource r as its provisioning account c,
// with the resource's address and TLS settings (as the gateway does for
// sessions: the resource's CA, the host as server name for verify-full).
// A TLS setting that cannot be built fails every call, never dials
// without it.
func myProvisioner(r *airlock.Resource, c *access.Credential) access.DBProvisioner {
	opts := access.Options(r)
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", r.Addr, c.User, c.Password.Reveal()
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = provisionConnectTimeout, provisionConnectTimeout, provisionConnectTimeout
	cfg.ConnectionAttributes = "program_name:airlock-provisioner"
	upTLS, err := pgproxy.UpstreamTLSConfig(opts.TLS, []byte(opts.TLSCA))
	if err != nil {
		return failingProvisioner{err}
	}
	// As the postgres provisioner: no password to a server that is not
	// verified. A MySQL server (or whoever sits in between) can ask for
	// caching_sha2_password's full authentication, which sends the
	// password in the clear inside TLS, or encrypted with a key the
	// server itself supplies without it.
	verifies := pgproxy.TLSVerifies(upTLS)
	if !verifies && !opts.AllowCleartextPassword {
		return failingProvisioner{airlock.Errorf(airlock.EINVALID, "resource %s: the provisioning login needs a verified server (sslmode verify-ca or verify-full with sslrootcert), or allow_cleartext_password", r.Name)}
	}
	if upTLS != nil {
		if host, _, err := net.SplitHostPort(r.Addr); err == nil && upTLS.ServerName == "" {
			upTLS = upTLS.Clone()
			upTLS.ServerName = host
		}
		cfg.TLS = upTLS
	}
	return &myprovision.Provisioner{Config: cfg}
}

// failingProvisioner is a provisioner that cannot be dialled: every call
// returns why.
type failingProvisioner struct{ err error }

func (f failingProvisioner) Create(context.Context, pgprovision.Role) (secrets.Secret, error) {
	return "", f.err
}
func (f failingProvisioner) Terminate(context.Context, string) (int, error)       { return 0, f.err }
func (f failingProvisioner) Drop(context.Context, string, string, []string) error { return f.err }
func (f failingProvisioner) List(context.Context) ([]string, error)               { return nil, f.err }
func (f failingProvisioner) Inspect(context.Context, []string, string) (*pgprovision.Report, error) {
	return nil, f.err
}
func (f failingProvisioner) SetPassword(context.Context, secrets.Secret) error { return f.err }

// pgProvisioners returns the access service's access.ProvisionerFunc: it
// dials resource r's database as its provisioning role c, with the
// resource's address and TLS settings (as the gateway does for sessions).
// Connections to the provisioning role's own database are kept in pools,
// per resource and credential: once r holds no pending rotation (no
// NextProvisionerCredential), c is its only credential and the pools of
// any other are closed.
func pgProvisioners(pools *pgprovision.Pools) access.ProvisionerFunc {
	return func(r *airlock.Resource, c *access.Credential) access.DBProvisioner {
		opts := access.Options(r)
		own := access.Databases(r)[0]
		// The CA is parsed once per provisioner, not once per connection.
		upTLS, tlsErr := pgproxy.UpstreamTLSConfig(opts.TLS, []byte(opts.TLSCA))
		config := func(db string) (*pgx.ConnConfig, error) {
			if tlsErr != nil {
				return nil, tlsErr
			}
			host, portStr, err := net.SplitHostPort(r.Addr)
			if err != nil {
				return nil, fmt.Errorf("resource %s address: %w", r.Name, err)
			}
			port, err := strconv.ParseUint(portStr, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("resource %s port: %w", r.Name, err)
			}
			cfg, err := pgx.ParseConfig("host=127.0.0.1 port=5432 sslmode=disable")
			if err != nil {
				return nil, err
			}
			cfg.Host, cfg.Port, cfg.Database, cfg.User = host, uint16(port), db, c.User
			cfg.Password = c.Password.Reveal()
			cfg.Fallbacks = nil
			cfg.ConnectTimeout = provisionConnectTimeout
			cfg.RuntimeParams = map[string]string{"application_name": "airlock:provisioner"}
			cfg.TLSConfig = upTLS
			if upTLS != nil && upTLS.ServerName == "" {
				cfg.TLSConfig = upTLS.Clone()
				cfg.TLSConfig.ServerName = host
			}
			verifies := pgproxy.TLSVerifies(upTLS)
			if !opts.AllowCleartextPassword && !verifies {
				cfg.RequireAuth = "!password" // as the gateway: no cleartext password to an unverified server
			}
			return cfg, nil
		}
		p := &pgprovision.Provisioner{Connect: func(ctx context.Context, db string) (*pgx.Conn, error) {
			if db == "" {
				db = own
			}
			cfg, err := config(db)
			if err != nil {
				return nil, err
			}
			return pgx.ConnectConfig(ctx, cfg)
		}}
		if pools != nil {
			cfg, err := config(own)
			if err != nil {
				p.Acquire = func(context.Context) (*pgx.Conn, func(), error) { return nil, nil, err }
				return p
			}
			_, pending := r.Credentials[airlock.NextProvisionerCredential]
			extra := opts.TLS + "\x00" + opts.TLSCA + "\x00" + strconv.FormatBool(opts.AllowCleartextPassword)
			p.Acquire = pools.Acquirer(r.Name, cfg, extra, !pending)
		}
		return p
	}
}
