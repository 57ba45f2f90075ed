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

// ProvisionerCredential is the Credentials key of the provisioning
// credential of a resource with ephemeral credentials (a role allowed to
// create and drop the per-grant login roles). It is no access level: the
// '@' is refused in level names, so no level can collide with it, and
// AccessLevels leaves it out.
const ProvisionerCredential = "@provisioner"

// NextProvisionerCredential holds a provisioning credential being rotated
// in, until the database has taken it (see access.RotateProvisioner).
const NextProvisionerCredential = "@provisioner.next"

// AccessLevels returns the names of r's access levels: its credentials'
// keys but the reserved ones, which start with '@'.
func (r *Resource) AccessLevels() []string {
	out := make([]string, 0, len(r.Credentials))
	for k := range r.Credentials {
		if !strings.HasPrefix(k, "@") {
			out = append(out, k)
		}
	}
	return out
}

// DBRole is the ephemeral database login role made for one grant on a
// resource with ephemeral credentials: created when the grant becomes
// active, terminated and dropped when it ends.
type DBRole struct {
	GrantID  string `json:"grant_id"`
	Resource string `json:"resource"`
	Role     string `json:"role"`
	// Password is the role's password, sealed (never sent to clients).
	Password  []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// DroppedAt is when the role was dropped on the database (zero while
	// it exists or may exist).
	DroppedAt time.Time `json:"dropped_at,omitzero"`
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
	ID         string    `json:"id"`
	GrantID    string    `json:"grant_id"`
	UserID     string    `json:"user_id"`
	UserName   string    `json:"user_name"`
	Resource   string    `json:"resource"`
	Kind       string    `json:"kind"`
	Access     string    `json:"access"` // access level or SSH login
	SourceAddr string    `json:"source_addr,omitempty"`
	Node       string    `json:"node,omitempty"` // which server process holds it
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	EndReason  string    `json:"end_reason,omitempty"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	Statements int64     `json:"statements"`
	// Recording is the storage key of the whole session's recording (an
	// SSH terminal); RecordingSHA256 its digest as session.ended records it.
	Recording       string `json:"recording,omitempty"`
	RecordingSHA256 string `json:"recording_sha256,omitempty"`
	// Recordings are the recordings of parts of the session, oldest first:
	// each Kubernetes exec or attach with a terminal has its own. Written
	// when the session ends, as its session.ended event lists them.
	Recordings []SessionRecording `json:"recordings,omitempty"`
}

// SessionRecording is one recording of part of a session (one exec with a
// terminal): its storage key, its SHA-256 as the audit log records it, and
// what ran.
type SessionRecording struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	Title  string `json:"title,omitempty"`
}

// RecordingPart picks one of the session's recordings: part 0 is the
// whole session's (an SSH terminal) or, when the session has exactly one
// part recording, that one; part N (from 1) is the Nth part recording.
// It returns the recording's storage key and SHA-256. Errors: ENOTFOUND
// (no such recording), EINVALID (part 0 of a session with several parts:
// the caller must choose).
func (s *Session) RecordingPart(part int) (key, sha256 string, err error) {
	switch {
	case part < 0:
		return "", "", Errorf(EINVALID, "recording part %d: parts count from 1", part)
	case part == 0 && s.Recording != "":
		return s.Recording, s.RecordingSHA256, nil
	case part == 0 && len(s.Recordings) == 1:
		part = 1
	case part == 0 && len(s.Recordings) > 1:
		return "", "", Errorf(EINVALID, "session %s has %d recordings; choose one, part 1 to %d", s.ID, len(s.Recordings), len(s.Recordings))
	}
	if part == 0 || part > len(s.Recordings) {
		if part == 0 || len(s.Recordings) == 0 {
			return "", "", Errorf(ENOTFOUND, "session %s has no recording", s.ID)
		}
		return "", "", Errorf(ENOTFOUND, "session %s has %d recordings, no part %d", s.ID, len(s.Recordings), part)
	}
	r := s.Recordings[part-1]
	return r.ID, r.SHA256, nil
}

// Active reports whether the session has not ended.
func (s *Session) Active() bool { return s.EndedAt.IsZero() }
