package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// Requests.

// CreateRequest inserts r. ECONFLICT on a duplicate ID.
func (db *DB) CreateRequest(ctx context.Context, r *airlock.AccessRequest) error {
	_, err := exec(ctx, db.w, dialect.InsertRequest(r))
	return writeErr(err, fmt.Sprintf("request %q already exists", r.ID), "")
}

// RequestByID returns the request, or ENOTFOUND.
func (db *DB) RequestByID(ctx context.Context, id string) (*airlock.AccessRequest, error) {
	return sqlstore.One(db.r.QueryRowContext(ctx, q(`SELECT `+sqlstore.RequestCols+` FROM requests WHERE id=$1`), id), sqlstore.ScanRequest, "request %q not found", id)
}

// ListRequests returns matching requests, newest first.
func (db *DB) ListRequests(ctx context.Context, f airlock.RequestFilter) ([]*airlock.AccessRequest, error) {
	return list(ctx, db.r, dialect.ListRequests(f), sqlstore.ScanRequest)
}

// SetRequestState moves the request from state "from" to "to" in one
// conditional UPDATE and records at as its decision time. ENOTFOUND if
// missing, ECONFLICT if it was not in "from".
func (db *DB) SetRequestState(ctx context.Context, id, from, to string, at time.Time) error {
	res, err := exec(ctx, db.w, dialect.SetRequestState(id, from, to, at))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return sqlstore.RequestConflict(ctx, rowFunc(db.w), id, from)
}

// AddReview records a review. ECONFLICT if the reviewer already reviewed
// the request, ENOTFOUND if the request is missing.
func (db *DB) AddReview(ctx context.Context, rv *airlock.Review) error {
	_, err := exec(ctx, db.w, dialect.InsertReview(rv))
	return writeErr(err, sqlstore.ReviewExists(rv), sqlstore.ReviewMissing(rv))
}

// ListReviews returns the request's reviews, oldest first.
func (db *DB) ListReviews(ctx context.Context, requestID string) ([]*airlock.Review, error) {
	return list(ctx, db.r, dialect.ListReviews(requestID), sqlstore.ScanReview)
}

// Grants.

func insertGrant(ctx context.Context, ex execer, g *airlock.Grant) error {
	_, err := exec(ctx, ex, dialect.InsertGrant(g))
	return writeErr(err, sqlstore.GrantExists(g), "")
}

// ApproveRequest moves the pending request to approved, records g.ID on it
// and inserts g (with RequestID set to requestID), in one transaction.
// ECONFLICT if the request is not pending, ENOTFOUND if it is missing.
func (db *DB) ApproveRequest(ctx context.Context, requestID string, g *airlock.Grant) error {
	if err := sqlstore.CheckApproval(requestID, g); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := exec(ctx, tx, dialect.ApproveRequest(requestID, g))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return sqlstore.RequestConflict(ctx, rowFunc(tx), requestID, airlock.RequestPending)
	}
	if err := insertGrant(ctx, tx, g); err != nil {
		return err
	}
	return tx.Commit()
}

// CreateGrant inserts g. ECONFLICT on a duplicate ID or a second grant for
// the same request.
func (db *DB) CreateGrant(ctx context.Context, g *airlock.Grant) error {
	return insertGrant(ctx, db.w, g)
}

// GrantByID returns the grant, or ENOTFOUND.
func (db *DB) GrantByID(ctx context.Context, id string) (*airlock.Grant, error) {
	return sqlstore.One(db.r.QueryRowContext(ctx, q(`SELECT `+sqlstore.GrantCols+` FROM grants WHERE id=$1`), id), sqlstore.ScanGrant, "grant %q not found", id)
}

// ListGrants returns matching grants, newest first.
func (db *DB) ListGrants(ctx context.Context, f airlock.GrantFilter) ([]*airlock.Grant, error) {
	return list(ctx, db.r, dialect.ListGrants(f), sqlstore.ScanGrant)
}

// EndGrant moves an active grant to state (expired or revoked), recording
// at, by and reason in RevokedAt, RevokedBy and RevokeReason. ECONFLICT if
// it is no longer active, ENOTFOUND if missing, EINVALID for another state.
func (db *DB) EndGrant(ctx context.Context, id, state string, at time.Time, by, reason string) error {
	st, err := dialect.EndGrant(id, state, at, by, reason)
	if err != nil {
		return err
	}
	res, err := exec(ctx, db.w, st)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return sqlstore.GrantEnded(ctx, rowFunc(db.w), id)
}

// ExpireGrants expires the listed grants that are still active and due, in
// one transaction, and returns the IDs it changed.
func (db *DB) ExpireGrants(ctx context.Context, ids []string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	const chunk = 500 // ids per statement, well under SQLite's parameter limit
	var changed []string
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		args := make([]any, 0, len(part)+1)
		args = append(args, tm(at))
		var in strings.Builder
		for i, id := range part {
			if i > 0 {
				in.WriteByte(',')
			}
			in.WriteByte('?')
			args = append(args, id)
		}
		rows, err := tx.QueryContext(ctx, `UPDATE grants SET state='expired', revoked_at=?1, revoked_by='system', revoke_reason='ends_at reached'
			WHERE state='active' AND ends_at <= ?1 AND id IN (`+in.String()+`) RETURNING id`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			changed = append(changed, id)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return changed, nil
}

// AckGrant records a break-glass acknowledgement. ENOTFOUND if missing,
// ECONFLICT if already acknowledged.
func (db *DB) AckGrant(ctx context.Context, id, by string, at time.Time) error {
	res, err := exec(ctx, db.w, dialect.AckGrant(id, by, at))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return sqlstore.GrantAcked(ctx, rowFunc(db.w), id)
}

// Connect tokens.

// CreateConnectToken inserts t. ECONFLICT on a duplicate hash, ENOTFOUND if
// the grant is missing.
func (db *DB) CreateConnectToken(ctx context.Context, t *airlock.ConnectToken) error {
	_, err := exec(ctx, db.w, dialect.InsertToken(t))
	return writeErr(err, "connect token already exists", fmt.Sprintf("grant %q not found", t.GrantID))
}

// UseConnectToken decrements the token's uses in one conditional UPDATE …
// RETURNING and returns it (with the remaining uses). ENOTFOUND if it is
// missing, used up or expired at now.
func (db *DB) UseConnectToken(ctx context.Context, hash []byte, now time.Time) (*airlock.ConnectToken, error) {
	return sqlstore.One(row(ctx, db.w, dialect.UseToken(hash, now)), sqlstore.ScanToken, "connect token not found")
}

// LiveConnectTokens returns userID's usable tokens for resource at now,
// newest first.
func (db *DB) LiveConnectTokens(ctx context.Context, userID, resource string, now time.Time) ([]*airlock.ConnectToken, error) {
	return list(ctx, db.r, dialect.LiveTokens(userID, resource, now), sqlstore.ScanToken)
}

// Sessions.

// CreateSession inserts s. ECONFLICT on a duplicate ID.
func (db *DB) CreateSession(ctx context.Context, s *airlock.Session) error {
	_, err := exec(ctx, db.w, dialect.InsertSession(s))
	return writeErr(err, fmt.Sprintf("session %q already exists", s.ID), "")
}

// EndSession records the end of the active session with s.ID (ended_at,
// end_reason, bytes, statements, recording). ECONFLICT if it has already
// ended, ENOTFOUND if missing.
func (db *DB) EndSession(ctx context.Context, s *airlock.Session) error {
	res, err := exec(ctx, db.w, dialect.EndSession(s))
	return sqlstore.SessionEnded(ctx, affected(res, err, "session %q not found", s.ID), s.ID, db.SessionByID)
}

// SessionByID returns the session, or ENOTFOUND.
func (db *DB) SessionByID(ctx context.Context, id string) (*airlock.Session, error) {
	return sqlstore.One(db.r.QueryRowContext(ctx, q(`SELECT `+sqlstore.SessionCols+` FROM sessions WHERE id=$1`), id), sqlstore.ScanSession, "session %q not found", id)
}

// ListSessions returns matching sessions, newest first.
func (db *DB) ListSessions(ctx context.Context, f airlock.SessionFilter) ([]*airlock.Session, error) {
	return list(ctx, db.r, dialect.ListSessions(f), sqlstore.ScanSession)
}
