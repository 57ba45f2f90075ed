package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// LeaseStream takes or renews holder's lease on sink. Every statement runs
// on the single writer connection, which SQLite serialises.
func (db *DB) LeaseStream(ctx context.Context, sink, holder string, now, until time.Time) (airlock.StreamCursor, bool, error) {
	return dialect.LeaseStreamWith(ctx,
		func(s sqlstore.Stmt) error { _, err := exec(ctx, db.w, s); return err },
		func(s sqlstore.Stmt) sqlstore.Scanner { return row(ctx, db.w, s) },
		func(err error) bool { return errors.Is(err, sql.ErrNoRows) },
		sink, holder, now, until)
}

// AdvanceStream moves sink's cursor up to seq while holder's lease holds.
func (db *DB) AdvanceStream(ctx context.Context, sink, holder string, seq int64, now time.Time) (bool, error) {
	res, err := exec(ctx, db.w, dialect.AdvanceStream(sink, holder, seq, now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseStream ends holder's lease on sink.
func (db *DB) ReleaseStream(ctx context.Context, sink, holder string) error {
	_, err := exec(ctx, db.w, dialect.ReleaseStream(sink, holder))
	return err
}

// StreamCursors returns every sink's cursor, ordered by sink.
func (db *DB) StreamCursors(ctx context.Context) ([]airlock.StreamCursor, error) {
	return list(ctx, db.w, dialect.StreamCursors(), sqlstore.ScanStreamCursor)
}
