package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tlsState is the outcome of a cluster's one EnableTLS.
type tlsState struct {
	once  sync.Once
	caPEM []byte
	err   error
}

// tlsTimeout bounds how long EnableTLS waits for the reloaded server to
// accept TLS connections.
const tlsTimeout = 30 * time.Second

// EnableTLS turns on TLS in the cluster and returns the PEM of the
// throwaway CA that signed its server certificate (SANs IP 127.0.0.1 and
// DNS localhost). The first call generates the CA and certificate
// (ECDSA P-256), writes server.crt and server.key (mode 0600, owned by
// the OS user the server runs as) into p.Dir, sets ssl_cert_file,
// ssl_key_file and ssl = on with ALTER SYSTEM, reloads the configuration
// and waits until a verify-full TLS connection succeeds; later calls
// return the same PEM. Plaintext connections (sslmode=disable, as DSN
// gives) keep working: pg_hba.conf accepts both.
func (p *PG) EnableTLS(t testing.TB) (caPEM []byte) {
	t.Helper()
	p.tls.once.Do(func() {
		p.tls.caPEM, p.tls.err = p.enableTLS()
	})
	if p.tls.err != nil {
		t.Fatalf("testenv: enable TLS: %v", p.tls.err)
	}
	return append([]byte(nil), p.tls.caPEM...)
}

func (p *PG) enableTLS() ([]byte, error) {
	caPEM, certPEM, keyPEM, err := serverCert()
	if err != nil {
		return nil, err
	}
	certFile := filepath.Join(p.Dir, "server.crt")
	keyFile := filepath.Join(p.Dir, "server.key")
	if err := p.writeFile(certFile, string(certPEM)); err != nil {
		return nil, err
	}
	if err := p.writeFile(keyFile, string(keyPEM)); err != nil { // 0600: PostgreSQL refuses a readable key
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), tlsTimeout)
	defer cancel()
	for _, sql := range []string{
		"ALTER SYSTEM SET ssl_cert_file = " + quote(certFile),
		"ALTER SYSTEM SET ssl_key_file = " + quote(keyFile),
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		if err := p.exec(ctx, "postgres", sql); err != nil {
			return nil, fmt.Errorf("%s: %w", sql, err)
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("parse generated CA")
	}
	// The postmaster reloads on SIGHUP, asynchronously: poll.
	for {
		err = p.pingTLS(ctx, roots)
		if err == nil {
			return caPEM, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no TLS connection to %s:%d within %v: %w\n--- tail of postgres.log ---\n%s",
				p.Host, p.Port, tlsTimeout, err, tail(filepath.Join(p.Dir, "postgres.log"), 20))
		case <-time.After(50 * time.Millisecond): // polling a foreign process; no channel to wait on
		}
	}
}

// pingTLS opens one verify-full TLS connection as the superuser.
func (p *PG) pingTLS(ctx context.Context, roots *x509.CertPool) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=verify-full", p.Host, p.Port))
	if err != nil {
		return err
	}
	cfg.TLSConfig.RootCAs = roots
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(cctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		return err
	}
	if !ssl {
		return fmt.Errorf("connection is not TLS")
	}
	return nil
}

// serverCert generates a throwaway CA and a server certificate it signs
// for 127.0.0.1 and localhost, all PEM.
func serverCert() (caPEM, certPEM, keyPEM []byte, err error) {
	caPEM, certPEM, keyPEM, _, _, err = serverAndClientCert()
	return caPEM, certPEM, keyPEM, err
}

// serverAndClientCert is serverCert plus a client certificate (CN
// "airlock testenv client", client auth) and its key from the same CA.
func serverAndClientCert() (caPEM, certPEM, keyPEM, clientCertPEM, clientKeyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "airlock testenv CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	certPEM, keyPEM, err = issueCert(ca, caKey, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("create server certificate: %w", err)
	}
	clientCertPEM, clientKeyPEM, err = issueCert(ca, caKey, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "airlock testenv client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("create client certificate: %w", err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, certPEM, keyPEM, clientCertPEM, clientKeyPEM, nil
}

// issueCert signs tmpl for a new P-256 key with ca; PEM, the key PKCS #8.
func issueCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// UnrelatedCA returns the PEM of a fresh throwaway CA that signed nothing
// a cluster serves, for tests that pin a CA the database does not match.
func UnrelatedCA(t testing.TB) []byte {
	t.Helper()
	caPEM, _, _, err := serverCert()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return caPEM
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n.Add(n, big.NewInt(1))
}

// quote is a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ServerTLS returns a throwaway CA and a server certificate it signed for
// 127.0.0.1 and localhost, for a test server of the test's own.
func ServerTLS(t testing.TB) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caPEM, certPEM, keyPEM, err := serverCert()
	if err != nil {
		t.Fatalf("testenv: server certificate: %v", err)
	}
	if cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("testenv: server certificate: %v", err)
	}
	return caPEM, cert
}
