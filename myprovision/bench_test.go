package myprovision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/pgprovision"
)

// benchSetup is setup, with TLS verifying the server as a resource with
// sslmode verify-full does, and the read template's name.
func benchSetup(b *testing.B) (*Provisioner, string, string) {
	b.Helper()
	m, p, db := setup(b)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.CAPEM)
	p.Config.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return p, db, "app_read_" + strings.TrimPrefix(db, "t_")
}

// BenchmarkCreate measures making one grant's user (connect as the
// provisioning account, CREATE USER, GRANT the template, log in as the
// user to SET DEFAULT ROLE): what grant activation adds on an ephemeral
// mysql resource, less a seal and a store row. Run with -benchtime 200x
// for the 200 grants.
func BenchmarkCreate(b *testing.B) {
	p, _, tmpl := benchSetup(b)
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := p.Create(ctx, pgprovision.Role{Name: UserName("alice", fmt.Sprintf("gr_bench_%d_%d", time.Now().UnixNano(), i)), Template: tmpl}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	testenv.ReportLatencies(b, ds)
}

// BenchmarkTerminate100 measures revoke → every connection of a user
// gone: 100 connections logged in as the user, then Terminate (lock,
// KILL CONNECTION each), until PROCESSLIST shows none of them.
func BenchmarkTerminate100(b *testing.B) {
	p, db, tmpl := benchSetup(b)
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		user := UserName("alice", fmt.Sprintf("gr_term_%d_%d", time.Now().UnixNano(), i))
		pw, err := p.Create(ctx, pgprovision.Role{Name: user, Template: tmpl, ConnLimit: 200})
		if err != nil {
			b.Fatal(err)
		}
		cfg := p.Config.Clone()
		cfg.User, cfg.Passwd, cfg.DBName = user, pw.Reveal(), db
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			b.Fatal(err)
		}
		d := sql.OpenDB(connector)
		conns := make([]*sql.Conn, 100)
		var wg sync.WaitGroup
		for j := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := d.Conn(ctx)
				if err == nil {
					err = c.PingContext(ctx)
				}
				if err != nil {
					b.Error(err)
					return
				}
				conns[j] = c
			}()
		}
		wg.Wait()
		b.StartTimer()
		t0 := time.Now()
		if _, err := p.Terminate(ctx, user); err != nil {
			b.Fatal(err)
		}
		c, release, err := p.conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for {
			ids, err := processIDs(ctx, c, user)
			if err != nil {
				b.Fatal(err)
			}
			if len(ids) == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		ds = append(ds, time.Since(t0))
		release()
		b.StopTimer()
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		d.Close()
		p.Drop(ctx, user, "", nil)
		b.StartTimer()
	}
	testenv.ReportLatencies(b, ds)
}
