package airlock

// Sealer encrypts and decrypts small secrets at rest, each bound to
// associated data that names what it is. secrets.Keyring implements it;
// access seals resource credentials with it, mfa TOTP secrets.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}
