package airlock

import (
	"errors"
	"fmt"
	"sync"
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

// ErrorCode returns the code of the first *Error in err's chain; for an
// error without one, EUNAVAILABLE when a registered classifier reports it as
// a store outage (see Outage) and EINTERNAL otherwise; "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if Outage(err) != nil {
		return EUNAVAILABLE
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of the first *Error in err's
// chain; for an error without one, the message of its Outage, or a generic
// message.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if o := Outage(err); o != nil {
		return o.Message
	}
	return "internal error"
}

// Messages of store outages: what is wrong and what to do. Outage errors
// carry one of them.
const (
	MsgStoreUnavailable = "store unavailable — retry; /readyz shows when it is back"
	MsgStoreFull        = "the store is out of disk space — free space on the server's data disk, then retry; /readyz shows when it is back"
)

// StoreUnavailable returns the EUNAVAILABLE error of a store that cannot
// be reached or read (MsgStoreUnavailable), wrapping cause.
func StoreUnavailable(cause error) *Error { return WrapError(EUNAVAILABLE, MsgStoreUnavailable, cause) }

// StoreFull returns the EUNAVAILABLE error of a store that cannot write for
// lack of disk space (MsgStoreFull), wrapping cause.
func StoreFull(cause error) *Error { return WrapError(EUNAVAILABLE, MsgStoreFull, cause) }

var outages struct {
	mu  sync.RWMutex
	fns []func(error) *Error
}

// RegisterOutage adds classify to the functions Outage consults. A store
// package registers, from init, the one table that recognises its engine's
// outage errors (disk full, I/O error, connection refused or lost,
// shutdown) and returns StoreUnavailable or StoreFull for them, nil for
// anything else (constraint violations, bad input, a cancelled context).
// It is the database/sql.Register pattern: the classification is the
// engine's, and every layer above — services deciding whether to mask an
// error as "not found", the API's status table, the gateways — asks Outage
// or ErrorCode without importing a driver.
func RegisterOutage(classify func(error) *Error) {
	outages.mu.Lock()
	defer outages.mu.Unlock()
	outages.fns = append(outages.fns, classify)
}

// Outage returns the store outage under err: the first StoreUnavailable
// or StoreFull error in its chain, else the EUNAVAILABLE error that a
// registered classifier makes of err (or of any error in its chain), or
// nil when err is not a store outage.
func Outage(err error) *Error {
	if err == nil {
		return nil
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ae, ok := e.(*Error); ok && ae.Code == EUNAVAILABLE && (ae.Message == MsgStoreUnavailable || ae.Message == MsgStoreFull) {
			return ae
		}
	}
	outages.mu.RLock()
	defer outages.mu.RUnlock()
	for _, f := range outages.fns {
		if o := f(err); o != nil {
			return o
		}
	}
	return nil
}

// AsUnavailable returns err as the EUNAVAILABLE error to show the caller:
// its Outage when a store classified it, else the first *Error in its
// chain if that is EUNAVAILABLE, else StoreUnavailable(err).
func AsUnavailable(err error) *Error {
	if o := Outage(err); o != nil {
		return o
	}
	var e *Error
	if errors.As(err, &e) && e.Code == EUNAVAILABLE {
		return e
	}
	return StoreUnavailable(err)
}

// Unavailable reports whether err is a store outage or carries the code
// EUNAVAILABLE. Services check it before they turn a failed lookup into
// a refusal ("not found", "invalid token"): an outage is reported as one.
func Unavailable(err error) bool {
	return err != nil && (IsCode(err, EUNAVAILABLE) || Outage(err) != nil)
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }
