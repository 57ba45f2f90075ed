package airlock

import (
	"crypto/x509"
	"encoding/pem"
)

// SSLMode is how a gateway secures its connection to a database upstream,
// named as libpq's sslmode. A resource's options hold it as a string;
// ParseSSLMode reads it.
type SSLMode string

// The upstream TLS modes.
const (
	// SSLDisable connects without TLS (the default).
	SSLDisable SSLMode = "disable"
	// SSLRequire encrypts but does not authenticate the server, unless CA
	// certificates are given: then it is SSLVerifyCA.
	SSLRequire SSLMode = "require"
	// SSLVerifyCA checks that the server's certificate chains to the given
	// CA certificates (the system roots when none are given), whatever name
	// it carries.
	SSLVerifyCA SSLMode = "verify-ca"
	// SSLVerifyFull also checks that the certificate names the host of the
	// upstream address.
	SSLVerifyFull SSLMode = "verify-full"
)

// ParseSSLMode returns the mode s names; "" is SSLDisable. It refuses an
// unknown mode (EINVALID), so that a typo never means plaintext.
func ParseSSLMode(s string) (SSLMode, error) {
	switch m := SSLMode(s); m {
	case "":
		return SSLDisable, nil
	case SSLDisable, SSLRequire, SSLVerifyCA, SSLVerifyFull:
		return m, nil
	default:
		return "", Errorf(EINVALID, "unknown upstream sslmode %q: use disable, require, verify-ca or verify-full", s)
	}
}

// CheckUpstreamTLS validates a resource's upstream TLS settings, its
// sslmode and CA certificates (PEM; empty for none), and returns the mode
// and the parsed CA certificates (nil for none). It refuses CA
// certificates that do not parse (see ParseCAPEM), an unknown mode, and CA
// certificates with disable, so that nothing is stored that would not be
// used as written. All its errors are EINVALID.
func CheckUpstreamTLS(mode string, caPEM []byte) (SSLMode, *x509.CertPool, error) {
	var roots *x509.CertPool
	if len(caPEM) > 0 {
		var err error
		if roots, err = ParseCAPEM(caPEM); err != nil {
			return "", nil, err
		}
	}
	m, err := ParseSSLMode(mode)
	if err != nil {
		return "", nil, err
	}
	if m == SSLDisable && roots != nil {
		return "", nil, Errorf(EINVALID, "upstream CA certificates need sslmode require, verify-ca or verify-full, not %q", mode)
	}
	return m, roots, nil
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
			return nil, Errorf(EINVALID, "the upstream CA certificates hold a %q PEM block; give CA certificates only", truncateUTF8(blk.Type, 40))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, WrapError(EINVALID, "upstream CA certificate does not parse", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, Errorf(EINVALID, "no PEM CERTIFICATE block in the upstream CA certificates")
	}
	return pool, nil
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
