package sqlstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Stmt is one statement ($N placeholders) with its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// Users.

const UserCols = `id, name, password_hash, groups, disabled, sso_subject, created_at, updated_at`

func ScanUser(s Scanner) (*airlock.User, error) {
	u := &airlock.User{}
	err := s.Scan(&u.ID, &u.Name, &u.PasswordHash, JSON(&u.Groups), &u.Disabled, &u.SSOSubject, Time(&u.CreatedAt), Time(&u.UpdatedAt))
	return u, err
}

func (d Dialect) InsertUser(u *airlock.User) Stmt {
	return Stmt{`INSERT INTO users (` + UserCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		[]any{u.ID, u.Name, u.PasswordHash, JSONList(u.Groups), u.Disabled, u.SSOSubject, d.Time(u.CreatedAt), d.Time(u.UpdatedAt)}}
}

func (d Dialect) UpdateUser(u *airlock.User) Stmt {
	return Stmt{`UPDATE users SET name=$2, password_hash=$3, groups=$4, disabled=$5, sso_subject=$6, updated_at=$7 WHERE id=$1`,
		[]any{u.ID, u.Name, u.PasswordHash, JSONList(u.Groups), u.Disabled, u.SSOSubject, d.Time(u.UpdatedAt)}}
}

// UserExists is the ECONFLICT message of a user insert or update.
func UserExists(u *airlock.User) string { return fmt.Sprintf("user %q already exists", u.Name) }

// Factors.

const FactorCols = `id, user_id, kind, name, status, secret, data, counter, created_at, last_used_at`

func ScanFactor(s Scanner) (*airlock.Factor, error) {
	f := &airlock.Factor{}
	err := s.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Status, &f.Secret, &f.Data, &f.Counter, Time(&f.CreatedAt), Time(&f.LastUsedAt))
	return f, err
}

func (d Dialect) InsertFactor(f *airlock.Factor) Stmt {
	return Stmt{`INSERT INTO factors (` + FactorCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		[]any{f.ID, f.UserID, f.Kind, f.Name, f.Status, Blob(f.Secret), Blob(f.Data), f.Counter, d.Time(f.CreatedAt), d.Time(f.LastUsedAt)}}
}

func (d Dialect) UpdateFactor(f *airlock.Factor) Stmt {
	return Stmt{`UPDATE factors SET name=$2, status=$3, secret=$4, data=$5, last_used_at=$6 WHERE id=$1`,
		[]any{f.ID, f.Name, f.Status, Blob(f.Secret), Blob(f.Data), d.Time(f.LastUsedAt)}}
}

func (d Dialect) ListFactors(userID string) Stmt {
	return Stmt{`SELECT ` + FactorCols + ` FROM factors WHERE user_id=$1 ORDER BY created_at, ` + d.Seq, []any{userID}}
}

// Login sessions.

const LoginCols = `id, token_hash, user_id, created_at, last_seen_at, expires_at, mfa_at, mfa_method, source_addr, revoked_at`

func ScanLoginSession(s Scanner) (*airlock.LoginSession, error) {
	x := &airlock.LoginSession{}
	err := s.Scan(&x.ID, &x.TokenHash, &x.UserID, Time(&x.CreatedAt), Time(&x.LastSeenAt), Time(&x.ExpiresAt), Time(&x.MFAAt), &x.MFAMethod, &x.SourceAddr, Time(&x.RevokedAt))
	return x, err
}

func (d Dialect) InsertLoginSession(s *airlock.LoginSession) Stmt {
	return Stmt{`INSERT INTO login_sessions (` + LoginCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		[]any{s.ID, s.TokenHash, s.UserID, d.Time(s.CreatedAt), d.Time(s.LastSeenAt), d.Time(s.ExpiresAt), d.Time(s.MFAAt), s.MFAMethod, s.SourceAddr, d.Time(s.RevokedAt)}}
}

// Resources.

const ResourceCols = `id, name, kind, addr, labels, credentials, options, source, created_at`

func ScanResource(s Scanner) (*airlock.Resource, error) {
	r := &airlock.Resource{}
	err := s.Scan(&r.ID, &r.Name, &r.Kind, &r.Addr, JSON(&r.Labels), JSON(&r.Credentials), &r.Options, &r.Source, Time(&r.CreatedAt))
	return r, err
}

func (d Dialect) InsertResource(r *airlock.Resource) Stmt {
	return Stmt{`INSERT INTO resources (` + ResourceCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		[]any{r.ID, r.Name, r.Kind, r.Addr, JSONMap(r.Labels), JSONMap(r.Credentials), Blob(r.Options), r.Source, d.Time(r.CreatedAt)}}
}

func UpdateResource(r *airlock.Resource) Stmt {
	return Stmt{`UPDATE resources SET kind=$2, addr=$3, labels=$4, credentials=$5, options=$6, source=$7 WHERE name=$1`,
		[]any{r.Name, r.Kind, r.Addr, JSONMap(r.Labels), JSONMap(r.Credentials), Blob(r.Options), r.Source}}
}

// Requests.

const RequestCols = `id, user_id, user_name, resource, access, duration, reason, ticket, start_at, state, rule,
	required_approvals, approver_groups, break_glass, extends_grant_id, grant_id, policy_version, created_at, expires_at, decided_at`

func ScanRequest(s Scanner) (*airlock.AccessRequest, error) {
	r := &airlock.AccessRequest{}
	var dur int64
	err := s.Scan(&r.ID, &r.UserID, &r.UserName, &r.Resource, &r.Access, &dur, &r.Reason, &r.Ticket, Time(&r.StartAt), &r.State, &r.Rule,
		&r.RequiredApprovals, JSON(&r.ApproverGroups), &r.BreakGlass, &r.ExtendsGrantID, &r.GrantID, &r.PolicyVersion,
		Time(&r.CreatedAt), Time(&r.ExpiresAt), Time(&r.DecidedAt))
	r.Duration = time.Duration(dur)
	return r, err
}

func (d Dialect) InsertRequest(r *airlock.AccessRequest) Stmt {
	return Stmt{`INSERT INTO requests (` + RequestCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
		[]any{r.ID, r.UserID, r.UserName, r.Resource, r.Access, int64(r.Duration), r.Reason, r.Ticket, d.Time(r.StartAt), r.State, r.Rule,
			r.RequiredApprovals, JSONList(r.ApproverGroups), r.BreakGlass, r.ExtendsGrantID, r.GrantID, r.PolicyVersion,
			d.Time(r.CreatedAt), d.Time(r.ExpiresAt), d.Time(r.DecidedAt)}}
}

// ListRequests selects the requests f matches, newest first.
func (d Dialect) ListRequests(f airlock.RequestFilter) Stmt {
	var w Filter
	if f.UserID != "" {
		w.Add("user_id = ?", f.UserID)
	}
	if f.State != "" {
		w.Add("state = ?", f.State)
	}
	if f.BreakGlass != nil {
		w.Add("break_glass = ?", *f.BreakGlass)
	}
	return Stmt{`SELECT ` + RequestCols + ` FROM requests` + w.Where() + ` ORDER BY created_at DESC, ` + d.Seq + ` DESC` + Limit(f.Limit), w.Args}
}

func (d Dialect) SetRequestState(id, from, to string, at time.Time) Stmt {
	return Stmt{`UPDATE requests SET state=$3, decided_at=$4 WHERE id=$1 AND state=$2`, []any{id, from, to, d.Time(at)}}
}

func (d Dialect) ApproveRequest(requestID string, g *airlock.Grant) Stmt {
	return Stmt{`UPDATE requests SET state='approved', grant_id=$2, decided_at=coalesce($3, decided_at) WHERE id=$1 AND state='pending'`,
		[]any{requestID, g.ID, d.Time(g.CreatedAt)}}
}

// CheckApproval is ApproveRequest's check of its grant: g.RequestID is set
// to requestID when empty, and must be it.
func CheckApproval(requestID string, g *airlock.Grant) error {
	if g.RequestID == "" {
		g.RequestID = requestID
	}
	if g.RequestID != requestID {
		return airlock.Errorf(airlock.EINVALID, "grant is for request %q, not %q", g.RequestID, requestID)
	}
	return nil
}

// Reviews.

func (d Dialect) InsertReview(rv *airlock.Review) Stmt {
	return Stmt{`INSERT INTO reviews (request_id, reviewer_id, reviewer_name, decision, comment, mfa_method, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		[]any{rv.RequestID, rv.ReviewerID, rv.ReviewerName, rv.Decision, rv.Comment, rv.MFAMethod, d.Time(rv.CreatedAt)}}
}

// ReviewExists and ReviewMissing are the messages of a failed review insert.
func ReviewExists(rv *airlock.Review) string {
	return fmt.Sprintf("%s already reviewed request %q", rv.ReviewerName, rv.RequestID)
}
func ReviewMissing(rv *airlock.Review) string {
	return fmt.Sprintf("request %q not found", rv.RequestID)
}

func (d Dialect) ListReviews(requestID string) Stmt {
	return Stmt{`SELECT request_id, reviewer_id, reviewer_name, decision, comment, mfa_method, created_at FROM reviews WHERE request_id=$1 ORDER BY created_at, ` + d.Seq, []any{requestID}}
}

func ScanReview(s Scanner) (*airlock.Review, error) {
	rv := &airlock.Review{}
	err := s.Scan(&rv.RequestID, &rv.ReviewerID, &rv.ReviewerName, &rv.Decision, &rv.Comment, &rv.MFAMethod, Time(&rv.CreatedAt))
	return rv, err
}

// Grants.

const GrantCols = `id, request_id, user_id, user_name, resource, access, starts_at, ends_at, state, mfa_method, break_glass,
	acked_by, acked_at, revoked_at, revoked_by, revoke_reason, created_at`

func ScanGrant(s Scanner) (*airlock.Grant, error) {
	g := &airlock.Grant{}
	err := s.Scan(&g.ID, &g.RequestID, &g.UserID, &g.UserName, &g.Resource, &g.Access, Time(&g.StartsAt), Time(&g.EndsAt), &g.State, &g.MFAMethod, &g.BreakGlass,
		&g.AckedBy, Time(&g.AckedAt), Time(&g.RevokedAt), &g.RevokedBy, &g.RevokeReason, Time(&g.CreatedAt))
	return g, err
}

func (d Dialect) InsertGrant(g *airlock.Grant) Stmt {
	return Stmt{`INSERT INTO grants (` + GrantCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
		[]any{g.ID, g.RequestID, g.UserID, g.UserName, g.Resource, g.Access, d.Time(g.StartsAt), d.Time(g.EndsAt), g.State, g.MFAMethod, g.BreakGlass,
			g.AckedBy, d.Time(g.AckedAt), d.Time(g.RevokedAt), g.RevokedBy, g.RevokeReason, d.Time(g.CreatedAt)}}
}

// GrantExists is the ECONFLICT message of a grant insert.
func GrantExists(g *airlock.Grant) string {
	return fmt.Sprintf("grant %q (or a grant for request %q) already exists", g.ID, g.RequestID)
}

// ListGrants selects the grants f matches, newest first.
func (d Dialect) ListGrants(f airlock.GrantFilter) Stmt {
	var w Filter
	if f.UserID != "" {
		w.Add("user_id = ?", f.UserID)
	}
	if f.Resource != "" {
		w.Add("resource = ?", f.Resource)
	}
	if !f.ActiveAt.IsZero() {
		w.Add("state = 'active' AND starts_at <= ? AND ends_at > ?", d.Time(f.ActiveAt), d.Time(f.ActiveAt))
	}
	if !f.DueBefore.IsZero() {
		w.Add("state = 'active' AND ends_at <= ?", d.Time(f.DueBefore))
	}
	if f.UnackedBreakGlass {
		w.Add("break_glass AND acked_at IS NULL")
	}
	return Stmt{`SELECT ` + GrantCols + ` FROM grants` + w.Where() + ` ORDER BY created_at DESC, ` + d.Seq + ` DESC` + Limit(f.Limit), w.Args}
}

// EndGrant is the conditional update ending an active grant as state;
// EINVALID for a state a grant cannot end in.
func (d Dialect) EndGrant(id, state string, at time.Time, by, reason string) (Stmt, error) {
	if state != airlock.GrantExpired && state != airlock.GrantRevoked {
		return Stmt{}, airlock.Errorf(airlock.EINVALID, "a grant can only end as %s or %s, not %q", airlock.GrantExpired, airlock.GrantRevoked, state)
	}
	return Stmt{`UPDATE grants SET state=$2, revoked_at=$3, revoked_by=$4, revoke_reason=$5 WHERE id=$1 AND state='active'`,
		[]any{id, state, d.Time(at), by, reason}}, nil
}

func (d Dialect) AckGrant(id, by string, at time.Time) Stmt {
	return Stmt{`UPDATE grants SET acked_by=$2, acked_at=$3 WHERE id=$1 AND acked_at IS NULL`, []any{id, by, d.Time(at)}}
}

// Connect tokens.

const TokenCols = `token_hash, user_id, grant_id, resource, expires_at, uses_left, created_at, scram_stored_key, scram_server_key`

func ScanToken(s Scanner) (*airlock.ConnectToken, error) {
	t := &airlock.ConnectToken{}
	err := s.Scan(&t.TokenHash, &t.UserID, &t.GrantID, &t.Resource, Time(&t.ExpiresAt), &t.UsesLeft, Time(&t.CreatedAt), &t.SCRAMStoredKey, &t.SCRAMServerKey)
	return t, err
}

func (d Dialect) InsertToken(t *airlock.ConnectToken) Stmt {
	return Stmt{`INSERT INTO connect_tokens (` + TokenCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		[]any{t.TokenHash, t.UserID, t.GrantID, t.Resource, d.Time(t.ExpiresAt), t.UsesLeft, d.Time(t.CreatedAt), t.SCRAMStoredKey, t.SCRAMServerKey}}
}

func (d Dialect) UseToken(hash []byte, now time.Time) Stmt {
	return Stmt{`UPDATE connect_tokens SET uses_left = uses_left - 1
		WHERE token_hash=$1 AND uses_left > 0 AND expires_at > $2
		RETURNING ` + TokenCols, []any{hash, d.Time(now)}}
}

func (d Dialect) LiveTokens(userID, resource string, now time.Time) Stmt {
	return Stmt{`SELECT ` + TokenCols + ` FROM connect_tokens
		WHERE user_id = $1 AND resource = $2 AND uses_left > 0 AND expires_at > $3 ORDER BY created_at DESC LIMIT $4`,
		[]any{userID, resource, d.Time(now), airlock.MaxLiveConnectTokens}}
}

// Sessions.

const SessionCols = `id, grant_id, user_id, user_name, resource, kind, access, source_addr, node, started_at, ended_at, end_reason,
	bytes_in, bytes_out, statements, recording, recording_sha256, recordings`

func ScanSession(s Scanner) (*airlock.Session, error) {
	x := &airlock.Session{}
	err := s.Scan(&x.ID, &x.GrantID, &x.UserID, &x.UserName, &x.Resource, &x.Kind, &x.Access, &x.SourceAddr, &x.Node, Time(&x.StartedAt), Time(&x.EndedAt), &x.EndReason,
		&x.BytesIn, &x.BytesOut, &x.Statements, &x.Recording, &x.RecordingSHA256, JSON(&x.Recordings))
	if len(x.Recordings) == 0 {
		x.Recordings = nil
	}
	return x, err
}

func (d Dialect) InsertSession(s *airlock.Session) Stmt {
	return Stmt{`INSERT INTO sessions (` + SessionCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`,
		[]any{s.ID, s.GrantID, s.UserID, s.UserName, s.Resource, s.Kind, s.Access, s.SourceAddr, s.Node, d.Time(s.StartedAt), d.Time(s.EndedAt), s.EndReason,
			s.BytesIn, s.BytesOut, s.Statements, s.Recording, s.RecordingSHA256, sessionRecordings(s.Recordings)}}
}

func (d Dialect) EndSession(s *airlock.Session) Stmt {
	return Stmt{`UPDATE sessions SET ended_at=$2, end_reason=$3, bytes_in=$4, bytes_out=$5, statements=$6, recording=$7, recording_sha256=$8, recordings=$9 WHERE id=$1 AND ended_at IS NULL`,
		[]any{s.ID, d.Time(s.EndedAt), s.EndReason, s.BytesIn, s.BytesOut, s.Statements, s.Recording, s.RecordingSHA256, sessionRecordings(s.Recordings)}}
}

// sessionRecordings is the stored form of a session's part recordings: a
// JSON array, [] when none.
func sessionRecordings(r []airlock.SessionRecording) string {
	if len(r) == 0 {
		return "[]"
	}
	return js(r)
}

// ListSessions selects the sessions f matches, newest first.
func (d Dialect) ListSessions(f airlock.SessionFilter) Stmt {
	var w Filter
	if f.UserID != "" {
		w.Add("user_id = ?", f.UserID)
	}
	if f.GrantID != "" {
		w.Add("grant_id = ?", f.GrantID)
	}
	if f.Active {
		w.Add("ended_at IS NULL")
	}
	return Stmt{`SELECT ` + SessionCols + ` FROM sessions` + w.Where() + ` ORDER BY started_at DESC, ` + d.Seq + ` DESC` + Limit(f.Limit), w.Args}
}

// Nodes.

func (d Dialect) HeartbeatNode(n airlock.Node) Stmt {
	return Stmt{`INSERT INTO nodes (name, identity, heartbeat_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET identity = excluded.identity, heartbeat_at = excluded.heartbeat_at`,
		[]any{n.Name, n.Identity, d.Time(n.HeartbeatAt)}}
}

// EndLostSessions is the one UPDATE … WHERE ended_at IS NULL … RETURNING
// that ends the active sessions of the lost nodes f selects; false when f
// selects no node.
func (d Dialect) EndLostSessions(f airlock.LostFilter, now time.Time) (Stmt, bool) {
	args := []any{d.Time(now), string(airlock.EndNodeLost), f.Self}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	var lost []string
	if !f.StaleBefore.IsZero() {
		lost = append(lost, `NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name = sessions.node AND n.heartbeat_at >= `+arg(d.Time(f.StaleBefore))+`)`)
	}
	if f.Identity != "" {
		lost = append(lost, `EXISTS (SELECT 1 FROM nodes n WHERE n.name = sessions.node AND n.identity = `+arg(f.Identity)+`)`)
	}
	if len(lost) == 0 {
		return Stmt{}, false
	}
	cond := `ended_at IS NULL AND node <> $3 AND (` + strings.Join(lost, " OR ") + `)`
	if f.SessionID != "" {
		cond += ` AND id = ` + arg(f.SessionID)
	}
	return Stmt{`UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE ` + cond + ` RETURNING ` + SessionCols, args}, true
}

// Throttles.

// HitThrottleSQL counts a hit in one statement ($1 key, $2 now, $3 the end
// of a new window), so the count returned is the count this hit made: the
// engine serialises writers of the key's row (SQLite's write lock, or the
// row lock INSERT … ON CONFLICT DO UPDATE takes in PostgreSQL). SET
// expressions read the row as it was before the update.
const HitThrottleSQL = `INSERT INTO throttles (key, count, window_start, last_at, prev_at, expires_at) VALUES ($1, 1, $2, $2, NULL, $3)
	ON CONFLICT (key) DO UPDATE SET
		count        = CASE WHEN throttles.expires_at <= excluded.last_at THEN 1 ELSE throttles.count + 1 END,
		prev_at      = CASE WHEN throttles.expires_at <= excluded.last_at THEN NULL ELSE throttles.last_at END,
		window_start = CASE WHEN throttles.expires_at <= excluded.last_at THEN excluded.window_start ELSE throttles.window_start END,
		expires_at   = CASE WHEN throttles.expires_at <= excluded.last_at THEN excluded.expires_at ELSE throttles.expires_at END,
		last_at      = excluded.last_at
	RETURNING count, window_start, prev_at`
