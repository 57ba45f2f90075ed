// Package auth is Airlock's first factor: argon2id password hashing under a
// bounded worker pool (Hasher), a per-key failure limiter with growing delays
// and lockout (Limiter), the password policy (CheckPassword), and opaque
// bearer tokens stored only as their SHA-256 (NewToken, HashToken).
//
// Password hashing uses golang.org/x/crypto/argon2; only the PHC string
// encoding and its strict parser are written here, because x/crypto ships the
// KDF without an encoding.
//
// The package does no I/O of its own: the caller (the api package) loads the
// user, calls Hasher.Verify or Hasher.DummyVerify, feeds the outcome to a
// Limiter and audits it.
package auth
