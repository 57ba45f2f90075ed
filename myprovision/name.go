package myprovision

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/airlockhq/airlock/pgprovision"
)

// Prefix starts the name of every user this package makes; reconciliation
// treats every user with it as Airlock's. It is pgprovision's: one
// convention across engines.
const Prefix = pgprovision.Prefix

// MaxName is MySQL's limit on a user name, in characters.
const MaxName = 32

// maxUserPart bounds the person's share of a user name.
const maxUserPart = 10

// UserName returns the login user for user's grant grantID:
// "airlock_<user>_<12 hex digits of the grant ID's SHA-256>", the user
// part sanitised (pgprovision.Sanitize) and at most 10 characters, 31
// characters at most in all. Distinct grants give distinct names.
func UserName(user, grantID string) string {
	u := pgprovision.Sanitize(user)
	if len(u) > maxUserPart {
		u = u[:maxUserPart]
	}
	if u == "" {
		u = "user"
	}
	sum := sha256.Sum256([]byte(grantID))
	return Prefix + u + "_" + hex.EncodeToString(sum[:6])
}
