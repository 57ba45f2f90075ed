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

// PutDBRole records r, replacing its grant's earlier row.
func (db *DB) PutDBRole(ctx context.Context, r *airlock.DBRole) error {
	_, err := exec(ctx, db.pool, dialect.PutDBRole(r))
	return err
}

// DBRoleByGrant returns grantID's role, or ENOTFOUND.
func (db *DB) DBRoleByGrant(ctx context.Context, grantID string) (*airlock.DBRole, error) {
	return sqlstore.One(row(ctx, db.pool, dialect.DBRoleByGrant(grantID)), sqlstore.ScanDBRole, "no database role for grant %q", grantID)
}

// ListDBRoles returns the roles not dropped (all with dropped).
func (db *DB) ListDBRoles(ctx context.Context, dropped bool) ([]*airlock.DBRole, error) {
	return list(ctx, db.pool, dialect.ListDBRoles(dropped), sqlstore.ScanDBRole)
}

// SetDBRoleDropped records that grantID's role was dropped.
func (db *DB) SetDBRoleDropped(ctx context.Context, grantID string, at time.Time) (bool, error) {
	tag, err := exec(ctx, db.pool, dialect.SetDBRoleDropped(grantID, at))
	return err == nil && tag.RowsAffected() == 1, err
}

// AcquireLease takes lease name for holder when it is free or holder's:
// one INSERT … ON CONFLICT DO UPDATE … WHERE, which locks the row, so of
// concurrent callers for a free lease one gets it.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	rows, err := list(ctx, db.pool, dialect.AcquireLease(name, holder, now, until), func(s sqlstore.Scanner) (string, error) {
		var h string
		return h, s.Scan(&h)
	})
	return len(rows) == 1, err
}

// ReleaseLease frees name if holder has it.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := exec(ctx, db.pool, dialect.ReleaseLease(name, holder))
	return err
}
