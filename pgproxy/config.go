package pgproxy

import (
	"context"
	"crypto/tls"
	"github.com/airlockhq/airlock/policy"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbgw"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/secrets"
)

// DefaultAddr is the address ListenAndServe uses when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:7432"

// Default limits.
const (
	// DefaultMaxMessageSize bounds one client message after authentication.
	DefaultMaxMessageSize = 64 << 20
	// MaxStartupMessageSize bounds one client message before authentication
	// (startup packet, password message).
	MaxStartupMessageSize = 1 << 20
	// MaxStatementText is how much statement text an audit event carries;
	// longer text is cut and statement_sha256 names the full text.
	MaxStatementText = 8 << 10
)

// Config configures a Gateway. Auth and Audit are required.
type Config struct {
	// Addr is the listen address of ListenAndServe (DefaultAddr if empty).
	Addr string
	// TLS is the server certificate configuration offered to clients that
	// send SSLRequest. Nil means TLS is unavailable: SSLRequest is answered
	// 'N' and only loopback plaintext (if allowed) can authenticate.
	TLS *tls.Config
	// AllowLoopbackPlaintext lets clients on a loopback address connect
	// without TLS. When Auth is a SCRAMAuthenticator they prove the token
	// with SASL SCRAM-SHA-256 and never send it; otherwise they send it as
	// a cleartext password.
	AllowLoopbackPlaintext bool

	// Auth validates connect tokens. Required.
	Auth Authenticator
	// Audit takes session and statement events. Required.
	Audit airlock.AuditPipeline
	// Sessions records session rows (optional; nil records nothing).
	Sessions SessionRecorder
	// ColumnHashKey keys the hash column masks (HMAC-SHA256): equal
	// values get equal hashes wherever the key is the same. Give every
	// replica the same secret; empty means a random key per process.
	ColumnHashKey []byte
	// Holder asks for the approvals of held statements (require_mfa,
	// require_approval, hold.go). Nil: every held statement is refused.
	Holder Holder

	// Logger receives operational logs (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Node names this server process in Session.Node.
	Node string
	// MaxMessageSize bounds one client message after authentication
	// (default DefaultMaxMessageSize). Larger messages end the session
	// with a FATAL protocol_violation.
	MaxMessageSize int
	// HandshakeTimeout bounds TLS, startup, authentication and upstream
	// connect (default netguard.DefaultHandshakeTimeout, 10 s).
	HandshakeTimeout time.Duration
	// Pending bounds connections still in their handshake, per listener
	// and per source address (defaults netguard.DefaultMaxPending and
	// netguard.DefaultMaxPendingPerSource). Connections over them get
	// FATAL 53300 "airlock: too many pending connections; try again
	// shortly" and are closed; the slot is freed once the client has
	// authenticated.
	Pending netguard.Limits
	// Registerer, when set, receives the gateway's Prometheus metrics.
	Registerer prometheus.Registerer
	// UpstreamIdle is how many idle upstream connections the gateway keeps
	// per upstream login (address, brokered user and password, database,
	// startup parameters) for the next session with the same login, after
	// resetting them with DISCARD ALL (default DefaultUpstreamIdle;
	// negative keeps none). Only connections whose client ended with
	// Terminate while the backend was idle are kept.
	UpstreamIdle int
	// UpstreamIdleTimeout closes kept connections unused for this long
	// (default 60 s).
	UpstreamIdleTimeout time.Duration
	// UpstreamLifetime closes kept connections this long after their login
	// (default 1 h), so that changes to the role (ALTER ROLE … SET, NOLOGIN,
	// VALID UNTIL, pg_hba.conf) reach every session within it. One upstream
	// server keeps at most 4 × UpstreamIdle connections over all logins;
	// when it refuses a login for lack of slots (53300), the kept ones are
	// closed and the login is tried once more.
	UpstreamLifetime time.Duration
}

// DefaultUpstreamIdle is the default of Config.UpstreamIdle.
const DefaultUpstreamIdle = 16

// AuthRequest is what a client presents at startup.
type AuthRequest struct {
	// User is the startup "user": the Airlock user name.
	User string
	// Database is the startup "database": "RESOURCE" or "RESOURCE/DBNAME".
	Database string
	// Token is the connect token sent as the password. Never log it.
	Token secrets.Secret
	// SourceAddr is the client's address (host:port).
	SourceAddr string
	// TLS reports whether the client connection is TLS.
	TLS bool
}

// Target is what a valid connect token opens: who, under which grant, and
// how to reach the upstream database with the brokered credential.
type Target struct {
	UserID, UserName, GrantID, Resource, Access string
	// EndsAt is the grant's ends_at: the session's hard deadline.
	EndsAt time.Time

	// UpstreamAddr is the database's host:port.
	UpstreamAddr string
	// UpstreamDatabase is the database name to open upstream.
	UpstreamDatabase string
	// UpstreamUser and UpstreamPassword are the brokered credential
	// (SCRAM-SHA-256, MD5 or trust upstream). Never shown to the client.
	UpstreamUser     string
	UpstreamPassword secrets.Secret
	// ApplicationName, when set, is the upstream application_name in
	// place of the client's (airlock:<user>:<grant> for ephemeral roles).
	ApplicationName string
	// UpstreamTLS, when non-nil, makes the upstream connection TLS
	// (required: a server that refuses TLS fails the connect).
	UpstreamTLS *tls.Config
	// UpstreamTLSKey identifies UpstreamTLS's settings (for example the
	// sslmode and the CA certificates) for upstream reuse: a kept TLS
	// connection serves only a target with the same login and the same
	// key. Empty: TLS upstream connections are not kept.
	UpstreamTLSKey string

	// AllowCleartextPassword lets the upstream ask for the brokered
	// password in cleartext over a connection that is not TLS with a
	// verified server certificate (UpstreamTLS with verify-ca or
	// verify-full). Without it such a request is refused before the
	// password is sent: whoever answers at UpstreamAddr would get it.
	AllowCleartextPassword bool

	// ReadOnly starts the upstream session with
	// default_transaction_read_only=on. This is a second layer only: the
	// protection is the upstream role's privileges.
	ReadOnly bool
	// StrictAudit holds every server response until the audit receipts
	// of all statements submitted before it are durable.
	StrictAudit bool
	// LogParameters adds bind parameter values to execute events.
	LogParameters bool
	// IdleTimeout closes the session after this long with no traffic and
	// no statement in flight (0 = none).
	IdleTimeout time.Duration
	// MaxConcurrent bounds live sessions of this user under this grant
	// on this gateway (0 = unlimited).
	MaxConcurrent int
	// Statements are the statement guardrails (guard.go): every statement
	// is classified and decided by these rules before it is forwarded.
	// Nil: none.
	Statements *policy.Statements
}

// Authenticator validates a connect token. It returns a Target for a valid
// token, and any error otherwise (the client always sees the same
// message), except a *Refusal. It must consume single-use tokens
// atomically.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (*Target, error)
}

// Refusal is an error an Authenticator returns for a valid connect token
// whose connection it refuses for a reason the client may know (a
// database the resource does not open, say), having audited it. The
// client gets a FATAL with Code and Message instead of the invalid-token
// message; Message must hold no secret.
type Refusal struct {
	Code    string // SQLSTATE; 42501 (insufficient_privilege) if empty
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req AuthRequest) (*Target, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req AuthRequest) (*Target, error) {
	return f(ctx, req)
}

// SessionRecorder persists gateway sessions; it is the subset of
// airlock.SessionStore the gateway uses (the database gateways' one).
type SessionRecorder = dbgw.SessionRecorder
