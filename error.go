package airlock

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to exactly one HTTP status in the api package.
const (
	ECONFLICT     = "conflict"     // state changed underneath (409)
	EINTERNAL     = "internal"     // a bug or an outage; details are logged, not sent (500)
	EINVALID      = "invalid"      // bad input (400)
	ENOTFOUND     = "not_found"    // no such thing, or not visible to the caller (404)
	EUNAUTHORIZED = "unauthorized" // no valid login session or credentials (401)
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed (403)
	EMFAREQUIRED  = "mfa_required" // a fresh second factor is needed first (401)
	ELOCKED       = "locked"       // too many failed attempts (429)
	ETOOLARGE     = "too_large"    // request body over the limit (413)
	EUNAVAILABLE  = "unavailable"  // a dependency (store, audit) cannot take writes (503)
	ENOTIMPL      = "not_implemented"
)

// Error is Airlock's application error. Message is safe to show a user;
// Err is the internal cause, logged but never sent to a client.
type Error struct {
	Code    string
	Message string
	// Details carries machine-readable context safe to show the caller
	// (for mfa_required: the action and accepted methods).
	Details map[string]any
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted user message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message that wraps cause.
func WrapError(code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Err: cause}
}

// ErrorCode returns the code of the first *Error in err's chain,
// EINTERNAL for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of the first *Error in err's
// chain, or a generic message for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }
