package pgproxy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock/secrets"
)

// TestUpstreamCleartextSystemRoots pins that verify-ca without
// sslrootcert does not count as a verified server for the cleartext
// password: it checks the chain against the system's roots and no name,
// so anyone holding a certificate from any public CA (for any name at
// all) would pass and be sent the brokered password. The system roots are
// faked with SSL_CERT_FILE in a child process (Go loads them once per
// process), holding the fake upstream's own certificate.
func TestUpstreamCleartextSystemRoots(t *testing.T) {
	if os.Getenv("AIRLOCK_TEST_SYSTEM_ROOTS_CHILD") != "" {
		systemRootsChild(t)
		return
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "roots.pem")
	cmd := exec.Command(os.Args[0], "-test.run=^TestUpstreamCleartextSystemRoots$", "-test.v")
	cmd.Env = append(os.Environ(), "AIRLOCK_TEST_SYSTEM_ROOTS_CHILD="+dir,
		"SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func systemRootsChild(t *testing.T) {
	// The child makes its own certificate and puts it where the parent's
	// SSL_CERT_FILE points, before anything loads the system roots.
	dir := os.Getenv("AIRLOCK_TEST_SYSTEM_ROOTS_CHILD")
	cert, _ := selfSigned(t)
	if err := os.WriteFile(filepath.Join(dir, "roots.pem"), certPEM(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	up := newCleartextUpstream(t, &cert)
	g, err := New(Config{Auth: AuthenticatorFunc(nil), Audit: &sink{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode     string
		wantSent bool
	}{
		{"verify-ca", false},  // chain to a public root, any name: anyone's certificate
		{"verify-full", true}, // the name is checked too: the server is authenticated
	} {
		upTLS, err := UpstreamTLSConfig(c.mode, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := len(up.passwords())
		tg := &Target{UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "app", UpstreamDatabase: "db",
			UpstreamPassword: secrets.Secret("brokered-pw"), UpstreamTLS: upTLS}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		u, err := g.connectUpstream(ctx, tg, map[string]string{})
		cancel()
		if u != nil {
			u.conn.Close()
		}
		sent := len(up.passwords()) > before
		if sent != c.wantSent {
			t.Fatalf("%s with system roots: password sent %v (err %v), want %v", c.mode, sent, err, c.wantSent)
		}
	}
}
