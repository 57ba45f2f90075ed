package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// LeaseStream takes or renews holder's lease on sink. The conditional
// UPDATE … RETURNING is re-checked by PostgreSQL on the newest row version
// when a concurrent caller updated it first, so one holder wins.
func (db *DB) LeaseStream(ctx context.Context, sink, holder string, now, until time.Time) (airlock.StreamCursor, bool, error) {
	return dialect.LeaseStreamWith(ctx,
		func(s sqlstore.Stmt) error { _, err := exec(ctx, db.pool, s); return err },
		func(s sqlstore.Stmt) sqlstore.Scanner { return row(ctx, db.pool, s) },
		func(err error) bool { return errors.Is(err, pgx.ErrNoRows) },
		sink, holder, now, until)
}

// AdvanceStream moves sink's cursor up to seq while holder's lease holds.
func (db *DB) AdvanceStream(ctx context.Context, sink, holder string, seq int64, now time.Time) (bool, error) {
	tag, err := exec(ctx, db.pool, dialect.AdvanceStream(sink, holder, seq, now))
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseStream ends holder's lease on sink.
func (db *DB) ReleaseStream(ctx context.Context, sink, holder string) error {
	_, err := exec(ctx, db.pool, dialect.ReleaseStream(sink, holder))
	return err
}

// StreamCursors returns every sink's cursor, ordered by sink.
func (db *DB) StreamCursors(ctx context.Context) ([]airlock.StreamCursor, error) {
	return list(ctx, db.pool, dialect.StreamCursors(), sqlstore.ScanStreamCursor)
}
