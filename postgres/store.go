package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// Users.

// CreateUser inserts u. ECONFLICT on a duplicate ID, name or SSO subject.
func (db *DB) CreateUser(ctx context.Context, u *airlock.User) error {
	_, err := exec(ctx, db.pool, dialect.InsertUser(u))
	return writeErr(err, sqlstore.UserExists(u), "")
}

// UpdateUser updates the user with u.ID. ENOTFOUND if missing, ECONFLICT if
// the new name or SSO subject is taken.
func (db *DB) UpdateUser(ctx context.Context, u *airlock.User) error {
	res, err := exec(ctx, db.pool, dialect.UpdateUser(u))
	if err != nil {
		return writeErr(err, sqlstore.UserExists(u), "")
	}
	return affected(res, nil, "user %q not found", u.ID)
}

// UserByID returns the user with id, or ENOTFOUND.
func (db *DB) UserByID(ctx context.Context, id string) (*airlock.User, error) {
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.UserCols+` FROM users WHERE id=$1`, id), sqlstore.ScanUser, "user %q not found", id)
}

// UserByName returns the user named name, or ENOTFOUND.
func (db *DB) UserByName(ctx context.Context, name string) (*airlock.User, error) {
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.UserCols+` FROM users WHERE name=$1`, name), sqlstore.ScanUser, "user %q not found", name)
}

// UserBySSOSubject returns the user with the SSO subject, or ENOTFOUND.
func (db *DB) UserBySSOSubject(ctx context.Context, subject string) (*airlock.User, error) {
	if subject == "" {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "user with SSO subject %q not found", subject)
	}
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.UserCols+` FROM users WHERE sso_subject=$1`, subject), sqlstore.ScanUser, "user with SSO subject %q not found", subject)
}

// ListUsers returns all users ordered by name.
func (db *DB) ListUsers(ctx context.Context) ([]*airlock.User, error) {
	return list(ctx, db.pool, sqlstore.Stmt{SQL: `SELECT ` + sqlstore.UserCols + ` FROM users ORDER BY name COLLATE "C"`}, sqlstore.ScanUser)
}

// CountUsers returns the number of users.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}

// ListGroups returns every group in use with its member names (sorted).
func (db *DB) ListGroups(ctx context.Context) (map[string][]string, error) {
	users, err := db.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	return sqlstore.GroupMembers(users), nil
}

// Factors.

// CreateFactor inserts f. ECONFLICT on a duplicate ID, ENOTFOUND if the user is missing.
func (db *DB) CreateFactor(ctx context.Context, f *airlock.Factor) error {
	_, err := exec(ctx, db.pool, dialect.InsertFactor(f))
	return writeErr(err, fmt.Sprintf("factor %q already exists", f.ID), fmt.Sprintf("user %q not found", f.UserID))
}

// UpdateFactor updates name, status, secret, data and last use of the
// factor with f.ID (never Counter). ENOTFOUND if missing.
func (db *DB) UpdateFactor(ctx context.Context, f *airlock.Factor) error {
	res, err := exec(ctx, db.pool, dialect.UpdateFactor(f))
	return affected(res, err, "factor %q not found", f.ID)
}

// FactorByID returns the factor with id, or ENOTFOUND.
func (db *DB) FactorByID(ctx context.Context, id string) (*airlock.Factor, error) {
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.FactorCols+` FROM factors WHERE id=$1`, id), sqlstore.ScanFactor, "factor %q not found", id)
}

// ListFactors returns the user's factors ordered by creation.
func (db *DB) ListFactors(ctx context.Context, userID string) ([]*airlock.Factor, error) {
	return list(ctx, db.pool, dialect.ListFactors(userID), sqlstore.ScanFactor)
}

// DeleteFactor deletes the factor with id. ENOTFOUND if missing.
func (db *DB) DeleteFactor(ctx context.Context, id string) error {
	res, err := db.pool.Exec(ctx, `DELETE FROM factors WHERE id=$1`, id)
	return affected(res, err, "factor %q not found", id)
}

// AdvanceFactorCounter sets the counter to next only if it is below next,
// in one conditional UPDATE, and reports whether it did. ENOTFOUND if the
// factor is missing.
func (db *DB) AdvanceFactorCounter(ctx context.Context, id string, next int64, usedAt time.Time) (bool, error) {
	res, err := db.pool.Exec(ctx, `UPDATE factors SET counter=$2, last_used_at=$3 WHERE id=$1 AND counter < $2`, id, next, tm(usedAt))
	if err != nil {
		return false, err
	}
	if res.RowsAffected() == 1 {
		return true, nil
	}
	return sqlstore.FactorCounterStale(ctx, rowFunc(db.pool), id)
}

// Login sessions.

// CreateLoginSession inserts s. ECONFLICT on a duplicate ID or token hash,
// ENOTFOUND if the user is missing.
func (db *DB) CreateLoginSession(ctx context.Context, s *airlock.LoginSession) error {
	_, err := exec(ctx, db.pool, dialect.InsertLoginSession(s))
	return writeErr(err, "login session already exists", fmt.Sprintf("user %q not found", s.UserID))
}

// LoginSessionByTokenHash returns the session (revoked or expired ones
// too: the caller checks), or ENOTFOUND.
func (db *DB) LoginSessionByTokenHash(ctx context.Context, hash []byte) (*airlock.LoginSession, error) {
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.LoginCols+` FROM login_sessions WHERE token_hash=$1`, hash), sqlstore.ScanLoginSession, "login session not found")
}

// TouchLoginSession sets LastSeenAt. ENOTFOUND if missing.
func (db *DB) TouchLoginSession(ctx context.Context, id string, seen time.Time) error {
	res, err := db.pool.Exec(ctx, `UPDATE login_sessions SET last_seen_at=$2 WHERE id=$1`, id, tm(seen))
	return affected(res, err, "login session %q not found", id)
}

// SetLoginSessionMFA records a fresh second factor. ENOTFOUND if missing.
func (db *DB) SetLoginSessionMFA(ctx context.Context, id string, at time.Time, method string) error {
	res, err := db.pool.Exec(ctx, `UPDATE login_sessions SET mfa_at=$2, mfa_method=$3 WHERE id=$1`, id, tm(at), method)
	return affected(res, err, "login session %q not found", id)
}

// RevokeLoginSession revokes the session (keeping the first revocation
// time if already revoked). ENOTFOUND if missing.
func (db *DB) RevokeLoginSession(ctx context.Context, id string, at time.Time) error {
	res, err := db.pool.Exec(ctx, `UPDATE login_sessions SET revoked_at=coalesce(revoked_at, $2) WHERE id=$1`, id, tm(at))
	return affected(res, err, "login session %q not found", id)
}

// RevokeUserLoginSessions revokes every unrevoked session of the user.
func (db *DB) RevokeUserLoginSessions(ctx context.Context, userID string, at time.Time) (int, error) {
	res, err := db.pool.Exec(ctx, `UPDATE login_sessions SET revoked_at=$2 WHERE user_id=$1 AND revoked_at IS NULL`, userID, tm(at))
	if err != nil {
		return 0, err
	}
	return int(res.RowsAffected()), nil
}

// Resources.

// CreateResource inserts r. ECONFLICT on a duplicate name or ID.
func (db *DB) CreateResource(ctx context.Context, r *airlock.Resource) error {
	_, err := exec(ctx, db.pool, dialect.InsertResource(r))
	return writeErr(err, fmt.Sprintf("resource %q already exists", r.Name), "")
}

// UpdateResource updates the resource named r.Name (kind, address, labels,
// credentials, options, source). ENOTFOUND if missing.
func (db *DB) UpdateResource(ctx context.Context, r *airlock.Resource) error {
	res, err := exec(ctx, db.pool, sqlstore.UpdateResource(r))
	return affected(res, err, "resource %q not found", r.Name)
}

// ResourceByName returns the resource, or ENOTFOUND.
func (db *DB) ResourceByName(ctx context.Context, name string) (*airlock.Resource, error) {
	return sqlstore.One(db.pool.QueryRow(ctx, `SELECT `+sqlstore.ResourceCols+` FROM resources WHERE name=$1`, name), sqlstore.ScanResource, "resource %q not found", name)
}

// ListResources returns all resources ordered by name.
func (db *DB) ListResources(ctx context.Context) ([]*airlock.Resource, error) {
	return list(ctx, db.pool, sqlstore.Stmt{SQL: `SELECT ` + sqlstore.ResourceCols + ` FROM resources ORDER BY name COLLATE "C"`}, sqlstore.ScanResource)
}

// DeleteResource deletes the resource. ENOTFOUND if missing.
func (db *DB) DeleteResource(ctx context.Context, name string) error {
	res, err := db.pool.Exec(ctx, `DELETE FROM resources WHERE name=$1`, name)
	return affected(res, err, "resource %q not found", name)
}

// Policy.

// SavePolicy stores p as the next version and sets p.Version. Concurrent
// saves (from any replica) are serialised by a table lock, so versions are
// dense and never collide.
func (db *DB) SavePolicy(ctx context.Context, p *airlock.PolicyVersion) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	var v int64
	err = tx.QueryRow(ctx, `INSERT INTO policies (version, document, applied_by, applied_at, sha256)
		SELECT coalesce(max(version), 0) + 1, $1::bytea, $2::text, $3::timestamptz, $4::text FROM policies RETURNING version`,
		sqlstore.Blob(p.Document), p.AppliedBy, tm(p.AppliedAt), p.SHA256).Scan(&v)
	if err != nil {
		return writeErr(err, "policy version conflict; retry", "")
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	p.Version = v
	return nil
}

// CurrentPolicy returns the highest version, or ENOTFOUND.
func (db *DB) CurrentPolicy(ctx context.Context) (*airlock.PolicyVersion, error) {
	return sqlstore.ScanPolicy(db.pool.QueryRow(ctx, sqlstore.CurrentPolicySQL))
}

// KV.

// PutKV stores value under key; a zero expiresAt never expires.
func (db *DB) PutKV(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	_, err := exec(ctx, db.pool, dialect.PutKV(key, value, expiresAt))
	return err
}

// GetKV returns the value under key, or ENOTFOUND if missing or expired at now.
func (db *DB) GetKV(ctx context.Context, key string, now time.Time) ([]byte, error) {
	return dialect.GetKV(ctx, rowFunc(db.pool), key, now)
}

// TakeKV deletes key and returns its value; ENOTFOUND if it was missing
// or expired at now. One DELETE … RETURNING, so of concurrent takers (on
// any replica) only one gets the value.
func (db *DB) TakeKV(ctx context.Context, key string, now time.Time) ([]byte, error) {
	return sqlstore.TakeKV(ctx, rowFunc(db.pool), key, now)
}

// DeleteKV deletes key; deleting a missing key is not an error.
func (db *DB) DeleteKV(ctx context.Context, key string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM kv WHERE key=$1`, key)
	return err
}

// ScanKV returns the unexpired keys starting with prefix and their values.
func (db *DB) ScanKV(ctx context.Context, prefix string, now time.Time) (map[string][]byte, error) {
	s := dialect.ScanKV(prefix, now)
	rows, err := db.pool.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.CollectKV(rows)
}

// Throttles.

// HitThrottle counts one hit on key at now, atomically across replicas:
// in sqlstore.HitThrottleSQL, INSERT … ON CONFLICT DO UPDATE locks the
// key's row, so concurrent hits on any replica are serialised.
func (db *DB) HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (airlock.ThrottleHit, error) {
	var h airlock.ThrottleHit
	err := db.pool.QueryRow(ctx, sqlstore.HitThrottleSQL, key, tm(now), tm(now.Add(window))).Scan(&h.Count, sqlstore.Time(&h.WindowStart), sqlstore.Time(&h.Prev))
	if err != nil {
		return airlock.ThrottleHit{}, fmt.Errorf("hit throttle: %w", err)
	}
	return h, nil
}

// ResetThrottle forgets key's window.
func (db *DB) ResetThrottle(ctx context.Context, key string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM throttles WHERE key=$1`, key)
	return err
}

// PurgeThrottles deletes the windows that ended at or before now. Rows a
// concurrent hit holds are skipped (SKIP LOCKED), so a purge never waits
// for, deadlocks with, or deletes a window a hit just renewed.
func (db *DB) PurgeThrottles(ctx context.Context, now time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM throttles WHERE key IN
		(SELECT key FROM throttles WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)`, tm(now))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
