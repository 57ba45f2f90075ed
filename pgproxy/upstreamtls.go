package pgproxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"

	"github.com/airlockhq/airlock"
)

// Upstream TLS modes, named as libpq's sslmode.
const (
	// UpstreamTLSDisable connects without TLS (the default).
	UpstreamTLSDisable = "disable"
	// UpstreamTLSRequire encrypts but does not authenticate the server,
	// unless CA certificates are given: then it is UpstreamTLSVerifyCA.
	UpstreamTLSRequire = "require"
	// UpstreamTLSVerifyCA checks that the server's certificate chains to
	// the given CA certificates (the system roots when none are given),
	// whatever name it carries.
	UpstreamTLSVerifyCA = "verify-ca"
	// UpstreamTLSVerifyFull also checks that the certificate names the
	// host of the upstream address.
	UpstreamTLSVerifyFull = "verify-full"
)

// UpstreamTLSConfig returns the Target.UpstreamTLS for a resource's mode
// and CA certificates (PEM; empty for none): nil for "" and disable. It
// refuses an unknown mode, CA certificates that do not parse, and CA
// certificates with disable, so that a typo never means plaintext.
func UpstreamTLSConfig(mode string, caPEM []byte) (*tls.Config, error) {
	var roots *x509.CertPool
	if len(caPEM) > 0 {
		var err error
		if roots, err = ParseCAPEM(caPEM); err != nil {
			return nil, err
		}
	}
	switch mode {
	case "", UpstreamTLSDisable:
		if roots != nil {
			return nil, airlock.Errorf(airlock.EINVALID, "upstream CA certificates need sslmode require, verify-ca or verify-full, not %q", mode)
		}
		return nil, nil
	case UpstreamTLSRequire:
		if roots == nil {
			// libpq's require: encryption without authentication (documented).
			return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
		}
		return verifyCA(roots), nil
	case UpstreamTLSVerifyCA:
		return verifyCA(roots), nil
	case UpstreamTLSVerifyFull:
		// ServerName is left empty: the gateway sets it to the upstream
		// address's host for each connection.
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}, nil
	default:
		return nil, airlock.Errorf(airlock.EINVALID, "unknown upstream sslmode %q: use disable, require, verify-ca or verify-full", mode)
	}
}

// verifyCA checks the chain against roots (nil: the system's) but not the
// name, like libpq's verify-ca. RootCAs is set too, though the handshake
// does not use it, so that tlsVerifies can tell the resource's own CA
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

// ParseCAPEM parses PEM CA certificates (a resource's sslrootcert). It
// refuses input without any certificate, with a certificate that does not
// parse, and with any other PEM block: a private key pasted along with a
// certificate must not end up stored with the resource.
func ParseCAPEM(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, airlock.Errorf(airlock.EINVALID, "the upstream CA certificates hold a %q PEM block; give CA certificates only", truncateUTF8(blk.Type, 40))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, airlock.WrapError(airlock.EINVALID, "upstream CA certificate does not parse", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "no PEM CERTIFICATE block in the upstream CA certificates")
	}
	return pool, nil
}

// tlsVerifies reports whether c (a Target.UpstreamTLS built by
// UpstreamTLSConfig) authenticates the server: verify-full checks chain and
// name; verify-ca (and require with CA certificates) checks the chain in
// VerifyConnection, which authenticates the server only against the
// resource's own CA certificates. verify-ca against the system's roots
// does not: any certificate any public CA issued, for any name, passes.
// Plain require checks nothing.
func tlsVerifies(c *tls.Config) bool {
	return c != nil && (!c.InsecureSkipVerify || (c.VerifyConnection != nil && c.RootCAs != nil))
}
