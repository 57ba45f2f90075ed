package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// NewToken returns a fresh bearer token and its SHA-256. The token is
// prefix, an underscore (unless prefix already ends with one) and 256 random
// bits in unpadded base64url, e.g. NewToken("al") = "al_3q2-…". Store only
// the hash; show the token once.
func NewToken(prefix string) (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of token, the form tokens are stored and
// looked up in. A 256-bit random token needs no salt or slow hash.
func HashToken(token string) []byte {
	s := sha256.Sum256([]byte(token))
	return s[:]
}
