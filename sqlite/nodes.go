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

// PutDBRole records r, replacing its grant's earlier row.
func (db *DB) PutDBRole(ctx context.Context, r *airlock.DBRole) error {
	_, err := exec(ctx, db.w, dialect.PutDBRole(r))
	return err
}

// DBRoleByGrant returns grantID's role, or ENOTFOUND.
func (db *DB) DBRoleByGrant(ctx context.Context, grantID string) (*airlock.DBRole, error) {
	return sqlstore.One(row(ctx, db.r, dialect.DBRoleByGrant(grantID)), sqlstore.ScanDBRole, "no database role for grant %q", grantID)
}

// ListDBRoles returns the roles not dropped (all with dropped).
func (db *DB) ListDBRoles(ctx context.Context, dropped bool) ([]*airlock.DBRole, error) {
	return list(ctx, db.r, dialect.ListDBRoles(dropped), sqlstore.ScanDBRole)
}

// SetDBRoleDropped records that grantID's role was dropped.
func (db *DB) SetDBRoleDropped(ctx context.Context, grantID string, at time.Time) (bool, error) {
	res, err := exec(ctx, db.w, dialect.SetDBRoleDropped(grantID, at))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AcquireLease takes lease name for holder when it is free or holder's.
// SQLite serialises writers on the one writer connection.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	rows, err := list(ctx, db.w, dialect.AcquireLease(name, holder, now, until), func(s sqlstore.Scanner) (string, error) {
		var h string
		return h, s.Scan(&h)
	})
	return len(rows) == 1, err
}

// ReleaseLease frees name if holder has it.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := exec(ctx, db.w, dialect.ReleaseLease(name, holder))
	return err
}
