// Package assertion signs the identity assertions the HTTP gateway hands to
// each app, and publishes the keys that verify them, so an app can trust
// Airlock instead of running its own login.
//
// An assertion is a compact JWT (RFC 7519) signed with EdDSA (Ed25519,
// RFC 8037), header typ "JWT" and kid. Its claims are iss (the server's
// public URL), sub (the user id), aud (the app), iat, nbf, exp, jti, and
// Airlock's own: name (the user name), groups, grant (the grant id),
// access (the access level) and ends_at (the grant's end, unix seconds).
// exp is short (Options.Lifetime, 2 minutes by default) and never later
// than ends_at: no assertion outlives its grant.
//
// # Keys
//
// Keys live in the store, so every replica signs with and publishes the
// same set: one KV entry per key under KeyPrefix+kid (kid is the key's
// RFC 7638 thumbprint), holding the public key, the private key sealed
// with an airlock.Sealer (associated data: the entry's name) and its
// timeline, with the entry's expiry set to the end of its publication so
// that old keys fall out of the store by themselves.
//
// A key is published (listed in the JWKS) from the moment it is stored
// until PublishUntil; it signs from SignFrom to SignUntil = SignFrom +
// RotateEvery. The first key signs at once; each successor is stored
// PublishAhead before its predecessor stops signing and starts signing
// exactly then, so that every replica's cache and every app's cached copy
// of the JWKS (max-age JWKSMaxAge) know it before the first token it
// signs. A key stays published for Lifetime + Margin after it stops
// signing, so every token it signed verifies until it expires. Two
// replicas that rotate at the same moment each store a successor: both
// are published, and both replicas sign with the same one once they have
// seen both (the latest SignFrom, then the latest creation, then the
// greatest kid).
//
// Keys caches the key set and reloads it from the store at most every
// Options.Reload (and at once when its signing key is due to stop, or a
// successor is due to be stored), so Sign costs no store round trip on
// the hot path; JWKS reloads at most every JWKSReload.
//
// The package depends only on the root package, the standard library and
// go-jose, which does the signing; the store comes in as the small Store
// interface.
package assertion
