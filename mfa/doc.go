// Package mfa implements Airlock's second factors as libraries: TOTP
// (RFC 6238 via github.com/pquerna/otp), WebAuthn credentials — passkeys,
// security keys, platform biometrics — (via github.com/go-webauthn/webauthn)
// and one-time recovery codes.
//
// Every factor persists through airlock.FactorStore. Replay protection rests
// on FactorStore.AdvanceFactorCounter, which is atomic across processes: a
// TOTP factor's Counter is the last accepted time step, a WebAuthn factor's
// Counter is the authenticator's sign count, and the recovery factor's
// Counter is the bitmask of used codes. TOTP secrets are sealed with an
// airlock.Sealer (secrets.Keyring in production) bound to "factor:"+factorID.
//
// Failures carry one user-facing message per factor ("invalid or already
// used code", …) so a caller cannot tell a wrong code from a replayed one;
// the internal cause is a sentinel error (ErrInvalidCode, ErrReplayedCode,
// ErrClonedAuthenticator, …) that callers audit via Reason.
//
// Only the recovery-code format and the glue to the store are written here;
// OTP arithmetic, WebAuthn parsing and signature checks are the libraries'.
package mfa
