package testenv

import (
	"crypto/ecdsa"
	"crypto/x509"

	"github.com/descope/virtualwebauthn"
)

// WebAuthnEC2Credential returns a new P-256 credential for a virtual
// authenticator. virtualwebauthn encodes the public key's coordinates
// without their leading zero bytes, which a verifier rightly refuses
// (about one key in 128); this draws keys until both are 32 bytes.
func WebAuthnEC2Credential() virtualwebauthn.Credential {
	for {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
		if err != nil {
			panic("testenv: virtualwebauthn key does not parse: " + err.Error())
		}
		ek, err := k.(*ecdsa.PrivateKey).ECDH()
		if err != nil {
			panic("testenv: virtualwebauthn key: " + err.Error())
		}
		// Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
		if p := ek.PublicKey().Bytes(); p[1] != 0 && p[33] != 0 {
			return c
		}
	}
}
