package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// HeartbeatNode records that n.Name is alive at n.HeartbeatAt.
func (db *DB) HeartbeatNode(ctx context.Context, n airlock.Node) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO nodes (name, identity, heartbeat_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET identity = excluded.identity, heartbeat_at = excluded.heartbeat_at`,
		n.Name, n.Identity, tm(n.HeartbeatAt))
	return err
}

// EndLostSessions ends the active sessions of lost nodes that f selects.
// It is one UPDATE … WHERE ended_at IS NULL … RETURNING: when a concurrent
// caller updated a row first, PostgreSQL re-checks the condition on the
// new row version, which fails, so each session comes back to one caller.
func (db *DB) EndLostSessions(ctx context.Context, f airlock.LostFilter, now time.Time) ([]*airlock.Session, error) {
	args := []any{tm(now), string(airlock.EndNodeLost), f.Self}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	var lost []string
	if !f.StaleBefore.IsZero() {
		lost = append(lost, `NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name = sessions.node AND n.heartbeat_at >= `+arg(tm(f.StaleBefore))+`)`)
	}
	if f.Identity != "" {
		lost = append(lost, `EXISTS (SELECT 1 FROM nodes n WHERE n.name = sessions.node AND n.identity = `+arg(f.Identity)+`)`)
	}
	if len(lost) == 0 {
		return nil, nil
	}
	cond := `ended_at IS NULL AND node <> $3 AND (` + strings.Join(lost, " OR ") + `)`
	if f.SessionID != "" {
		cond += ` AND id = ` + arg(f.SessionID)
	}
	rows, err := db.pool.Query(ctx, `UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE `+cond+` RETURNING `+sessionCols, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Clock returns the database server's time: replicas judge one another's
// heartbeats on it, not on their own clocks, which may disagree.
func (db *DB) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
	return t.UTC(), err
}
