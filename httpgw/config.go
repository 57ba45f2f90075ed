package httpgw

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
)

// Names the gateway owns on every app host. Nothing under ReservedPrefix
// reaches an app.
const (
	// CookieName is the app-session cookie. The __Host- prefix makes the
	// browser refuse it unless it is Secure, host-only and Path=/, so a
	// sibling app host cannot set it for this one (cookie tossing).
	CookieName = "__Host-airlock"
	// StateCookieName holds the browser's half of a sign-in in progress: the
	// console binds the single-use code to its hash, so a code minted for
	// someone else's browser is useless here (login CSRF, fixation).
	StateCookieName = "__Host-airlock-state"
	// ReservedPrefix is the path prefix the gateway answers itself.
	ReservedPrefix = "/.airlock/"
	// CallbackPath receives the console's single-use code.
	CallbackPath = ReservedPrefix + "callback"
	// SignOutPath ends the app session in this browser.
	SignOutPath = ReservedPrefix + "signout"
	// TokenPrefix starts every token the gateway accepts as a bearer
	// token (auth.NewToken's prefix); other Authorization values are the
	// app's and pass through.
	TokenPrefix = "alh_"
	// IdentityHeader carries the signed identity assertion (a JWT) to the
	// app on every request.
	IdentityHeader = "X-Airlock-Identity"
)

// Defaults.
const (
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultRecheck is how long a validated token is trusted before the
	// gateway asks the store again (a revocation the bus lost still ends
	// access within it).
	DefaultRecheck = 5 * time.Second
	// DefaultCopyBufferSize is the reverse proxy's copy buffer.
	DefaultCopyBufferSize = 32 << 10
	// DefaultStateTTL bounds a sign-in in progress.
	DefaultStateTTL = 10 * time.Minute
)

// Config configures a Gateway. Auth and Audit are required; so are
// Domain, ConsoleURL and Identity for the apps door (Door nil).
type Config struct {
	// Door is the kind of gateway this is (nil: the apps door, web apps
	// at their own hosts under Domain).
	Door Door

	// Domain is the apps domain: an app's default host is
	// RESOURCE.Domain ("grafana.apps.example.com").
	Domain string
	// PublicPort is the port browsers reach the gateway on ("" for the
	// scheme's default); it goes into redirects to app hosts.
	PublicPort string
	// ConsoleURL is the console's base URL; browsers without an app session
	// are sent to ConsoleURL + "/apps/open".
	ConsoleURL string
	// TLS serves the app hosts (a wildcard certificate for *.Domain).
	TLS *tls.Config

	Auth  Authenticator
	Audit airlock.AuditPipeline
	// Identity signs the assertion sent upstream in IdentityHeader
	// (required for the apps door; nil sends none).
	Identity Signer
	// Sessions records session rows (optional).
	Sessions SessionRecorder
	// Recordings keeps terminal recordings of streams a StreamDoor
	// records (required by such doors).
	Recordings recording.Store

	Logger *slog.Logger
	Now    func() time.Time
	// Node names this server process in Session.Node.
	Node string

	// MaxHeaderBytes bounds a request's header (default
	// DefaultMaxHeaderBytes); larger requests get 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request's header
	// (default DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// IdleConnTimeout closes keep-alive connections idle this long
	// (default 2 minutes).
	IdleConnTimeout time.Duration
	// Recheck is how long a validated token is trusted before it is
	// validated again (default DefaultRecheck).
	Recheck time.Duration
	// Pending bounds connections whose TLS handshake or first request has
	// not completed, per listener and per source (netguard defaults).
	Pending netguard.Limits
	// CopyBufferSize is the buffer a response is copied through
	// (default DefaultCopyBufferSize); a streamed response holds one for
	// its whole life.
	CopyBufferSize int
	// Transport reaches the apps; nil builds one per target TLS setting.
	Transport http.RoundTripper
	// UpstreamHTTP2 lets the built transports speak HTTP/2 to an https
	// upstream that offers it, so that concurrent requests and
	// long-lived streams (watches) share one connection instead of
	// holding one each; requests that upgrade (WebSocket, SPDY) still
	// get an HTTP/1.1 connection of their own. Each stream's receive
	// window is UpstreamHTTP2StreamWindow. Off by default: the apps
	// gateway's upstreams are anyone's servers.
	UpstreamHTTP2 bool
}

// knownLengthFlush is the longest a written part of a response with a
// Content-Length waits in the gateway before it is flushed to the client.
const knownLengthFlush = 50 * time.Millisecond

// UpstreamHTTP2StreamWindow is how much of one HTTP/2 stream's response
// the gateway accepts ahead of its client (Config.UpstreamHTTP2): what a
// slow reader can make it hold per stream. Go's default is 4 MiB.
const UpstreamHTTP2StreamWindow = 512 << 10

// App is an HTTP resource as the gateway routes to it.
type App struct {
	Resource string
	// Host is the public host name the app is served at (lower case, no
	// port).
	Host string
}

// AuthRequest is a token presented for an app.
type AuthRequest struct {
	App        *App
	Token      secrets.Secret
	SourceAddr string
	// Browser is set when the token came in the app cookie.
	Browser bool
}

// RedeemRequest is the console's single-use code arriving at the app host
// with the state the browser holds.
type RedeemRequest struct {
	App        *App
	Code       secrets.Secret
	State      secrets.Secret
	SourceAddr string
}

// Authenticator is the gateway's view of the access service. Errors it
// returns are *airlock.Error values whose messages may be shown to the
// user; it audits refusals itself.
type Authenticator interface {
	// App returns the app served at host (lower case, no port), or an
	// ENOTFOUND error.
	App(ctx context.Context, host string) (*App, error)
	// Authenticate validates a token for app and returns what it opens.
	// It is called again every Config.Recheck while the token is used.
	Authenticate(ctx context.Context, req AuthRequest) (*Target, error)
	// Redeem consumes a single-use sign-in code (atomically across
	// replicas) and returns a new browser token for the app, with its
	// target and the path to continue at.
	Redeem(ctx context.Context, req RedeemRequest) (token secrets.Secret, t *Target, next string, err error)
	// Revoke makes the token unusable (sign-out, a killed or idle
	// session).
	Revoke(ctx context.Context, token secrets.Secret) error
}

// GrantChecker is an Authenticator that can also validate the grant
// behind a target without its token: the core asks it while a session
// whose token ran out before the grant still has streams open (a watch or
// a log stream outlives its token, never its grant). Without it such a
// session relies on the revocation bus alone until its streams end.
type GrantChecker interface {
	CheckGrant(ctx context.Context, t *Target) (*Target, error)
}

// Target is what a valid token opens: who, under which grant, and how the
// app is reached.
type Target struct {
	UserID, UserName string
	Groups           []string
	GrantID          string
	Resource         string
	Access           string
	// EndsAt is the grant's ends_at; TokenExpiresAt the token's own end
	// (at most EndsAt).
	EndsAt, TokenExpiresAt time.Time

	// Upstream is the app's base URL (http or https).
	Upstream *url.URL
	// UpstreamTLS verifies an https upstream (nil: system roots,
	// verify-full).
	UpstreamTLS *tls.Config
	// UpstreamTLSKey identifies UpstreamTLS's settings, so that targets
	// with equal settings share a transport.
	UpstreamTLSKey string
	// Header is what the gateway adds to every request upstream: the
	// brokered credential (never logged, never sent back to the client).
	Header http.Header
	// Rules, when not empty, are the only requests this access level may
	// send (see airlock.HTTPRule); everything else gets 403.
	Rules []airlock.HTTPRule
	// LogQuery keeps query strings in http.request events.
	LogQuery bool
	// StrictAudit forwards a request only once its http.request event is
	// durable.
	StrictAudit bool
	// IdleTimeout ends the session after this long with no request in
	// flight (0 = none).
	IdleTimeout time.Duration
	// MaxConcurrent bounds the requests and streams in flight at once in
	// this session (0 = unlimited).
	MaxConcurrent int
	// Door is what the gateway's Door needs beyond this (kubegw: what to
	// impersonate, where); the core never reads it.
	Door any
}

// Identity is what the signed assertion to the app says.
type Identity struct {
	UserID, UserName string
	Groups           []string
	GrantID, Access  string
	EndsAt           time.Time
	// Audience is the app (its resource name).
	Audience string
}

// Signer signs identity assertions for apps.
type Signer interface {
	// Sign returns a signed assertion and when it expires.
	Sign(ctx context.Context, id Identity) (token string, expires time.Time, err error)
}

// SessionRecorder persists gateway sessions; airlock.SessionStore
// satisfies it.
type SessionRecorder interface {
	CreateSession(ctx context.Context, s *airlock.Session) error
	EndSession(ctx context.Context, s *airlock.Session) error
}
