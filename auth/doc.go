// Package auth is Airlock's first factor: argon2id password hashing under a
// bounded worker pool (Hasher), the password policy (CheckPassword), and
// opaque bearer tokens stored only as their SHA-256 (NewToken, HashToken).
// Guessing is throttled by the identity package, on counts kept in the
// store (airlock.ThrottleStore), so that it holds across replicas.
//
// Password hashing uses golang.org/x/crypto/argon2; only the PHC string
// encoding and its strict parser are written here, because x/crypto ships the
// KDF without an encoding.
//
// The package does no I/O of its own: the caller (the identity package)
// counts the attempt, loads the user, calls Hasher.Verify or
// Hasher.DummyVerify and audits the outcome.
package auth
