// Package identity is the people side of Airlock: bootstrap of the first
// admin, users and groups, login sessions with idle and absolute timeouts,
// second factors and step-up freshness. It composes the auth package (first
// factor, rate limiting, tokens) and the mfa package (TOTP, WebAuthn,
// recovery codes) over the store, and writes every state change to the
// audit log before it takes effect (fail closed).
package identity
