package testenv

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestEnableTLS pins that EnableTLS makes the cluster serve verify-full TLS
// with the returned CA, once, while plaintext connections keep working.
func TestEnableTLS(t *testing.T) {
	pg := Postgres(t)
	caPEM := pg.EnableTLS(t)
	if again := pg.EnableTLS(t); !bytes.Equal(again, caPEM) {
		t.Fatal("EnableTLS returned a different CA on the second call")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("CA PEM does not parse:\n%s", caPEM)
	}

	st, err := os.Stat(filepath.Join(pg.Dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("server.key mode %v, want 0600", st.Mode().Perm())
	}
	if pg.cred != nil && st.Sys().(*syscall.Stat_t).Uid != pg.cred.Uid {
		t.Fatalf("server.key owned by uid %d, want the server's %d", st.Sys().(*syscall.Stat_t).Uid, pg.cred.Uid)
	}

	ctx := t.Context()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		cfg, err := pgx.ParseConfig("postgres://postgres@" + host + ":" + itoa(pg.Port) + "/postgres?sslmode=verify-full")
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig.RootCAs = roots
		if host == "localhost" {
			// localhost may also resolve to ::1, where the cluster does not listen.
			cfg.Host, cfg.TLSConfig.ServerName = "127.0.0.1", "localhost"
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("verify-full TLS as %s: %v", host, err)
		}
		var ssl bool
		err = conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
		conn.Close(context.Background())
		if err != nil || !ssl {
			t.Fatalf("pg_stat_ssl.ssl = %v, %v; want true", ssl, err)
		}
	}

	// A name the certificate does not carry is refused.
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:" + itoa(pg.Port) + "/postgres?sslmode=verify-full")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig.RootCAs, cfg.TLSConfig.ServerName = roots, "db.example.com"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("verify-full for db.example.com succeeded")
	} else if !strings.Contains(err.Error(), "db.example.com") {
		t.Fatalf("wrong name: %v", err)
	}

	// Plaintext still works.
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatalf("plaintext after EnableTLS: %v", err)
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || ssl {
		t.Fatalf("sslmode=disable connection: ssl=%v err=%v; want a plaintext connection", ssl, err)
	}
}
