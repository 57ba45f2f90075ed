package mysqlwire

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// NativePasswordHash returns SHA1(SHA1(password)): what a MySQL server
// stores for a mysql_native_password account (mysql.user's
// authentication_string is "*" and its upper-case hex) and all
// VerifyNativePassword needs. It is password-equivalent only together
// with an observed exchange (see the package doc).
func NativePasswordHash(password []byte) [20]byte {
	s1 := sha1.Sum(password)
	return sha1.Sum(s1[:])
}

// NativePasswordScramble returns the mysql_native_password auth response
// for password and the server's 20-byte scramble:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))). An empty
// password gives an empty response.
func NativePasswordScramble(password, scramble []byte) []byte {
	if len(password) == 0 {
		return nil
	}
	s1 := sha1.Sum(password)
	s2 := sha1.Sum(s1[:])
	h := sha1.New()
	h.Write(scramble)
	h.Write(s2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= s1[i]
	}
	return out
}

// VerifyNativePassword reports whether response is the
// mysql_native_password answer to scramble for the password whose
// NativePasswordHash is stored. It runs in constant time in the contents.
// An empty response matches no stored hash (an empty password is not a
// token).
func VerifyNativePassword(stored [20]byte, scramble, response []byte) bool {
	if len(response) != sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write(scramble)
	h.Write(stored[:])
	s1 := h.Sum(nil)
	for i := range s1 {
		s1[i] ^= response[i]
	}
	got := sha1.Sum(s1)
	return subtle.ConstantTimeCompare(got[:], stored[:]) == 1
}

// CachingSHA2Hash returns SHA256(SHA256(password)), what
// VerifyCachingSHA2 needs (and what a MySQL 8 server keeps in its cache
// after one full authentication).
func CachingSHA2Hash(password []byte) [32]byte {
	s1 := sha256.Sum256(password)
	return sha256.Sum256(s1[:])
}

// CachingSHA2Scramble returns the caching_sha2_password fast-auth
// response: SHA256(password) XOR SHA256(SHA256(SHA256(password)) +
// scramble). An empty password gives an empty response.
func CachingSHA2Scramble(password, scramble []byte) []byte {
	if len(password) == 0 {
		return nil
	}
	s1 := sha256.Sum256(password)
	s2 := sha256.Sum256(s1[:])
	h := sha256.New()
	h.Write(s2[:])
	h.Write(scramble)
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= s1[i]
	}
	return out
}

// VerifyCachingSHA2 reports whether response is the caching_sha2_password
// fast-auth answer to scramble for the password whose CachingSHA2Hash is
// stored, in constant time in the contents.
func VerifyCachingSHA2(stored [32]byte, scramble, response []byte) bool {
	if len(response) != sha256.Size {
		return false
	}
	h := sha256.New()
	h.Write(stored[:])
	h.Write(scramble)
	s1 := h.Sum(nil)
	for i := range s1 {
		s1[i] ^= response[i]
	}
	got := sha256.Sum256(s1)
	return subtle.ConstantTimeCompare(got[:], stored[:]) == 1
}

// ParseClearPassword returns the password in a mysql_clear_password (or
// caching_sha2_password full-auth over TLS) packet: the bytes before the
// terminating NUL. A password with a NUL inside, or none at the end, is
// malformed.
func ParseClearPassword(p []byte) ([]byte, error) {
	if len(p) == 0 || p[len(p)-1] != 0 {
		return nil, fmt.Errorf("%w: cleartext password without its NUL", ErrMalformed)
	}
	pw := p[:len(p)-1]
	if bytes.IndexByte(pw, 0) >= 0 {
		return nil, fmt.Errorf("%w: NUL inside a cleartext password", ErrMalformed)
	}
	return bytes.Clone(pw), nil
}

// AppendClearPassword appends password and its NUL.
func AppendClearPassword(b, password []byte) []byte {
	return append(append(b, password...), 0)
}
