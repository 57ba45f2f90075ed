package pgproxy

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"testing"

	"github.com/airlockhq/airlock"
)

func certPEM(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

// handshake runs a real TLS handshake between cfg (client, asking for
// serverName) and a server presenting cert.
func handshake(t *testing.T, cfg *tls.Config, serverName string, cert tls.Certificate) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	go func() { _ = srv.Handshake(); b.Close() }()
	c := cfg.Clone()
	c.ServerName = serverName
	return tls.Client(a, c).Handshake()
}

// TestUpstreamTLSConfig pins what each sslmode checks, with real TLS
// handshakes: verify-ca the chain only, verify-full the chain and the
// name, require nothing unless CA certificates are given, and that no
// mistake in the settings falls back to plaintext.
func TestUpstreamTLSConfig(t *testing.T) {
	db, _ := selfSigned(t)    // the database's certificate (names 127.0.0.1)
	other, _ := selfSigned(t) // an unrelated CA
	dbCA, otherCA := certPEM(db), certPEM(other)

	for _, mode := range []string{"", "disable"} {
		if cfg, err := UpstreamTLSConfig(mode, nil); cfg != nil || err != nil {
			t.Fatalf("mode %q: %v, %v; want no TLS", mode, cfg, err)
		}
	}
	cases := []struct {
		mode       string
		ca         []byte
		serverName string
		ok         bool
	}{
		{"require", nil, "127.0.0.1", true},
		{"require", nil, "db.example.com", true},
		{"require", otherCA, "127.0.0.1", false}, // a CA given: verify-ca
		{"require", dbCA, "db.example.com", true},
		{"verify-ca", dbCA, "127.0.0.1", true},
		{"verify-ca", dbCA, "db.example.com", true}, // the name is not checked
		{"verify-ca", otherCA, "127.0.0.1", false},
		{"verify-ca", nil, "127.0.0.1", false}, // system roots do not know it
		{"verify-full", dbCA, "127.0.0.1", true},
		{"verify-full", dbCA, "db.example.com", false},
		{"verify-full", otherCA, "127.0.0.1", false},
		{"verify-full", nil, "127.0.0.1", false},
	}
	for _, c := range cases {
		cfg, err := UpstreamTLSConfig(c.mode, c.ca)
		if err != nil || cfg == nil {
			t.Fatalf("%s: %v, %v", c.mode, cfg, err)
		}
		if cfg.MinVersion < tls.VersionTLS12 {
			t.Fatalf("%s allows TLS below 1.2", c.mode)
		}
		err = handshake(t, cfg, c.serverName, db)
		if (err == nil) != c.ok {
			t.Errorf("%s (CA given: %v) to %s: handshake error %v, want success %v", c.mode, c.ca != nil, c.serverName, err, c.ok)
		}
	}
	for _, bad := range []struct {
		mode string
		ca   []byte
	}{
		{"prefer", nil}, {"allow", nil}, {"verify_full", nil}, {"VERIFY-FULL", nil},
		{"disable", dbCA}, {"", dbCA}, {"verify-full", []byte("not pem")},
		{"verify-ca", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		{"verify-full", append(dbCA, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...)},
	} {
		cfg, err := UpstreamTLSConfig(bad.mode, bad.ca)
		if err == nil || cfg != nil || airlock.ErrorCode(err) != airlock.EINVALID {
			t.Errorf("mode %q with CA %q: %v, %v; want EINVALID", bad.mode, bad.ca, cfg, err)
		}
	}
}
