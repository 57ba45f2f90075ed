package postgres

import (
	"context"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// HeartbeatNode records that n.Name is alive at n.HeartbeatAt.
func (db *DB) HeartbeatNode(ctx context.Context, n airlock.Node) error {
	_, err := exec(ctx, db.pool, dialect.HeartbeatNode(n))
	return err
}

// EndLostSessions ends the active sessions of lost nodes that f selects.
// It is one UPDATE … WHERE ended_at IS NULL … RETURNING: when a concurrent
// caller updated a row first, PostgreSQL re-checks the condition on the
// new row version, which fails, so each session comes back to one caller.
func (db *DB) EndLostSessions(ctx context.Context, f airlock.LostFilter, now time.Time) ([]*airlock.Session, error) {
	s, ok := dialect.EndLostSessions(f, now)
	if !ok {
		return nil, nil
	}
	return list(ctx, db.pool, s, sqlstore.ScanSession)
}

// Clock returns the database server's time: replicas judge one another's
// heartbeats on it, not on their own clocks, which may disagree.
func (db *DB) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
	return t.UTC(), err
}
