package sqlite

import (
	"context"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// HeartbeatNode records that n.Name is alive at n.HeartbeatAt.
func (db *DB) HeartbeatNode(ctx context.Context, n airlock.Node) error {
	_, err := exec(ctx, db.w, dialect.HeartbeatNode(n))
	return err
}

// EndLostSessions ends the active sessions of lost nodes that f selects.
// It is one UPDATE … WHERE ended_at IS NULL … RETURNING on the single
// writer connection; SQLite serialises writers, so each session comes back
// to one caller.
func (db *DB) EndLostSessions(ctx context.Context, f airlock.LostFilter, now time.Time) ([]*airlock.Session, error) {
	s, ok := dialect.EndLostSessions(f, now)
	if !ok {
		return nil, nil
	}
	return list(ctx, db.w, s, sqlstore.ScanSession)
}
