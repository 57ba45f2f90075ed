package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/airlockhq/airlock"
)

// Violation is the kind of constraint a failed write broke, as the store
// reads it from its driver's error.
type Violation int

const (
	NoViolation Violation = iota
	Unique                // a unique or primary key
	ForeignKey            // a referenced row is missing
	InvalidText           // text the engine refuses (NUL bytes, bad UTF-8)
)

// WriteErr maps an insert/update error that broke v: a unique violation is
// ECONFLICT with conflict, a foreign-key violation ENOTFOUND with missing,
// invalid text EINVALID; any other error is returned as it is.
func WriteErr(err error, v Violation, conflict, missing string) error {
	switch {
	case err == nil:
		return nil
	case v == Unique:
		return airlock.WrapError(airlock.ECONFLICT, conflict, err)
	case v == ForeignKey:
		return airlock.WrapError(airlock.ENOTFOUND, missing, err)
	case v == InvalidText:
		return airlock.WrapError(airlock.EINVALID, "text is not valid UTF-8", err)
	}
	return err
}

// NotFound returns ENOTFOUND with the message when err is "no rows"
// (sql.ErrNoRows, which pgx.ErrNoRows also is), and err otherwise.
func NotFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return airlock.Errorf(airlock.ENOTFOUND, format, args...)
	}
	return err
}

// Affected returns ENOTFOUND (with the message) when a statement that
// returned err changed n = 0 rows.
func Affected(n int64, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return airlock.Errorf(airlock.ENOTFOUND, format, args...)
	}
	return nil
}

// Outage returns err as the store's outage error when classify (the
// store's airlock.RegisterOutage table) knows it, and otherwise wrapped as
// EUNAVAILABLE with message.
func Outage(classify func(error) *airlock.Error, err error, message string) error {
	if o := classify(err); o != nil {
		return o
	}
	return airlock.WrapError(airlock.EUNAVAILABLE, message, err)
}

// RowFunc runs a query expected to return one row (on a pool, a
// connection or a transaction); the statement is in $N style.
type RowFunc func(ctx context.Context, query string, args ...any) Scanner

// RequestConflict is the answer to a conditional update of request id
// that changed nothing: ENOTFOUND if it is missing, else ECONFLICT naming
// its state and the wanted one.
func RequestConflict(ctx context.Context, row RowFunc, id, want string) error {
	var state string
	if err := row(ctx, `SELECT state FROM requests WHERE id=$1`, id).Scan(&state); err != nil {
		return NotFound(err, "request %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "request %q is %s, not %s", id, state, want)
}

// GrantEnded is EndGrant's answer when its update changed nothing.
func GrantEnded(ctx context.Context, row RowFunc, id string) error {
	var cur string
	if err := row(ctx, `SELECT state FROM grants WHERE id=$1`, id).Scan(&cur); err != nil {
		return NotFound(err, "grant %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "grant %q is already %s", id, cur)
}

// GrantAcked is AckGrant's answer when its update changed nothing.
func GrantAcked(ctx context.Context, row RowFunc, id string) error {
	var ackedBy string
	if err := row(ctx, `SELECT acked_by FROM grants WHERE id=$1`, id).Scan(&ackedBy); err != nil {
		return NotFound(err, "grant %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "grant %q was already acknowledged by %s", id, ackedBy)
}

// SessionEnded is EndSession's answer given the error of its update
// (ENOTFOUND when it changed nothing): ECONFLICT naming how the session
// ended when it exists, and otherwise that error.
func SessionEnded(ctx context.Context, err error, id string, byID func(context.Context, string) (*airlock.Session, error)) error {
	if !airlock.IsCode(err, airlock.ENOTFOUND) {
		return err
	}
	old, err := byID(ctx, id)
	if err != nil {
		return err
	}
	return airlock.Errorf(airlock.ECONFLICT, "session %s already ended (%s)", id, old.EndReason)
}

// FactorCounterStale is AdvanceFactorCounter's answer when its update
// changed nothing: false if the factor exists (the counter did not move
// forward), ENOTFOUND if not.
func FactorCounterStale(ctx context.Context, row RowFunc, id string) (bool, error) {
	var one int
	if err := row(ctx, `SELECT 1 FROM factors WHERE id=$1`, id).Scan(&one); err != nil {
		return false, NotFound(err, "factor %q not found", id)
	}
	return false, nil
}
