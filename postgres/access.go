package postgres

import (
	"context"
	"fmt"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Requests.

const requestCols = `id, user_id, user_name, resource, access, duration, reason, ticket, start_at, state, rule,
	required_approvals, approver_groups, break_glass, extends_grant_id, grant_id, policy_version, created_at, expires_at, decided_at`

func scanRequest(s scanner) (*airlock.AccessRequest, error) {
	r := &airlock.AccessRequest{}
	var dur int64
	err := s.Scan(&r.ID, &r.UserID, &r.UserName, &r.Resource, &r.Access, &dur, &r.Reason, &r.Ticket, st(&r.StartAt), &r.State, &r.Rule,
		&r.RequiredApprovals, jsonCol{&r.ApproverGroups}, &r.BreakGlass, &r.ExtendsGrantID, &r.GrantID, &r.PolicyVersion,
		st(&r.CreatedAt), st(&r.ExpiresAt), st(&r.DecidedAt))
	r.Duration = time.Duration(dur)
	return r, err
}

// CreateRequest inserts r. ECONFLICT on a duplicate ID.
func (db *DB) CreateRequest(ctx context.Context, r *airlock.AccessRequest) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO requests (`+requestCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
		r.ID, r.UserID, r.UserName, r.Resource, r.Access, int64(r.Duration), r.Reason, r.Ticket, tm(r.StartAt), r.State, r.Rule,
		r.RequiredApprovals, jsList(r.ApproverGroups), r.BreakGlass, r.ExtendsGrantID, r.GrantID, r.PolicyVersion,
		tm(r.CreatedAt), tm(r.ExpiresAt), tm(r.DecidedAt))
	return writeErr(err, fmt.Sprintf("request %q already exists", r.ID), "")
}

// RequestByID returns the request, or ENOTFOUND.
func (db *DB) RequestByID(ctx context.Context, id string) (*airlock.AccessRequest, error) {
	r, err := scanRequest(db.pool.QueryRow(ctx, `SELECT `+requestCols+` FROM requests WHERE id=$1`, id))
	if err != nil {
		return nil, notFound(err, "request %q not found", id)
	}
	return r, nil
}

// ListRequests returns matching requests, newest first.
func (db *DB) ListRequests(ctx context.Context, f airlock.RequestFilter) ([]*airlock.AccessRequest, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$", fmt.Sprintf("$%d", len(args))))
	}
	if f.UserID != "" {
		add("user_id = $", f.UserID)
	}
	if f.State != "" {
		add("state = $", f.State)
	}
	if f.BreakGlass != nil {
		add("break_glass = $", *f.BreakGlass)
	}
	query := `SELECT ` + requestCols + ` FROM requests` + whereClause(where) + ` ORDER BY created_at DESC, pos DESC` + limit(f.Limit)
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.AccessRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// SetRequestState moves the request from state "from" to "to" in one
// conditional UPDATE and records at as its decision time. ENOTFOUND if
// missing, ECONFLICT if it was not in "from".
func (db *DB) SetRequestState(ctx context.Context, id, from, to string, at time.Time) error {
	res, err := db.pool.Exec(ctx, `UPDATE requests SET state=$3, decided_at=$4 WHERE id=$1 AND state=$2`, id, from, to, tm(at))
	if err != nil {
		return err
	}
	if res.RowsAffected() == 1 {
		return nil
	}
	return db.requestConflict(ctx, db.pool, id, from)
}

type queryer interface {
	QueryRow(ctx context.Context, query string, args ...any) pgx.Row
}

func (db *DB) requestConflict(ctx context.Context, qr queryer, id, want string) error {
	var state string
	if err := qr.QueryRow(ctx, `SELECT state FROM requests WHERE id=$1`, id).Scan(&state); err != nil {
		return notFound(err, "request %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "request %q is %s, not %s", id, state, want)
}

// AddReview records a review. ECONFLICT if the reviewer already reviewed
// the request, ENOTFOUND if the request is missing.
func (db *DB) AddReview(ctx context.Context, rv *airlock.Review) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO reviews (request_id, reviewer_id, reviewer_name, decision, comment, mfa_method, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		rv.RequestID, rv.ReviewerID, rv.ReviewerName, rv.Decision, rv.Comment, rv.MFAMethod, tm(rv.CreatedAt))
	return writeErr(err, fmt.Sprintf("%s already reviewed request %q", rv.ReviewerName, rv.RequestID), fmt.Sprintf("request %q not found", rv.RequestID))
}

// ListReviews returns the request's reviews, oldest first.
func (db *DB) ListReviews(ctx context.Context, requestID string) ([]*airlock.Review, error) {
	rows, err := db.pool.Query(ctx, `SELECT request_id, reviewer_id, reviewer_name, decision, comment, mfa_method, created_at FROM reviews WHERE request_id=$1 ORDER BY created_at, pos`, requestID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.Review
	for rows.Next() {
		rv := &airlock.Review{}
		if err := rows.Scan(&rv.RequestID, &rv.ReviewerID, &rv.ReviewerName, &rv.Decision, &rv.Comment, &rv.MFAMethod, st(&rv.CreatedAt)); err != nil {
			return nil, err
		}
		out = append(out, rv)
	}
	return out, rows.Err()
}

// Grants.

const grantCols = `id, request_id, user_id, user_name, resource, access, starts_at, ends_at, state, mfa_method, break_glass,
	acked_by, acked_at, revoked_at, revoked_by, revoke_reason, created_at`

func scanGrant(s scanner) (*airlock.Grant, error) {
	g := &airlock.Grant{}
	err := s.Scan(&g.ID, &g.RequestID, &g.UserID, &g.UserName, &g.Resource, &g.Access, st(&g.StartsAt), st(&g.EndsAt), &g.State, &g.MFAMethod, &g.BreakGlass,
		&g.AckedBy, st(&g.AckedAt), st(&g.RevokedAt), &g.RevokedBy, &g.RevokeReason, st(&g.CreatedAt))
	return g, err
}

type execer interface {
	Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error)
}

func insertGrant(ctx context.Context, ex execer, g *airlock.Grant) error {
	_, err := ex.Exec(ctx, `INSERT INTO grants (`+grantCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
		g.ID, g.RequestID, g.UserID, g.UserName, g.Resource, g.Access, tm(g.StartsAt), tm(g.EndsAt), g.State, g.MFAMethod, g.BreakGlass,
		g.AckedBy, tm(g.AckedAt), tm(g.RevokedAt), g.RevokedBy, g.RevokeReason, tm(g.CreatedAt))
	return writeErr(err, fmt.Sprintf("grant %q (or a grant for request %q) already exists", g.ID, g.RequestID), "")
}

// ApproveRequest moves the pending request to approved, records g.ID on it
// and inserts g (with RequestID set to requestID), in one transaction.
// ECONFLICT if the request is not pending, ENOTFOUND if it is missing.
func (db *DB) ApproveRequest(ctx context.Context, requestID string, g *airlock.Grant) error {
	if g.RequestID == "" {
		g.RequestID = requestID
	}
	if g.RequestID != requestID {
		return airlock.Errorf(airlock.EINVALID, "grant is for request %q, not %q", g.RequestID, requestID)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	res, err := tx.Exec(ctx, `UPDATE requests SET state='approved', grant_id=$2, decided_at=coalesce($3, decided_at) WHERE id=$1 AND state='pending'`,
		requestID, g.ID, tm(g.CreatedAt))
	if err != nil {
		return err
	}
	if res.RowsAffected() != 1 {
		return db.requestConflict(ctx, tx, requestID, airlock.RequestPending)
	}
	if err := insertGrant(ctx, tx, g); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// CreateGrant inserts g. ECONFLICT on a duplicate ID or a second grant for
// the same request.
func (db *DB) CreateGrant(ctx context.Context, g *airlock.Grant) error {
	return insertGrant(ctx, db.pool, g)
}

// GrantByID returns the grant, or ENOTFOUND.
func (db *DB) GrantByID(ctx context.Context, id string) (*airlock.Grant, error) {
	g, err := scanGrant(db.pool.QueryRow(ctx, `SELECT `+grantCols+` FROM grants WHERE id=$1`, id))
	if err != nil {
		return nil, notFound(err, "grant %q not found", id)
	}
	return g, nil
}

// ListGrants returns matching grants, newest first.
func (db *DB) ListGrants(ctx context.Context, f airlock.GrantFilter) ([]*airlock.Grant, error) {
	var where []string
	var args []any
	add := func(cond string, vs ...any) {
		for _, v := range vs {
			args = append(args, v)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		where = append(where, cond)
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if f.Resource != "" {
		add("resource = ?", f.Resource)
	}
	if !f.ActiveAt.IsZero() {
		add("state = 'active' AND starts_at <= ? AND ends_at > ?", tm(f.ActiveAt), tm(f.ActiveAt))
	}
	if !f.DueBefore.IsZero() {
		add("state = 'active' AND ends_at <= ?", tm(f.DueBefore))
	}
	if f.UnackedBreakGlass {
		add("break_glass AND acked_at IS NULL")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+grantCols+` FROM grants`+whereClause(where)+` ORDER BY created_at DESC, pos DESC`+limit(f.Limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// EndGrant moves an active grant to state (expired or revoked), recording
// at, by and reason in RevokedAt, RevokedBy and RevokeReason. ECONFLICT if
// it is no longer active, ENOTFOUND if missing, EINVALID for another state.
func (db *DB) EndGrant(ctx context.Context, id, state string, at time.Time, by, reason string) error {
	if state != airlock.GrantExpired && state != airlock.GrantRevoked {
		return airlock.Errorf(airlock.EINVALID, "a grant can only end as %s or %s, not %q", airlock.GrantExpired, airlock.GrantRevoked, state)
	}
	res, err := db.pool.Exec(ctx, `UPDATE grants SET state=$2, revoked_at=$3, revoked_by=$4, revoke_reason=$5 WHERE id=$1 AND state='active'`,
		id, state, tm(at), by, reason)
	if err != nil {
		return err
	}
	if res.RowsAffected() == 1 {
		return nil
	}
	var cur string
	if err := db.pool.QueryRow(ctx, `SELECT state FROM grants WHERE id=$1`, id).Scan(&cur); err != nil {
		return notFound(err, "grant %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "grant %q is already %s", id, cur)
}

// ExpireGrants expires the listed grants that are still active and due, in
// one statement, and returns the IDs it changed.
func (db *DB) ExpireGrants(ctx context.Context, ids []string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `UPDATE grants SET state='expired', revoked_at=$2, revoked_by='system', revoke_reason='ends_at reached'
		WHERE id = ANY($1) AND state='active' AND ends_at <= $2 RETURNING id`, ids, tm(at))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var changed []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		changed = append(changed, id)
	}
	return changed, rows.Err()
}

// AckGrant records a break-glass acknowledgement. ENOTFOUND if missing,
// ECONFLICT if already acknowledged.
func (db *DB) AckGrant(ctx context.Context, id, by string, at time.Time) error {
	res, err := db.pool.Exec(ctx, `UPDATE grants SET acked_by=$2, acked_at=$3 WHERE id=$1 AND acked_at IS NULL`, id, by, tm(at))
	if err != nil {
		return err
	}
	if res.RowsAffected() == 1 {
		return nil
	}
	var ackedBy string
	if err := db.pool.QueryRow(ctx, `SELECT acked_by FROM grants WHERE id=$1`, id).Scan(&ackedBy); err != nil {
		return notFound(err, "grant %q not found", id)
	}
	return airlock.Errorf(airlock.ECONFLICT, "grant %q was already acknowledged by %s", id, ackedBy)
}

// Connect tokens.

// CreateConnectToken inserts t. ECONFLICT on a duplicate hash, ENOTFOUND if
// the grant is missing.
func (db *DB) CreateConnectToken(ctx context.Context, t *airlock.ConnectToken) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO connect_tokens (token_hash, user_id, grant_id, resource, expires_at, uses_left, created_at, scram_stored_key, scram_server_key)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		t.TokenHash, t.UserID, t.GrantID, t.Resource, tm(t.ExpiresAt), t.UsesLeft, tm(t.CreatedAt), t.SCRAMStoredKey, t.SCRAMServerKey)
	return writeErr(err, "connect token already exists", fmt.Sprintf("grant %q not found", t.GrantID))
}

// UseConnectToken decrements the token's uses in one conditional UPDATE …
// RETURNING and returns it (with the remaining uses). ENOTFOUND if it is
// missing, used up or expired at now.
func (db *DB) UseConnectToken(ctx context.Context, hash []byte, now time.Time) (*airlock.ConnectToken, error) {
	t := &airlock.ConnectToken{}
	err := db.pool.QueryRow(ctx, `UPDATE connect_tokens SET uses_left = uses_left - 1
		WHERE token_hash=$1 AND uses_left > 0 AND expires_at > $2
		RETURNING `+tokenCols, hash, now).Scan(tokenDest(t)...)
	if err != nil {
		return nil, notFound(err, "connect token not found")
	}
	return t, nil
}

const tokenCols = `token_hash, user_id, grant_id, resource, expires_at, uses_left, created_at, scram_stored_key, scram_server_key`

func tokenDest(t *airlock.ConnectToken) []any {
	return []any{&t.TokenHash, &t.UserID, &t.GrantID, &t.Resource, st(&t.ExpiresAt), &t.UsesLeft, st(&t.CreatedAt), &t.SCRAMStoredKey, &t.SCRAMServerKey}
}

// LiveConnectTokens returns userID's usable tokens for resource at now,
// newest first.
func (db *DB) LiveConnectTokens(ctx context.Context, userID, resource string, now time.Time) ([]*airlock.ConnectToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenCols+` FROM connect_tokens
		WHERE user_id = $1 AND resource = $2 AND uses_left > 0 AND expires_at > $3 ORDER BY created_at DESC LIMIT $4`,
		userID, resource, now, airlock.MaxLiveConnectTokens)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*airlock.ConnectToken
	for rows.Next() {
		t := &airlock.ConnectToken{}
		if err := rows.Scan(tokenDest(t)...); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Sessions.

const sessionCols = `id, grant_id, user_id, user_name, resource, kind, access, source_addr, node, started_at, ended_at, end_reason,
	bytes_in, bytes_out, statements, recording, recording_sha256`

func scanSession(s scanner) (*airlock.Session, error) {
	x := &airlock.Session{}
	err := s.Scan(&x.ID, &x.GrantID, &x.UserID, &x.UserName, &x.Resource, &x.Kind, &x.Access, &x.SourceAddr, &x.Node, st(&x.StartedAt), st(&x.EndedAt), &x.EndReason,
		&x.BytesIn, &x.BytesOut, &x.Statements, &x.Recording, &x.RecordingSHA256)
	return x, err
}

// CreateSession inserts s. ECONFLICT on a duplicate ID.
func (db *DB) CreateSession(ctx context.Context, s *airlock.Session) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
		s.ID, s.GrantID, s.UserID, s.UserName, s.Resource, s.Kind, s.Access, s.SourceAddr, s.Node, tm(s.StartedAt), tm(s.EndedAt), s.EndReason,
		s.BytesIn, s.BytesOut, s.Statements, s.Recording, s.RecordingSHA256)
	return writeErr(err, fmt.Sprintf("session %q already exists", s.ID), "")
}

// EndSession records the end of the active session with s.ID (ended_at,
// end_reason, bytes, statements, recording). ECONFLICT if it has already
// ended, ENOTFOUND if missing.
func (db *DB) EndSession(ctx context.Context, s *airlock.Session) error {
	res, err := db.pool.Exec(ctx, `UPDATE sessions SET ended_at=$2, end_reason=$3, bytes_in=$4, bytes_out=$5, statements=$6, recording=$7, recording_sha256=$8 WHERE id=$1 AND ended_at IS NULL`,
		s.ID, tm(s.EndedAt), s.EndReason, s.BytesIn, s.BytesOut, s.Statements, s.Recording, s.RecordingSHA256)
	if err := affected(res, err, "session %q not found", s.ID); !airlock.IsCode(err, airlock.ENOTFOUND) {
		return err
	}
	old, err := db.SessionByID(ctx, s.ID)
	if err != nil {
		return err
	}
	return airlock.Errorf(airlock.ECONFLICT, "session %s already ended (%s)", s.ID, old.EndReason)
}

// SessionByID returns the session, or ENOTFOUND.
func (db *DB) SessionByID(ctx context.Context, id string) (*airlock.Session, error) {
	s, err := scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id=$1`, id))
	if err != nil {
		return nil, notFound(err, "session %q not found", id)
	}
	return s, nil
}

// ListSessions returns matching sessions, newest first.
func (db *DB) ListSessions(ctx context.Context, f airlock.SessionFilter) ([]*airlock.Session, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$", fmt.Sprintf("$%d", len(args))))
	}
	if f.UserID != "" {
		add("user_id = $", f.UserID)
	}
	if f.GrantID != "" {
		add("grant_id = $", f.GrantID)
	}
	if f.Active {
		where = append(where, "ended_at IS NULL")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions`+whereClause(where)+` ORDER BY started_at DESC, pos DESC`+limit(f.Limit), args...)
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
