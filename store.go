package airlock

import (
	"context"
	"time"
)

// Store is everything Airlock persists. The sqlite and postgres packages
// implement it; storetest is the conformance suite both must pass.
//
// Unless a method says otherwise: lookups of a missing row return an *Error
// with code ENOTFOUND; inserts that collide with a unique key (user name,
// resource name, factor id…) return ECONFLICT; every time is stored and
// returned in UTC with at least microsecond precision.
type Store interface {
	UserStore
	FactorStore
	LoginSessionStore
	ResourceStore
	PolicyStore
	AccessStore
	SessionStore
	NodeStore
	AuditStore
	KVStore
	ThrottleStore
	StreamStore
	DBRoleStore
	LeaseStore

	// Ping reports an error when the store cannot serve reads and writes.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// UserStore persists users and their group memberships.
type UserStore interface {
	CreateUser(ctx context.Context, u *User) error // ECONFLICT on duplicate name
	UpdateUser(ctx context.Context, u *User) error // by ID: name, password hash, groups, disabled, sso subject
	UserByID(ctx context.Context, id string) (*User, error)
	UserByName(ctx context.Context, name string) (*User, error)
	UserBySSOSubject(ctx context.Context, subject string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error) // ordered by name
	CountUsers(ctx context.Context) (int, error)
	// ListGroups returns every group name in use with its member names, ordered by group name.
	ListGroups(ctx context.Context) (map[string][]string, error)
}

// FactorStore persists second factors.
type FactorStore interface {
	CreateFactor(ctx context.Context, f *Factor) error
	UpdateFactor(ctx context.Context, f *Factor) error // by ID: name, status, secret, data, last_used_at (not Counter)
	FactorByID(ctx context.Context, id string) (*Factor, error)
	ListFactors(ctx context.Context, userID string) ([]*Factor, error) // ordered by created_at
	DeleteFactor(ctx context.Context, id string) error
	// AdvanceFactorCounter sets the factor's Counter to next only if its
	// current Counter is less than next (TOTP step, WebAuthn sign count),
	// and records usedAt as LastUsedAt. It reports whether it did; false
	// means a replay or regression. This is the single-use guarantee and
	// must be atomic across processes.
	AdvanceFactorCounter(ctx context.Context, id string, next int64, usedAt time.Time) (bool, error)
}

// LoginSessionStore persists login sessions.
type LoginSessionStore interface {
	CreateLoginSession(ctx context.Context, s *LoginSession) error
	LoginSessionByTokenHash(ctx context.Context, hash []byte) (*LoginSession, error)
	// TouchLoginSession sets LastSeenAt (idle timeout bookkeeping).
	TouchLoginSession(ctx context.Context, id string, seen time.Time) error
	// SetLoginSessionMFA records a fresh second factor on the session.
	SetLoginSessionMFA(ctx context.Context, id string, at time.Time, method string) error
	RevokeLoginSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserLoginSessions revokes every unrevoked session of the user and returns how many.
	RevokeUserLoginSessions(ctx context.Context, userID string, at time.Time) (int, error)
}

// ResourceStore persists resources and their sealed credentials.
type ResourceStore interface {
	CreateResource(ctx context.Context, r *Resource) error // ECONFLICT on duplicate name
	UpdateResource(ctx context.Context, r *Resource) error // by name
	ResourceByName(ctx context.Context, name string) (*Resource, error)
	ListResources(ctx context.Context) ([]*Resource, error) // ordered by name
	DeleteResource(ctx context.Context, name string) error
}

// PolicyStore persists versions of the policy document.
type PolicyStore interface {
	// SavePolicy stores p as the next version (p.Version is assigned:
	// previous max + 1, starting at 1).
	SavePolicy(ctx context.Context, p *PolicyVersion) error
	// CurrentPolicy returns the highest version, or ENOTFOUND if none.
	CurrentPolicy(ctx context.Context) (*PolicyVersion, error)
}

// RequestFilter selects access requests. Zero fields match everything.
type RequestFilter struct {
	UserID     string
	State      string
	BreakGlass *bool
	Limit      int
}

// GrantFilter selects grants. Zero fields match everything.
type GrantFilter struct {
	UserID   string
	Resource string
	// ActiveAt, when set, selects grants with stored state active and
	// StartsAt <= ActiveAt < EndsAt.
	ActiveAt time.Time
	// DueBefore, when set, selects grants with stored state active and
	// EndsAt <= DueBefore (for the expiry sweeper).
	DueBefore         time.Time
	UnackedBreakGlass bool
	Limit             int
}

// AccessStore persists requests, reviews, grants and connect tokens.
type AccessStore interface {
	CreateRequest(ctx context.Context, r *AccessRequest) error
	RequestByID(ctx context.Context, id string) (*AccessRequest, error)
	ListRequests(ctx context.Context, f RequestFilter) ([]*AccessRequest, error) // newest first
	// SetRequestState moves a request from state "from" to "to" and
	// returns ECONFLICT if it was not in "from".
	SetRequestState(ctx context.Context, id, from, to string, at time.Time) error
	// AddReview records a review. ECONFLICT if the reviewer already
	// reviewed this request.
	AddReview(ctx context.Context, rv *Review) error
	ListReviews(ctx context.Context, requestID string) ([]*Review, error) // oldest first

	// ApproveRequest atomically moves a pending request to approved,
	// records g.ID on it and inserts g. ECONFLICT if the request is no
	// longer pending, so concurrent approvals produce exactly one grant.
	ApproveRequest(ctx context.Context, requestID string, g *Grant) error
	// CreateGrant inserts a grant not tied to an approval flow (tests, imports).
	CreateGrant(ctx context.Context, g *Grant) error
	GrantByID(ctx context.Context, id string) (*Grant, error)
	ListGrants(ctx context.Context, f GrantFilter) ([]*Grant, error) // newest first
	// EndGrant moves an active grant to state (expired or revoked) with
	// who/why; ECONFLICT if it is no longer active.
	EndGrant(ctx context.Context, id, state string, at time.Time, by, reason string) error
	// ExpireGrants moves the given grants that are still active and whose
	// EndsAt <= at to state expired (by "system", reason "ends_at reached")
	// in one transaction, and returns the IDs it changed. It is the
	// sweeper's batch form of EndGrant.
	ExpireGrants(ctx context.Context, ids []string, at time.Time) ([]string, error)
	// AckGrant records a break-glass acknowledgement.
	AckGrant(ctx context.Context, id, by string, at time.Time) error

	CreateConnectToken(ctx context.Context, t *ConnectToken) error
	// UseConnectToken decrements UsesLeft of the token with this hash if it
	// has uses left and ExpiresAt > now, atomically, and returns it.
	// ENOTFOUND (never a more specific reason) otherwise.
	UseConnectToken(ctx context.Context, hash []byte, now time.Time) (*ConnectToken, error)
	// LiveConnectTokens returns userID's tokens for resource that have uses
	// left and ExpiresAt > now, newest first, at most MaxLiveConnectTokens
	// (the candidates a SCRAM proof is checked against).
	LiveConnectTokens(ctx context.Context, userID, resource string, now time.Time) ([]*ConnectToken, error)
}

// MaxLiveConnectTokens bounds LiveConnectTokens.
const MaxLiveConnectTokens = 32

// SessionFilter selects gateway sessions.
type SessionFilter struct {
	UserID  string
	GrantID string
	Active  bool
	Limit   int
}

// SessionStore persists gateway sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	// EndSession records the end of an active session (ended_at,
	// end_reason, bytes, statements, recording hash). A session ends once:
	// ECONFLICT if it has already ended (by its gateway, or as node_lost
	// by EndLostSessions), whose first end then stands; ENOTFOUND if there
	// is no such session.
	EndSession(ctx context.Context, s *Session) error
	SessionByID(ctx context.Context, id string) (*Session, error)
	ListSessions(ctx context.Context, f SessionFilter) ([]*Session, error) // newest first
}

// Node is one running server process as its heartbeats record it.
type Node struct {
	// Name is what the node's sessions record as Session.Node; unique
	// per process.
	Name string
	// Identity names the server a process is one life of (host and data
	// dir): the nodes that share it are the previous lives of one server.
	Identity string
	// HeartbeatAt is the node's last heartbeat, on the wall clock.
	HeartbeatAt time.Time
}

// LostFilter selects what EndLostSessions ends: active sessions held by a
// node other than Self that is lost, that is
//   - when StaleBefore is set: its last heartbeat is before StaleBefore, or
//     it never beat (no Node row, or an empty Session.Node);
//   - when Identity is set: it is another life of Identity (a previous
//     process of the same server).
//
// SessionID, when set, restricts it to that one session.
type LostFilter struct {
	Self        string
	StaleBefore time.Time
	Identity    string
	SessionID   string
}

// NodeStore records which server processes are alive, so that the sessions
// of one that stopped without ending them (kill -9, crash, lost host) are
// ended by the others, or by the same server at its next start.
type NodeStore interface {
	// HeartbeatNode records that n.Name (of n.Identity) is alive at
	// n.HeartbeatAt, creating its row at the first beat.
	HeartbeatNode(ctx context.Context, n Node) error
	// EndLostSessions ends the active sessions f selects — ended_at = now,
	// end_reason EndNodeLost, bytes and statements as last recorded — and
	// returns them as ended, in no particular order. It must be atomic
	// across processes: of any number of concurrent callers, each session
	// is ended by exactly one, and only that caller gets it back (so only
	// one audits it).
	EndLostSessions(ctx context.Context, f LostFilter, now time.Time) ([]*Session, error)
}

// AuditStore persists the hash-chained audit log. Only the audit package
// calls it.
type AuditStore interface {
	// AppendEvents runs build with the current head of the chain while
	// holding the log's write lock (across processes on PostgreSQL), and
	// stores the events it returns in one transaction. build must assign
	// consecutive Seq values starting at head.Seq+1. The events are
	// durable when AppendEvents returns nil. The same transaction grows
	// the log's Merkle tree (leaf i is event i+1, see internal/tlog) by
	// the new events, first catching it up with events stored before the
	// store kept a tree.
	AppendEvents(ctx context.Context, build func(head AuditHead) ([]Event, error)) error
	AuditHead(ctx context.Context) (AuditHead, error)
	// ListEvents returns events matching f ordered by Seq.
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// ScanEvents calls fn for each event with Seq > afterSeq in order,
	// streaming (without loading the log into memory), until fn returns an error.
	ScanEvents(ctx context.Context, afterSeq int64, fn func(Event) error) error
	AddCheckpoint(ctx context.Context, c *Checkpoint) error
	ListCheckpoints(ctx context.Context) ([]Checkpoint, error) // ordered by Seq
	// TreeCheckpoint returns a version 2 checkpoint (one with a Root): the
	// one at seq, or the newest when seq is 0. ENOTFOUND when there is none.
	TreeCheckpoint(ctx context.Context, seq int64) (Checkpoint, error)
	// MerkleTile returns the hashes (32 bytes each, concatenated) of tile
	// level/index of the log's Merkle tree (internal/tlog), nil when none
	// is stored.
	MerkleTile(ctx context.Context, level int, index int64) ([]byte, error)
}

// KVStore holds small named blobs shared by all replicas (e.g. the
// policy cache stamp, WebAuthn ceremony state).
type KVStore interface {
	PutKV(ctx context.Context, key string, value []byte, expiresAt time.Time) error
	GetKV(ctx context.Context, key string, now time.Time) ([]byte, error) // ENOTFOUND if missing or expired
	DeleteKV(ctx context.Context, key string) error
	// TakeKV deletes key and returns its value, atomically across
	// replicas: of concurrent takers exactly one gets it. ENOTFOUND if
	// missing or expired (an expired key is deleted all the same). Use it
	// for anything single-use.
	TakeKV(ctx context.Context, key string, now time.Time) ([]byte, error)
	// ScanKV returns the keys that start with prefix and have not expired
	// at now, with their values. A missing prefix gives an empty map.
	ScanKV(ctx context.Context, prefix string, now time.Time) (map[string][]byte, error)
}

// ThrottleHit is the result of one ThrottleStore.HitThrottle.
type ThrottleHit struct {
	// Count is the number of hits on the key in its current window,
	// this one included (1 for the first hit of a window).
	Count int
	// WindowStart is the time of the first hit of the current window.
	WindowStart time.Time
	// Prev is the time of the previous hit in the window (zero when this
	// hit is the first).
	Prev time.Time
}

// ThrottleStore counts attempts per key in fixed windows, shared by all
// replicas: the login throttle and the push rate limit count here, and
// decide with the count the same operation returned.
type ThrottleStore interface {
	// HitThrottle counts one hit on key at now and returns the count in
	// the key's current window. A window starts at the first hit after the
	// previous window ended and lasts window; a hit at or after its end
	// starts a new window. It must be atomic across processes: of N
	// concurrent hits on a key within one window each gets a distinct
	// Count, together exactly 1..N (the count and the decision taken on
	// it are one operation, never check-then-count).
	HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (ThrottleHit, error)
	// ResetThrottle forgets key's window (the next hit counts 1).
	// Resetting a missing key is not an error.
	ResetThrottle(ctx context.Context, key string) error
	// PurgeThrottles deletes the windows that ended at or before now and
	// returns how many. It never blocks on, or undoes, a concurrent hit.
	PurgeThrottles(ctx context.Context, now time.Time) (int, error)
}

// DBRoleStore persists the ephemeral database roles made for grants
// (DBRole), so that every replica can find, use and drop them.
type DBRoleStore interface {
	// PutDBRole records r for its grant, replacing an earlier row of the
	// same grant (a role made again after it was dropped).
	PutDBRole(ctx context.Context, r *DBRole) error
	// DBRoleByGrant returns the role of grantID, or ENOTFOUND.
	DBRoleByGrant(ctx context.Context, grantID string) (*DBRole, error)
	// ListDBRoles returns the roles not yet dropped (all roles when
	// dropped is true), ordered by created_at.
	ListDBRoles(ctx context.Context, dropped bool) ([]*DBRole, error)
	// SetDBRoleDropped records that grantID's role was dropped at at. It
	// reports whether it changed a row (false: missing or already dropped).
	SetDBRoleDropped(ctx context.Context, grantID string, at time.Time) (bool, error)
}

// LeaseStore hands out named leases, so that one replica at a time does
// a job (the database-role reconciler).
type LeaseStore interface {
	// AcquireLease gives lease name to holder until until, if it is free
	// at now (never taken, or expired) or holder already has it, and
	// reports whether holder has it. It must be atomic across processes:
	// of concurrent callers for a free lease exactly one gets it.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	// ReleaseLease frees name if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}
