package mysqlproxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbgw"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/secrets"
)

// DefaultAddr is the gateway's default listen address.
const DefaultAddr = "127.0.0.1:7306"

// Limits.
const (
	// MaxStatementText is how much statement text an audit event carries;
	// longer text is cut and statement_sha256 names the full text.
	MaxStatementText = 8 << 10
	// MaxCommandSize bounds one client command after authentication.
	MaxCommandSize = 64 << 20
)

// Config configures a Gateway. TLS, Auth and Audit are required: the
// connect token is accepted only inside TLS.
type Config struct {
	// TLS is the certificate offered to clients (SSLRequest).
	TLS *tls.Config
	// Auth validates connect tokens.
	Auth Authenticator
	// Audit takes session and statement events.
	Audit airlock.AuditPipeline
	// Sessions records session rows (optional).
	Sessions SessionRecorder
	Logger   *slog.Logger
	Now      func() time.Time
	// Node names this server process in Session.Node.
	Node string
	// HandshakeTimeout bounds TLS, authentication and the upstream login
	// (default netguard.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// Pending bounds connections still in their handshake (netguard
	// defaults).
	Pending netguard.Limits
	// Registerer, when set, receives the gateway's Prometheus metrics
	// (airlock_mysql_…, the set dbmetrics.Metrics names for every engine).
	Registerer prometheus.Registerer
}

// AuthRequest is what a client presents: the Airlock user name, the
// database it named at connect ("RESOURCE" or "RESOURCE/DB"), and the
// connect token it sent as the password inside TLS.
type AuthRequest struct {
	User, Database string
	Token          secrets.Secret
	SourceAddr     string
}

// Target is what a valid connect token opens.
type Target struct {
	UserID, UserName, GrantID, Resource, Access string
	// EndsAt is the grant's ends_at: the session's hard deadline.
	EndsAt time.Time
	// UpstreamAddr is the server's host:port; UpstreamDatabase the
	// database opened at connect (checked against Databases).
	UpstreamAddr     string
	UpstreamDatabase string
	// Databases are the only databases the client may switch to (USE,
	// COM_INIT_DB).
	Databases []string
	// UpstreamUser and UpstreamPassword are the brokered credential.
	UpstreamUser     string
	UpstreamPassword secrets.Secret
	// UpstreamTLS, when set, makes the upstream connection TLS.
	UpstreamTLS *tls.Config
	// ReadOnly starts the upstream session with SET SESSION TRANSACTION
	// READ ONLY: a second layer; the account's privileges are the boundary.
	ReadOnly bool
	// StrictAudit forwards a command only once its event is durable.
	StrictAudit bool
	// LogParameters adds prepared statements' parameter values to their
	// execute events.
	LogParameters bool
	// IdleTimeout ends a session with no command for this long (0: none).
	IdleTimeout time.Duration
	// MaxConcurrent bounds live sessions per user and grant on this
	// gateway (0: unlimited).
	MaxConcurrent int
}

// Authenticator validates connect tokens (single-use ones atomically) and
// audits refusals itself. The client always sees the same refusal.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (*Target, error)
}

// SessionRecorder persists gateway sessions; airlock.SessionStore
// satisfies it.
type SessionRecorder = dbgw.SessionRecorder
