package pgprovision

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Prefix starts the name of every role this package makes; reconciliation
// treats every role with it as Airlock's.
const Prefix = "airlock_"

// maxName is PostgreSQL's limit on an identifier (NAMEDATALEN-1), in bytes.
const maxName = 63

// maxUserPart bounds the user's share of a role name, so that the grant's
// part always fits whole.
const maxUserPart = 24

// RoleName returns the login role name for user's grant grantID:
// "airlock_<user>_<grant>", where each part keeps only ASCII lower-case
// letters, digits and '_' (anything else becomes '_'), the user part is at
// most 24 bytes, and the grant part is the grant ID's sanitised form, or
// 24 hex digits of its SHA-256 when that form is longer than 30 bytes or
// was changed by sanitising (so distinct grant IDs give distinct names).
// The result is at most 63 bytes and never needs quoting, though it is
// quoted anyway wherever it is used.
func RoleName(user, grantID string) string {
	u := Sanitize(user)
	if len(u) > maxUserPart {
		u = u[:maxUserPart]
	}
	if u == "" {
		u = "user"
	}
	g := Sanitize(grantID)
	if g != grantID || len(g) > 30 || g == "" {
		sum := sha256.Sum256([]byte(grantID))
		g = hex.EncodeToString(sum[:12])
	}
	name := Prefix + u + "_" + g
	if len(name) > maxName { // cannot happen with the bounds above
		name = name[:maxName]
	}
	return name
}

// Sanitize keeps ASCII lower-case letters, digits and '_' of s (upper
// case is lowered, anything else becomes '_'), at most 64 bytes: a name
// part that never needs quoting, on PostgreSQL or MySQL.
func Sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 64; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
