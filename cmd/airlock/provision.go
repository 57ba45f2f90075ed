package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/pgproxy"
)

// provisionConnectTimeout bounds one provisioning connection.
const provisionConnectTimeout = 10 * time.Second

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
		config := func(db string) (*pgx.ConnConfig, error) {
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
			upTLS, err := pgproxy.UpstreamTLSConfig(opts.TLS, []byte(opts.TLSCA))
			if err != nil {
				return nil, err
			}
			cfg.TLSConfig = upTLS
			if upTLS != nil && upTLS.ServerName == "" {
				cfg.TLSConfig = upTLS.Clone()
				cfg.TLSConfig.ServerName = host
			}
			verifies := upTLS != nil && (!upTLS.InsecureSkipVerify || (upTLS.VerifyConnection != nil && upTLS.RootCAs != nil))
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
