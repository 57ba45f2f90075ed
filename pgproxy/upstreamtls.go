package pgproxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/airlockhq/airlock"
)

// UpstreamTLSConfig returns the Target.UpstreamTLS for a resource's mode
// (an airlock.SSLMode) and CA certificates (PEM; empty for none): nil for
// "" and disable. It refuses what airlock.CheckUpstreamTLS refuses: an
// unknown mode, CA certificates that do not parse, and CA certificates
// with disable, so that a typo never means plaintext.
func UpstreamTLSConfig(mode string, caPEM []byte) (*tls.Config, error) {
	m, roots, err := airlock.CheckUpstreamTLS(mode, caPEM)
	if err != nil {
		return nil, err
	}
	switch m {
	case airlock.SSLRequire:
		if roots == nil {
			// libpq's require: encryption without authentication (documented).
			return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
		}
		return verifyCA(roots), nil
	case airlock.SSLVerifyCA:
		return verifyCA(roots), nil
	case airlock.SSLVerifyFull:
		// ServerName is left empty: the gateway sets it to the upstream
		// address's host for each connection.
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}, nil
	default: // airlock.SSLDisable
		return nil, nil
	}
}

// verifyCA checks the chain against roots (nil: the system's) but not the
// name, like libpq's verify-ca. RootCAs is set too, though the handshake
// does not use it, so that TLSVerifies can tell the resource's own CA
// certificates from the system's roots.
func verifyCA(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		InsecureSkipVerify: true, // the chain is checked in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		},
	}
}

// TLSVerifies reports whether c (a Target.UpstreamTLS built by
// UpstreamTLSConfig) authenticates the server: verify-full checks chain and
// name; verify-ca (and require with CA certificates) checks the chain in
// VerifyConnection, which authenticates the server only against the
// resource's own CA certificates. verify-ca against the system's roots
// does not: any certificate any public CA issued, for any name, passes.
// Plain require checks nothing.
func TLSVerifies(c *tls.Config) bool {
	return c != nil && (!c.InsecureSkipVerify || (c.VerifyConnection != nil && c.RootCAs != nil))
}
