package mfa

import (
	"errors"

	"github.com/airlockhq/airlock"
)

// Internal causes of a refused factor. They are wrapped inside the
// *airlock.Error a method returns (errors.Is works); callers audit them via
// Reason and never show them to the user.
var (
	ErrMalformedCode       = errors.New("mfa: malformed code")
	ErrInvalidCode         = errors.New("mfa: code does not match")
	ErrOutOfWindow         = errors.New("mfa: code matches a time step outside the accepted window")
	ErrReplayedCode        = errors.New("mfa: code already used")
	ErrNoFactor            = errors.New("mfa: no active factor of this kind")
	ErrClonedAuthenticator = errors.New("mfa: authenticator sign count did not increase (possible clone)")
	ErrCeremony            = errors.New("mfa: webauthn ceremony unknown, expired, already used or not this user's")
	ErrAssertion           = errors.New("mfa: webauthn response failed verification")
	ErrPolicy              = errors.New("mfa: authenticator not allowed by policy")
)

// Reason returns a short, stable audit reason for a failure returned by
// this package ("invalid_code", "replayed_code", "cloned_authenticator", …),
// "" for nil, and "error" for anything else.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMalformedCode):
		return "malformed_code"
	case errors.Is(err, ErrInvalidCode):
		return "invalid_code"
	case errors.Is(err, ErrOutOfWindow):
		return "out_of_window"
	case errors.Is(err, ErrReplayedCode):
		return "replayed_code"
	case errors.Is(err, ErrNoFactor):
		return "no_factor"
	case errors.Is(err, ErrClonedAuthenticator):
		return "cloned_authenticator"
	case errors.Is(err, ErrCeremony):
		return "ceremony_invalid"
	case errors.Is(err, ErrAssertion):
		return "verification_failed"
	case errors.Is(err, ErrPolicy):
		return "policy"
	}
	return "error"
}

// MsgInvalidCode is the one message for every refused TOTP or recovery code.
const MsgInvalidCode = "invalid or already used code"

func codeRefused(cause error) error {
	return airlock.WrapError(airlock.EUNAUTHORIZED, MsgInvalidCode, cause)
}
