package airlock

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// NewID returns a random identifier with the given prefix, e.g. "gr_3x7…".
// 80 random bits, lower-case base32, so IDs are safe in URLs and file names.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Group names with built-in meaning.
const (
	// GroupAdmins is the group whose members may run admin commands.
	GroupAdmins = "admins"
	// GroupPolicyReaders is the group whose members may read the policy
	// in force and check drafts against it (show, diff), as admins may.
	GroupPolicyReaders = "policy-readers"
	// GroupAuditors is the group whose members may read, export and
	// verify the audit log, as admins may.
	GroupAuditors = "auditors"
)

// User is a person who can log in. Local users have a PasswordHash
// (argon2id, PHC string format); SSO users have an empty one.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	Groups       []string  `json:"groups"`
	Disabled     bool      `json:"disabled"`
	SSOSubject   string    `json:"sso_subject,omitempty"` // issuer|subject for OIDC users
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// IsAdmin reports whether u is a member of GroupAdmins.
func (u *User) IsAdmin() bool { return u.InGroup(GroupAdmins) }

// InGroup reports whether u is a member of group g.
func (u *User) InGroup(g string) bool {
	for _, x := range u.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Factor kinds.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	FactorRecovery = "recovery"
	FactorPush     = "push"
)

// Factor states.
const (
	FactorPending = "pending" // enrolled but not yet confirmed
	FactorActive  = "active"
)

// Factor is one second factor of a user. Secret holds sealed (encrypted)
// key material; Data holds kind-specific public state as JSON (a WebAuthn
// credential, hashed recovery codes). Counter is the replay guard: the last
// accepted TOTP time step, or the WebAuthn sign count.
type Factor struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Secret     []byte    `json:"-"`
	Data       []byte    `json:"-"`
	Counter    int64     `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// LoginSession is what a successful login yields. The bearer token itself
// is never stored; TokenHash is its SHA-256.
type LoginSession struct {
	ID         string    `json:"id"`
	TokenHash  []byte    `json:"-"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"` // absolute lifetime
	MFAAt      time.Time `json:"mfa_at,omitzero"`
	MFAMethod  string    `json:"mfa_method,omitempty"`
	SourceAddr string    `json:"source_addr,omitempty"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Resource kinds.
const (
	KindPostgres = "postgres"
	KindSSH      = "ssh"
	KindHTTP     = "http"
	// KindKubernetes is a Kubernetes API server reached through the
	// Kubernetes gateway with impersonation.
	KindKubernetes = "kubernetes"
	// KindMySQL is a MySQL or MariaDB server behind the MySQL gateway.
	KindMySQL = "mysql"
)

// IsDatabaseKind reports whether kind is a database reached with a
// brokered login (postgres, mysql): its resources name upstream databases
// and TLS modes, and its connect tokens are consumed by a gateway.
func IsDatabaseKind(kind string) bool { return kind == KindPostgres || kind == KindMySQL }

// Resource is something in production that users reach through a gateway.
// Credentials maps an access level name (e.g. "read") to a sealed secret;
// it is never serialised to clients.
type Resource struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Addr        string            `json:"addr"`
	Labels      map[string]string `json:"labels,omitempty"`
	Credentials map[string][]byte `json:"-"`
	// Options is kind-specific, non-secret configuration as JSON
	// (e.g. database name, TLS mode, pinned SSH host key): the encoding of
	// access.ResourceOptions, its one owner (access.Options decodes it).
	Options   []byte    `json:"-"`
	Source    string    `json:"source"` // "api" or "policy"
	CreatedAt time.Time `json:"created_at"`
}

// AccessLevels returns the names of r's brokered credentials.
func (r *Resource) AccessLevels() []string {
	out := make([]string, 0, len(r.Credentials))
	for k := range r.Credentials {
		out = append(out, k)
	}
	return out
}

// PolicyVersion is one applied version of the policy document.
type PolicyVersion struct {
	Version   int64     `json:"version"`
	Document  []byte    `json:"-"` // the policy as applied (canonical YAML/JSON)
	AppliedBy string    `json:"applied_by"`
	AppliedAt time.Time `json:"applied_at"`
	SHA256    string    `json:"sha256"`
}

// Request states.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
	RequestExpired  = "expired"
	RequestCanceled = "canceled"
)

// AccessRequest is a user's ask for one resource at one access level for a
// bounded duration.
type AccessRequest struct {
	ID                string        `json:"id"`
	UserID            string        `json:"user_id"`
	UserName          string        `json:"user_name"`
	Resource          string        `json:"resource"`
	Access            string        `json:"access"`
	Duration          time.Duration `json:"duration"`
	Reason            string        `json:"reason"`
	Ticket            string        `json:"ticket,omitempty"`
	StartAt           time.Time     `json:"start_at,omitzero"` // scheduled start; zero = at approval
	State             string        `json:"state"`
	Rule              string        `json:"rule"` // matched policy rule
	RequiredApprovals int           `json:"required_approvals"`
	ApproverGroups    []string      `json:"approver_groups,omitempty"`
	BreakGlass        bool          `json:"break_glass"`
	ExtendsGrantID    string        `json:"extends_grant_id,omitempty"`
	GrantID           string        `json:"grant_id,omitempty"`
	PolicyVersion     int64         `json:"policy_version"`
	CreatedAt         time.Time     `json:"created_at"`
	ExpiresAt         time.Time     `json:"expires_at"` // pending TTL
	DecidedAt         time.Time     `json:"decided_at,omitzero"`
}

// Review decisions.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Review is one reviewer's decision on a request.
type Review struct {
	RequestID    string    `json:"request_id"`
	ReviewerID   string    `json:"reviewer_id"`
	ReviewerName string    `json:"reviewer_name"`
	Decision     string    `json:"decision"`
	Comment      string    `json:"comment,omitempty"`
	MFAMethod    string    `json:"mfa_method"`
	CreatedAt    time.Time `json:"created_at"`
}

// Grant states as stored. A grant whose EndsAt has passed is expired
// whatever its stored state says; use Grant.ActiveAt.
const (
	GrantActive  = "active"
	GrantExpired = "expired"
	GrantRevoked = "revoked"
)

// Grant is access that exists: one user, one resource, one access level,
// from StartsAt until EndsAt.
type Grant struct {
	ID           string    `json:"id"`
	RequestID    string    `json:"request_id"`
	UserID       string    `json:"user_id"`
	UserName     string    `json:"user_name"`
	Resource     string    `json:"resource"`
	Access       string    `json:"access"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	State        string    `json:"state"`
	MFAMethod    string    `json:"mfa_method,omitempty"`
	BreakGlass   bool      `json:"break_glass"`
	AckedBy      string    `json:"acked_by,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokedBy    string    `json:"revoked_by,omitempty"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// ActiveAt reports whether g gives access at time now: stored state
// active and StartsAt <= now < EndsAt. Expiry never depends on a sweeper
// having run.
func (g *Grant) ActiveAt(now time.Time) bool {
	return g.State == GrantActive && !now.Before(g.StartsAt) && now.Before(g.EndsAt)
}

// ConnectToken is a short-lived secret that opens gateway connections
// under a grant. Only its hash is stored.
type ConnectToken struct {
	TokenHash []byte    `json:"-"`
	UserID    string    `json:"user_id"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	ExpiresAt time.Time `json:"expires_at"`
	UsesLeft  int       `json:"uses_left"`
	CreatedAt time.Time `json:"created_at"`
	// SCRAMStoredKey and SCRAMServerKey are the token's SCRAM-SHA-256
	// verifier (salt auth.SCRAMSalt(UserID, Resource)), for clients that
	// prove they hold the token instead of sending it; empty for none.
	SCRAMStoredKey []byte `json:"-"`
	SCRAMServerKey []byte `json:"-"`
}

// Session is one connection through a gateway under a grant.
type Session struct {
	ID              string    `json:"id"`
	GrantID         string    `json:"grant_id"`
	UserID          string    `json:"user_id"`
	UserName        string    `json:"user_name"`
	Resource        string    `json:"resource"`
	Kind            string    `json:"kind"`
	Access          string    `json:"access"` // access level or SSH login
	SourceAddr      string    `json:"source_addr,omitempty"`
	Node            string    `json:"node,omitempty"` // which server process holds it
	StartedAt       time.Time `json:"started_at"`
	EndedAt         time.Time `json:"ended_at,omitzero"`
	EndReason       string    `json:"end_reason,omitempty"`
	BytesIn         int64     `json:"bytes_in"`
	BytesOut        int64     `json:"bytes_out"`
	Statements      int64     `json:"statements"`
	Recording       string    `json:"recording,omitempty"` // storage key of the recording
	RecordingSHA256 string    `json:"recording_sha256,omitempty"`
}

// Active reports whether the session has not ended.
func (s *Session) Active() bool { return s.EndedAt.IsZero() }
