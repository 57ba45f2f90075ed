package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
)

// Users.

const userCols = `id, name, password_hash, groups, disabled, sso_subject, created_at, updated_at`

func scanUser(s scanner) (*airlock.User, error) {
	u := &airlock.User{}
	err := s.Scan(&u.ID, &u.Name, &u.PasswordHash, jsonCol{&u.Groups}, &u.Disabled, &u.SSOSubject, st(&u.CreatedAt), st(&u.UpdatedAt))
	return u, err
}

// CreateUser inserts u. ECONFLICT on a duplicate ID, name or SSO subject.
func (db *DB) CreateUser(ctx context.Context, u *airlock.User) error {
	_, err := db.w.ExecContext(ctx, q(`INSERT INTO users (`+userCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`),
		u.ID, u.Name, u.PasswordHash, jsList(u.Groups), u.Disabled, u.SSOSubject, tm(u.CreatedAt), tm(u.UpdatedAt))
	return writeErr(err, fmt.Sprintf("user %q already exists", u.Name), "")
}

// UpdateUser updates the user with u.ID. ENOTFOUND if missing, ECONFLICT if
// the new name or SSO subject is taken.
func (db *DB) UpdateUser(ctx context.Context, u *airlock.User) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE users SET name=$2, password_hash=$3, groups=$4, disabled=$5, sso_subject=$6, updated_at=$7 WHERE id=$1`),
		u.ID, u.Name, u.PasswordHash, jsList(u.Groups), u.Disabled, u.SSOSubject, tm(u.UpdatedAt))
	if err != nil {
		return writeErr(err, fmt.Sprintf("user %q already exists", u.Name), "")
	}
	return affected(res, nil, "user %q not found", u.ID)
}

// UserByID returns the user with id, or ENOTFOUND.
func (db *DB) UserByID(ctx context.Context, id string) (*airlock.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, q(`SELECT `+userCols+` FROM users WHERE id=$1`), id))
	if err != nil {
		return nil, notFound(err, "user %q not found", id)
	}
	return u, nil
}

// UserByName returns the user named name, or ENOTFOUND.
func (db *DB) UserByName(ctx context.Context, name string) (*airlock.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, q(`SELECT `+userCols+` FROM users WHERE name=$1`), name))
	if err != nil {
		return nil, notFound(err, "user %q not found", name)
	}
	return u, nil
}

// UserBySSOSubject returns the user with the SSO subject, or ENOTFOUND.
func (db *DB) UserBySSOSubject(ctx context.Context, subject string) (*airlock.User, error) {
	if subject == "" {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "user with SSO subject %q not found", subject)
	}
	u, err := scanUser(db.r.QueryRowContext(ctx, q(`SELECT `+userCols+` FROM users WHERE sso_subject=$1`), subject))
	if err != nil {
		return nil, notFound(err, "user with SSO subject %q not found", subject)
	}
	return u, nil
}

// ListUsers returns all users ordered by name.
func (db *DB) ListUsers(ctx context.Context) ([]*airlock.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers returns the number of users.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}

// ListGroups returns every group in use with its member names (sorted).
func (db *DB) ListGroups(ctx context.Context) (map[string][]string, error) {
	users, err := db.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, u := range users { // ordered by name, so members come out sorted
		for _, g := range u.Groups {
			out[g] = append(out[g], u.Name)
		}
	}
	return out, nil
}

// Factors.

const factorCols = `id, user_id, kind, name, status, secret, data, counter, created_at, last_used_at`

func scanFactor(s scanner) (*airlock.Factor, error) {
	f := &airlock.Factor{}
	err := s.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Status, &f.Secret, &f.Data, &f.Counter, st(&f.CreatedAt), st(&f.LastUsedAt))
	return f, err
}

// CreateFactor inserts f. ECONFLICT on a duplicate ID, ENOTFOUND if the user is missing.
func (db *DB) CreateFactor(ctx context.Context, f *airlock.Factor) error {
	_, err := db.w.ExecContext(ctx, q(`INSERT INTO factors (`+factorCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`),
		f.ID, f.UserID, f.Kind, f.Name, f.Status, blob(f.Secret), blob(f.Data), f.Counter, tm(f.CreatedAt), tm(f.LastUsedAt))
	return writeErr(err, fmt.Sprintf("factor %q already exists", f.ID), fmt.Sprintf("user %q not found", f.UserID))
}

// UpdateFactor updates name, status, secret, data and last use of the
// factor with f.ID (never Counter). ENOTFOUND if missing.
func (db *DB) UpdateFactor(ctx context.Context, f *airlock.Factor) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE factors SET name=$2, status=$3, secret=$4, data=$5, last_used_at=$6 WHERE id=$1`),
		f.ID, f.Name, f.Status, blob(f.Secret), blob(f.Data), tm(f.LastUsedAt))
	return affected(res, err, "factor %q not found", f.ID)
}

// FactorByID returns the factor with id, or ENOTFOUND.
func (db *DB) FactorByID(ctx context.Context, id string) (*airlock.Factor, error) {
	f, err := scanFactor(db.r.QueryRowContext(ctx, q(`SELECT `+factorCols+` FROM factors WHERE id=$1`), id))
	if err != nil {
		return nil, notFound(err, "factor %q not found", id)
	}
	return f, nil
}

// ListFactors returns the user's factors ordered by creation.
func (db *DB) ListFactors(ctx context.Context, userID string) ([]*airlock.Factor, error) {
	rows, err := db.r.QueryContext(ctx, q(`SELECT `+factorCols+` FROM factors WHERE user_id=$1 ORDER BY created_at, rowid`), userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.Factor
	for rows.Next() {
		f, err := scanFactor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// DeleteFactor deletes the factor with id. ENOTFOUND if missing.
func (db *DB) DeleteFactor(ctx context.Context, id string) error {
	res, err := db.w.ExecContext(ctx, q(`DELETE FROM factors WHERE id=$1`), id)
	return affected(res, err, "factor %q not found", id)
}

// AdvanceFactorCounter sets the counter to next only if it is below next,
// in one conditional UPDATE, and reports whether it did. ENOTFOUND if the
// factor is missing.
func (db *DB) AdvanceFactorCounter(ctx context.Context, id string, next int64, usedAt time.Time) (bool, error) {
	res, err := db.w.ExecContext(ctx, q(`UPDATE factors SET counter=$2, last_used_at=$3 WHERE id=$1 AND counter < $2`), id, next, tm(usedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 1 {
		return true, nil
	}
	var one int
	if err := db.w.QueryRowContext(ctx, q(`SELECT 1 FROM factors WHERE id=$1`), id).Scan(&one); err != nil {
		return false, notFound(err, "factor %q not found", id)
	}
	return false, nil
}

// Login sessions.

const loginCols = `id, token_hash, user_id, created_at, last_seen_at, expires_at, mfa_at, mfa_method, source_addr, revoked_at`

// CreateLoginSession inserts s. ECONFLICT on a duplicate ID or token hash,
// ENOTFOUND if the user is missing.
func (db *DB) CreateLoginSession(ctx context.Context, s *airlock.LoginSession) error {
	_, err := db.w.ExecContext(ctx, q(`INSERT INTO login_sessions (`+loginCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`),
		s.ID, s.TokenHash, s.UserID, tm(s.CreatedAt), tm(s.LastSeenAt), tm(s.ExpiresAt), tm(s.MFAAt), s.MFAMethod, s.SourceAddr, tm(s.RevokedAt))
	return writeErr(err, "login session already exists", fmt.Sprintf("user %q not found", s.UserID))
}

// LoginSessionByTokenHash returns the session (revoked or expired ones
// too: the caller checks), or ENOTFOUND.
func (db *DB) LoginSessionByTokenHash(ctx context.Context, hash []byte) (*airlock.LoginSession, error) {
	s := &airlock.LoginSession{}
	err := db.r.QueryRowContext(ctx, q(`SELECT `+loginCols+` FROM login_sessions WHERE token_hash=$1`), hash).Scan(
		&s.ID, &s.TokenHash, &s.UserID, st(&s.CreatedAt), st(&s.LastSeenAt), st(&s.ExpiresAt), st(&s.MFAAt), &s.MFAMethod, &s.SourceAddr, st(&s.RevokedAt))
	if err != nil {
		return nil, notFound(err, "login session not found")
	}
	return s, nil
}

// TouchLoginSession sets LastSeenAt. ENOTFOUND if missing.
func (db *DB) TouchLoginSession(ctx context.Context, id string, seen time.Time) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE login_sessions SET last_seen_at=$2 WHERE id=$1`), id, tm(seen))
	return affected(res, err, "login session %q not found", id)
}

// SetLoginSessionMFA records a fresh second factor. ENOTFOUND if missing.
func (db *DB) SetLoginSessionMFA(ctx context.Context, id string, at time.Time, method string) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE login_sessions SET mfa_at=$2, mfa_method=$3 WHERE id=$1`), id, tm(at), method)
	return affected(res, err, "login session %q not found", id)
}

// RevokeLoginSession revokes the session (keeping the first revocation
// time if already revoked). ENOTFOUND if missing.
func (db *DB) RevokeLoginSession(ctx context.Context, id string, at time.Time) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE login_sessions SET revoked_at=coalesce(revoked_at, $2) WHERE id=$1`), id, tm(at))
	return affected(res, err, "login session %q not found", id)
}

// RevokeUserLoginSessions revokes every unrevoked session of the user.
func (db *DB) RevokeUserLoginSessions(ctx context.Context, userID string, at time.Time) (int, error) {
	res, err := db.w.ExecContext(ctx, q(`UPDATE login_sessions SET revoked_at=$2 WHERE user_id=$1 AND revoked_at IS NULL`), userID, tm(at))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Resources.

const resourceCols = `id, name, kind, addr, labels, credentials, options, source, created_at`

func scanResource(s scanner) (*airlock.Resource, error) {
	r := &airlock.Resource{}
	err := s.Scan(&r.ID, &r.Name, &r.Kind, &r.Addr, jsonCol{&r.Labels}, jsonCol{&r.Credentials}, &r.Options, &r.Source, st(&r.CreatedAt))
	return r, err
}

func jsMap[V any](m map[string]V) string {
	if len(m) == 0 {
		return "{}"
	}
	return js(m)
}

// CreateResource inserts r. ECONFLICT on a duplicate name or ID.
func (db *DB) CreateResource(ctx context.Context, r *airlock.Resource) error {
	_, err := db.w.ExecContext(ctx, q(`INSERT INTO resources (`+resourceCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`),
		r.ID, r.Name, r.Kind, r.Addr, jsMap(r.Labels), jsMap(r.Credentials), blob(r.Options), r.Source, tm(r.CreatedAt))
	return writeErr(err, fmt.Sprintf("resource %q already exists", r.Name), "")
}

// UpdateResource updates the resource named r.Name (kind, address, labels,
// credentials, options, source). ENOTFOUND if missing.
func (db *DB) UpdateResource(ctx context.Context, r *airlock.Resource) error {
	res, err := db.w.ExecContext(ctx, q(`UPDATE resources SET kind=$2, addr=$3, labels=$4, credentials=$5, options=$6, source=$7 WHERE name=$1`),
		r.Name, r.Kind, r.Addr, jsMap(r.Labels), jsMap(r.Credentials), blob(r.Options), r.Source)
	return affected(res, err, "resource %q not found", r.Name)
}

// ResourceByName returns the resource, or ENOTFOUND.
func (db *DB) ResourceByName(ctx context.Context, name string) (*airlock.Resource, error) {
	r, err := scanResource(db.r.QueryRowContext(ctx, q(`SELECT `+resourceCols+` FROM resources WHERE name=$1`), name))
	if err != nil {
		return nil, notFound(err, "resource %q not found", name)
	}
	return r, nil
}

// ListResources returns all resources ordered by name.
func (db *DB) ListResources(ctx context.Context) ([]*airlock.Resource, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+resourceCols+` FROM resources ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteResource deletes the resource. ENOTFOUND if missing.
func (db *DB) DeleteResource(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, q(`DELETE FROM resources WHERE name=$1`), name)
	return affected(res, err, "resource %q not found", name)
}

// Policy.

// SavePolicy stores p as the next version and sets p.Version.
func (db *DB) SavePolicy(ctx context.Context, p *airlock.PolicyVersion) error {
	var v int64
	err := db.w.QueryRowContext(ctx, q(`INSERT INTO policies (version, document, applied_by, applied_at, sha256)
		SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4 FROM policies RETURNING version`),
		blob(p.Document), p.AppliedBy, tm(p.AppliedAt), p.SHA256).Scan(&v)
	if err != nil {
		return writeErr(err, "policy version conflict; retry", "")
	}
	p.Version = v
	return nil
}

// CurrentPolicy returns the highest version, or ENOTFOUND.
func (db *DB) CurrentPolicy(ctx context.Context) (*airlock.PolicyVersion, error) {
	p := &airlock.PolicyVersion{}
	err := db.r.QueryRowContext(ctx, `SELECT version, document, applied_by, applied_at, sha256 FROM policies ORDER BY version DESC LIMIT 1`).Scan(
		&p.Version, &p.Document, &p.AppliedBy, st(&p.AppliedAt), &p.SHA256)
	if err != nil {
		return nil, notFound(err, "no policy has been applied")
	}
	return p, nil
}

// KV.

// PutKV stores value under key; a zero expiresAt never expires.
func (db *DB) PutKV(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	if value == nil {
		value = []byte{}
	}
	_, err := db.w.ExecContext(ctx, q(`INSERT INTO kv (key, value, expires_at) VALUES ($1,$2,$3)
		ON CONFLICT (key) DO UPDATE SET value=excluded.value, expires_at=excluded.expires_at`), key, value, tm(expiresAt))
	return err
}

// GetKV returns the value under key, or ENOTFOUND if missing or expired at now.
func (db *DB) GetKV(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := db.r.QueryRowContext(ctx, q(`SELECT value FROM kv WHERE key=$1 AND (expires_at IS NULL OR expires_at > $2)`), key, now.UnixMicro()).Scan(&v)
	if err != nil {
		return nil, notFound(err, "key %q not found", key)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// TakeKV deletes key and returns its value; ENOTFOUND if it was missing
// or expired at now. One DELETE … RETURNING, so of concurrent takers (on
// any replica) only one gets the value.
func (db *DB) TakeKV(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	var expires time.Time
	err := db.w.QueryRowContext(ctx, q(`DELETE FROM kv WHERE key=$1 RETURNING value, expires_at`), key).Scan(&v, st(&expires))
	if err != nil {
		return nil, notFound(err, "key %q not found", key)
	}
	if !expires.IsZero() && !expires.After(now) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "key %q not found", key)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// DeleteKV deletes key; deleting a missing key is not an error.
func (db *DB) DeleteKV(ctx context.Context, key string) error {
	_, err := db.w.ExecContext(ctx, q(`DELETE FROM kv WHERE key=$1`), key)
	return err
}

// ScanKV returns the unexpired keys starting with prefix and their values.
func (db *DB) ScanKV(ctx context.Context, prefix string, now time.Time) (map[string][]byte, error) {
	rows, err := db.r.QueryContext(ctx, q(`SELECT key, value FROM kv WHERE substr(key, 1, length($1)) = $1
		AND (expires_at IS NULL OR expires_at > $2)`), prefix, now.UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		out[k] = v
	}
	return out, rows.Err()
}

// Throttles.

// hitThrottleSQL counts a hit in one statement (on the single writer
// connection, and under SQLite's write lock across processes), so the
// count returned is the count this hit made. SET expressions read the
// row as it was before the update.
const hitThrottleSQL = `INSERT INTO throttles (key, count, window_start, last_at, prev_at, expires_at) VALUES ($1, 1, $2, $2, NULL, $3)
	ON CONFLICT (key) DO UPDATE SET
		count        = CASE WHEN throttles.expires_at <= excluded.last_at THEN 1 ELSE throttles.count + 1 END,
		prev_at      = CASE WHEN throttles.expires_at <= excluded.last_at THEN NULL ELSE throttles.last_at END,
		window_start = CASE WHEN throttles.expires_at <= excluded.last_at THEN excluded.window_start ELSE throttles.window_start END,
		expires_at   = CASE WHEN throttles.expires_at <= excluded.last_at THEN excluded.expires_at ELSE throttles.expires_at END,
		last_at      = excluded.last_at
	RETURNING count, window_start, prev_at`

// HitThrottle counts one hit on key at now, atomically.
func (db *DB) HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (airlock.ThrottleHit, error) {
	var h airlock.ThrottleHit
	err := db.w.QueryRowContext(ctx, q(hitThrottleSQL), key, now.UnixMicro(), now.Add(window).UnixMicro()).Scan(&h.Count, st(&h.WindowStart), st(&h.Prev))
	if err != nil {
		return airlock.ThrottleHit{}, fmt.Errorf("hit throttle: %w", err)
	}
	return h, nil
}

// ResetThrottle forgets key's window.
func (db *DB) ResetThrottle(ctx context.Context, key string) error {
	_, err := db.w.ExecContext(ctx, q(`DELETE FROM throttles WHERE key=$1`), key)
	return err
}

// PurgeThrottles deletes the windows that ended at or before now.
func (db *DB) PurgeThrottles(ctx context.Context, now time.Time) (int, error) {
	res, err := db.w.ExecContext(ctx, q(`DELETE FROM throttles WHERE expires_at <= $1`), now.UnixMicro())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
