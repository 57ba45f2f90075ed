package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/audit/stream"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/pgproxy"
)

// serverConfig is airlock server's configuration. Each value comes from,
// in order of precedence: a command-line flag, an AIRLOCK_* environment
// variable, the YAML file given with --config, the default.
type serverConfig struct {
	DataDir        string `yaml:"data_dir"`
	Store          string `yaml:"store"`
	HTTPAddr       string `yaml:"http_addr"`
	PGAddr         string `yaml:"pg_addr"`
	PGUpstreamIdle int    `yaml:"pg_upstream_idle"`
	SSHAddr        string `yaml:"ssh_addr"`
	// The HTTP gateway: where it listens, the apps domain its hosts are
	// under, the port browsers reach it on, and its certificate.
	HTTPAppsAddr       string `yaml:"http_apps_addr"`
	HTTPAppsDomain     string `yaml:"http_apps_domain"`
	HTTPAppsPublicPort string `yaml:"http_apps_public_port"`
	HTTPAppsCert       string `yaml:"http_apps_cert"`
	HTTPAppsKey        string `yaml:"http_apps_key"`
	KubeAddr           string `yaml:"kube_addr"`
	MySQLAddr          string `yaml:"mysql_addr"`
	KubePublicURL      string `yaml:"kube_public_url"`
	PublicURL          string `yaml:"public_url"`
	LogLevel           string `yaml:"log_level"`

	SessionIdle     time.Duration `yaml:"session_idle_timeout"`
	SessionLifetime time.Duration `yaml:"session_lifetime"`

	FreshApprove time.Duration `yaml:"mfa_fresh_approve"`
	FreshConnect time.Duration `yaml:"mfa_fresh_connect"`
	FreshFactors time.Duration `yaml:"mfa_fresh_factors"`
	FreshAdmin   time.Duration `yaml:"mfa_fresh_admin"`

	LockoutFailures int           `yaml:"lockout_failures"`
	LockoutDuration time.Duration `yaml:"lockout_duration"`

	WebAuthnRPID      string `yaml:"webauthn_rp_id"`
	WebAuthnOrigins   string `yaml:"webauthn_origins"` // comma-separated
	WebAuthnRequireUV bool   `yaml:"webauthn_require_uv"`
	WebAuthnAAGUIDs   string `yaml:"webauthn_aaguids"` // comma-separated allowlist

	OIDCIssuer           string `yaml:"oidc_issuer"`
	OIDCClientID         string `yaml:"oidc_client_id"`
	OIDCClientSecretFile string `yaml:"oidc_client_secret_file"`
	OIDCGroupsClaim      string `yaml:"oidc_groups_claim"`
	OIDCAcceptAMR        string `yaml:"oidc_accept_amr"` // comma-separated
	OIDCAdminGroup       string `yaml:"oidc_admin_group"`

	CheckpointEvery    int           `yaml:"audit_checkpoint_every"`
	CheckpointInterval time.Duration `yaml:"audit_checkpoint_interval"`
	AuditLinger        time.Duration `yaml:"audit_linger"`
	AuditMaxDelay      time.Duration `yaml:"audit_max_delay"`
	// AuditWitnesses are where every checkpoint is also sent (comma-
	// separated): absolute file paths (JSON Lines, fsynced), http(s)
	// webhook URLs and syslog receivers. See docs/audit.md#witnesses.
	AuditWitnesses string        `yaml:"audit_witnesses"`
	SweepInterval  time.Duration `yaml:"grant_sweep_interval"`
	// DBRoleInterval is how often ephemeral database roles are settled and
	// reconciled (besides at once on every revocation).
	DBRoleInterval time.Duration `yaml:"db_role_interval"`
	NodeHeartbeat  time.Duration `yaml:"node_heartbeat"`
	NodeLostAfter  time.Duration `yaml:"node_lost_after"`

	WebhookAllowLinkLocal bool `yaml:"webhook_allow_link_local"`

	// TrustedProxies lists the HTTP reverse proxies / load balancers
	// whose X-Forwarded-For is believed (comma-separated CIDRs).
	TrustedProxies string `yaml:"trusted_proxies"`

	// Bounds on gateway connections that have not authenticated yet.
	HandshakeTimeout    time.Duration `yaml:"gateway_handshake_timeout"`
	MaxPending          int           `yaml:"gateway_max_pending"`
	MaxPendingPerSource int           `yaml:"gateway_max_pending_per_source"`

	// AuditStreams is the SIEM streams file (audit/stream); streams is
	// it parsed.
	AuditStreams string `yaml:"audit_streams"`
	streams      *stream.Config

	CredentialsDir       string `yaml:"credentials_dir"`
	CredentialsEnvPrefix string `yaml:"credentials_env_prefix"`

	// configFile is the config file read, if any (for
	// checkCredentialSources).
	configFile string

	// now is the server clock; tests inject a fake one (never settable
	// from flags, env or file).
	now func() time.Time
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		DataDir:            "./airlock-data",
		HTTPAddr:           "127.0.0.1:7080",
		PGAddr:             "127.0.0.1:7432",
		PGUpstreamIdle:     pgproxy.DefaultUpstreamIdle,
		SSHAddr:            "127.0.0.1:7022",
		HTTPAppsAddr:       "127.0.0.1:7443",
		HTTPAppsDomain:     "apps.localhost",
		KubeAddr:           "127.0.0.1:7444",
		MySQLAddr:          "127.0.0.1:7306",
		LogLevel:           "info",
		SessionIdle:        time.Hour,
		SessionLifetime:    12 * time.Hour,
		FreshApprove:       5 * time.Minute,
		FreshConnect:       5 * time.Minute,
		FreshFactors:       5 * time.Minute,
		FreshAdmin:         5 * time.Minute,
		LockoutFailures:    5,
		LockoutDuration:    15 * time.Minute,
		CheckpointEvery:    1000,
		CheckpointInterval: 10 * time.Second,
		AuditLinger:        0,
		AuditMaxDelay:      20 * time.Millisecond,
		SweepInterval:      time.Second,
		DBRoleInterval:     10 * time.Second,
		NodeHeartbeat:      access.DefaultHeartbeat,
		NodeLostAfter:      access.DefaultLostAfter,
		OIDCGroupsClaim:    "groups",

		HandshakeTimeout:     netguard.DefaultHandshakeTimeout,
		MaxPending:           netguard.DefaultMaxPending,
		MaxPendingPerSource:  netguard.DefaultMaxPendingPerSource,
		CredentialsEnvPrefix: DefaultCredentialsEnvPrefix,
	}
}

// DefaultCredentialsEnvPrefix is the default of --credentials-env-prefix.
const DefaultCredentialsEnvPrefix = "AIRLOCK_CRED_"

// configKey describes one setting for flags, env and file.
type configKey struct {
	name  string // flag name; env is AIRLOCK_ + upper(name with - → _)
	usage string
	ptr   any
}

func (c *serverConfig) keys() []configKey {
	return []configKey{
		{"data-dir", "data directory (created 0700 on first start)", &c.DataDir},
		{"store", "store: sqlite:PATH or postgres://… (default: sqlite in the data dir)", &c.Store},
		{"http-addr", "HTTP API, console and metrics address", &c.HTTPAddr},
		{"pg-addr", "PostgreSQL gateway address (empty disables)", &c.PGAddr},
		{"pg-upstream-idle", "idle upstream connections kept per upstream login for reuse after DISCARD ALL (0 keeps none)", &c.PGUpstreamIdle},
		{"ssh-addr", "SSH gateway address (empty disables)", &c.SSHAddr},
		{"http-apps-addr", "HTTP gateway address: web apps behind grants, each at its own host under --http-apps-domain (empty disables)", &c.HTTPAppsAddr},
		{"http-apps-domain", "domain the HTTP gateway serves apps under: app grafana is https://grafana.DOMAIN (*.localhost needs no DNS on a laptop)", &c.HTTPAppsDomain},
		{"http-apps-public-port", "port browsers reach the HTTP gateway on, for redirects (default: the port of --http-apps-addr)", &c.HTTPAppsPublicPort},
		{"http-apps-cert", "PEM certificate for *.DOMAIN (default: one issued by the data dir's CA)", &c.HTTPAppsCert},
		{"mysql-addr", "MySQL/MariaDB gateway address (TLS required; empty disables)", &c.MySQLAddr},
		{"kube-addr", "Kubernetes gateway address: kubectl through Airlock, a cluster at https://ADDR/k8s/RESOURCE (empty disables)", &c.KubeAddr},
		{"kube-public-url", "base URL kubeconfigs name for the Kubernetes gateway (default: https://--kube-addr)", &c.KubePublicURL},
		{"http-apps-key", "PEM private key of --http-apps-cert", &c.HTTPAppsKey},
		{"gateway-handshake-timeout", "time a gateway client has to authenticate (TLS, startup, SSH key exchange, upstream connect)", &c.HandshakeTimeout},
		{"gateway-max-pending", "connections still authenticating per gateway listener; more are refused (capped at a quarter of the open-file limit)", &c.MaxPending},
		{"gateway-max-pending-per-source", "connections still authenticating per gateway listener from one IPv4 address or IPv6 /64", &c.MaxPendingPerSource},
		{"public-url", "URL users reach the server at (links, WebAuthn origin); default http://HTTP_ADDR", &c.PublicURL},
		{"log-level", "debug, info, warn or error", &c.LogLevel},
		{"session-idle-timeout", "login session idle timeout (PCI DSS 8.2.8 asks for 15m)", &c.SessionIdle},
		{"session-lifetime", "login session absolute lifetime", &c.SessionLifetime},
		{"mfa-fresh-approve", "MFA freshness window for approving", &c.FreshApprove},
		{"mfa-fresh-connect", "MFA freshness window for connecting", &c.FreshConnect},
		{"mfa-fresh-factors", "MFA freshness window for changing factors", &c.FreshFactors},
		{"mfa-fresh-admin", "MFA freshness window for admin actions", &c.FreshAdmin},
		{"lockout-failures", "attempts per user and source address before growing delays", &c.LockoutFailures},
		{"lockout-duration", "longest delay between throttled attempts", &c.LockoutDuration},
		{"webauthn-rp-id", "WebAuthn relying party ID (default: host of public-url)", &c.WebAuthnRPID},
		{"webauthn-origins", "allowed WebAuthn origins, comma-separated (default: public-url)", &c.WebAuthnOrigins},
		{"webauthn-require-uv", "require user verification (biometric/PIN) for WebAuthn", &c.WebAuthnRequireUV},
		{"webauthn-aaguids", "allow only these authenticator AAGUIDs (comma-separated)", &c.WebAuthnAAGUIDs},
		{"oidc-issuer", "OpenID Connect issuer URL for single sign-on (empty disables SSO)", &c.OIDCIssuer},
		{"oidc-client-id", "OIDC client ID registered at the IdP", &c.OIDCClientID},
		{"oidc-client-secret-file", "file holding the OIDC client secret (never inline)", &c.OIDCClientSecretFile},
		{"oidc-groups-claim", "ID token claim with the user's groups", &c.OIDCGroupsClaim},
		{"oidc-accept-amr", "IdP amr/acr values accepted as a second factor, comma-separated (empty: never)", &c.OIDCAcceptAMR},
		{"oidc-admin-group", "IdP group whose members become Airlock admins (empty: the IdP never grants admins)", &c.OIDCAdminGroup},
		{"audit-checkpoint-every", "sign an audit checkpoint every N events", &c.CheckpointEvery},
		{"audit-checkpoint-interval", "…or every interval when events arrived", &c.CheckpointInterval},
		{"audit-linger", "fixed time the audit writer lets a small batch grow before committing (0: adaptive group commit)", &c.AuditLinger},
		{"audit-max-delay", "longest a gateway statement's audit event waits to share a commit when nothing waits for it (0: commit at once)", &c.AuditMaxDelay},
		{"audit-witnesses", "comma-separated places every audit checkpoint is also sent: absolute file paths (appended, fsynced; not in the data dir) and http(s) webhook URLs", &c.AuditWitnesses},
		{"grant-sweep-interval", "how often expired grants are recorded and their sessions cut", &c.SweepInterval},
		{"db-role-interval", "how often ephemeral database roles of ended grants are dropped and stray airlock_ roles reconciled", &c.DBRoleInterval},
		{"trusted-proxies", "comma-separated CIDRs of HTTP load balancers/reverse proxies whose X-Forwarded-For names the client (login throttling and audit use it); empty: the TCP peer is the client", &c.TrustedProxies},
		{"webhook-allow-link-local", "let webhooks reach link-local addresses and cloud metadata endpoints (169.254.169.254 …); refused by default", &c.WebhookAllowLinkLocal},
		{"credentials-dir", "directory the policy's password_file, sslrootcert, url_file and secret_file must name files in (empty: file references refused; never the data dir)", &c.CredentialsDir},
		{"credentials-env-prefix", "prefix of the environment variables the policy's password_env, url_env and secret_env may name (empty: refused)", &c.CredentialsEnvPrefix},
		{"audit-streams", "YAML file of SIEM sinks the audit log is streamed to: syslog (TCP/TLS), JSON Lines file, Splunk HEC (see docs/audit.md, Streams)", &c.AuditStreams},
		{"node-heartbeat", "how often this server records in the store that it is alive", &c.NodeHeartbeat},
		{"node-lost-after", "a server silent this long is lost: the others end its sessions as node_lost", &c.NodeLostAfter},
	}
}

// checkCredentialSources refuses credential sources that would let a
// policy read the server's own secrets: a credentials dir that is, holds
// or lies in the data dir, or holds the OIDC client secret, the config
// file or a SQLite store; and an env prefix that one of the server's own
// AIRLOCK_* settings starts with.
func (c *serverConfig) checkCredentialSources() error {
	if p := c.CredentialsEnvPrefix; p != "" {
		own := []string{"AIRLOCK_CONFIG"}
		for _, k := range c.keys() {
			own = append(own, envName(k.name))
		}
		for _, name := range own {
			if strings.HasPrefix(name, p) {
				return fmt.Errorf("--credentials-env-prefix %q would let a policy read the server's own setting %s; choose a longer prefix such as %s", p, name, DefaultCredentialsEnvPrefix)
			}
		}
	}
	if c.CredentialsDir == "" {
		return nil
	}
	cred, err := realPath(c.CredentialsDir)
	if err != nil {
		return fmt.Errorf("--credentials-dir %s: %v", c.CredentialsDir, err)
	}
	if st, err := os.Stat(cred); err != nil || !st.IsDir() {
		return fmt.Errorf("--credentials-dir %s is not a directory", c.CredentialsDir)
	}
	data, err := realPath(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %v", c.DataDir, err)
	}
	if within(cred, data) || within(data, cred) {
		return fmt.Errorf("--credentials-dir %s overlaps the data dir %s, which holds the master key; use a directory of its own", c.CredentialsDir, c.DataDir)
	}
	// The server's other secret files must not be in it either.
	own := []struct{ what, path string }{
		{"--oidc-client-secret-file", c.OIDCClientSecretFile},
		{"the config file (--config, AIRLOCK_CONFIG)", c.configFile},
		{"--audit-streams", c.AuditStreams},
	}
	if c.streams != nil {
		for _, sk := range c.streams.Sinks {
			if sk.TokenFile != "" {
				own = append(own, struct{ what, path string }{"the token_file of audit stream " + sk.Name, sk.TokenFile})
			}
		}
	}
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		own = append(own, struct{ what, path string }{"the --store database", p})
	}
	for _, f := range own {
		if f.path == "" {
			continue
		}
		p, err := realPath(f.path)
		if err != nil {
			return fmt.Errorf("%s %s: %v", f.what, f.path, err)
		}
		if within(p, cred) {
			return fmt.Errorf("%s %s is inside --credentials-dir %s, where a policy could name it as a secret to send upstream; keep it elsewhere", f.what, f.path, c.CredentialsDir)
		}
	}
	return nil
}

// auditWitnesses parses --audit-witnesses. A file witness inside the data
// dir (or holding the SQLite store) is refused: a rollback of the data dir
// would take the witness back with it.
func (c *serverConfig) auditWitnesses() ([]audit.Witness, error) {
	var out []audit.Witness
	for _, spec := range strings.Split(c.AuditWitnesses, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		w, err := audit.ParseWitness(spec)
		if err != nil {
			return nil, fmt.Errorf("--audit-witnesses: %v", err)
		}
		if fw, ok := w.(*audit.FileWitness); ok {
			path, err := realPath(fw.Path)
			if err != nil {
				return nil, fmt.Errorf("--audit-witnesses %s: %v", fw.Path, err)
			}
			if data, err := realPath(c.DataDir); err == nil && within(path, data) {
				return nil, fmt.Errorf("--audit-witnesses %s is inside the data dir %s: a witness must live elsewhere (another disk, mount or host), or a rollback of the data dir takes it along", fw.Path, c.DataDir)
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// realPath is p absolute with symbolic links resolved as far as it exists.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest), nil
		}
		if filepath.Dir(dir) == dir {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// within reports whether path is dir or inside it (both cleaned, absolute).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func envName(flag string) string {
	return "AIRLOCK_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// registerFlags adds one flag per key, with the default as shown value.
func (c *serverConfig) registerFlags(fs *pflag.FlagSet) {
	for _, k := range c.keys() {
		switch p := k.ptr.(type) {
		case *string:
			fs.String(k.name, *p, k.usage+" (env "+envName(k.name)+")")
		case *int:
			fs.Int(k.name, *p, k.usage+" (env "+envName(k.name)+")")
		case *bool:
			fs.Bool(k.name, *p, k.usage+" (env "+envName(k.name)+")")
		case *time.Duration:
			fs.Duration(k.name, *p, k.usage+" (env "+envName(k.name)+")")
		}
	}
}

func setValue(ptr any, s string) error {
	switch p := ptr.(type) {
	case *string:
		*p = s
	case *int:
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		*p = v
	case *bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration like 15m, got %q", s)
		}
		*p = v
	}
	return nil
}

// loadServerConfig resolves the configuration: defaults, then file, then
// environment, then flags the user set explicitly.
func loadServerConfig(fs *pflag.FlagSet, file string, getenv func(string) string) (serverConfig, error) {
	c := defaultServerConfig()
	if file == "" {
		file = getenv("AIRLOCK_CONFIG")
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("read config %s: %w", file, err)
		}
		c.configFile = file
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && err.Error() != "EOF" {
			return c, fmt.Errorf("config %s: %v; fix the file (keys are the flag names with _ instead of -)", file, err)
		}
	}
	for _, k := range c.keys() {
		if v := getenv(envName(k.name)); v != "" {
			if err := setValue(k.ptr, v); err != nil {
				return c, fmt.Errorf("env %s: %v", envName(k.name), err)
			}
		}
	}
	for _, k := range c.keys() {
		if f := fs.Lookup(k.name); f != nil && f.Changed {
			if err := setValue(k.ptr, f.Value.String()); err != nil {
				return c, fmt.Errorf("--%s: %v", k.name, err)
			}
		}
	}
	if c.PublicURL == "" {
		// Browsers treat localhost as a secure context (WebAuthn needs one)
		// and WebAuthn relying party IDs cannot be IP addresses.
		host, port, err := net.SplitHostPort(c.HTTPAddr)
		if err == nil && (host == "127.0.0.1" || host == "::1" || host == "") {
			host = "localhost"
		}
		c.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.HandshakeTimeout <= 0 || c.MaxPending <= 0 || c.MaxPendingPerSource <= 0 {
		return c, fmt.Errorf("--gateway-handshake-timeout, --gateway-max-pending and --gateway-max-pending-per-source must be positive (got %s, %d, %d)",
			c.HandshakeTimeout, c.MaxPending, c.MaxPendingPerSource)
	}
	if c.AuditMaxDelay < 0 || c.AuditMaxDelay > maxAuditMaxDelay {
		// A gateway statement must be durable within 50 ms of arriving.
		return c, fmt.Errorf("--audit-max-delay must be between 0 and %s (got %s): statement events must be durable within 50ms", maxAuditMaxDelay, c.AuditMaxDelay)
	}
	if c.AuditStreams != "" {
		raw, err := readBounded(c.AuditStreams, stream.MaxConfigBytes)
		if err != nil {
			return c, fmt.Errorf("--audit-streams: %v", err)
		}
		if c.streams, err = stream.ParseConfig(raw); err != nil {
			return c, fmt.Errorf("--audit-streams %s: %v", c.AuditStreams, err)
		}
	}
	if _, err := c.auditWitnesses(); err != nil {
		return c, err
	}
	if c.NodeHeartbeat <= 0 || c.NodeLostAfter < 3*c.NodeHeartbeat {
		// A node must miss several beats before it is taken for lost.
		return c, fmt.Errorf("--node-heartbeat must be positive and --node-lost-after at least three heartbeats (got %s and %s)", c.NodeHeartbeat, c.NodeLostAfter)
	}
	return c, nil
}

// readBounded reads path, refusing one larger than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// maxAuditMaxDelay leaves room for the commit itself within the 50 ms in
// which a gateway statement's event must be durable.
const maxAuditMaxDelay = 40 * time.Millisecond
