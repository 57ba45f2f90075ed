package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/assertion"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/audit/stream"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/datadir"
	"github.com/airlockhq/airlock/evidence"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/mfa"
	"github.com/airlockhq/airlock/mysqlproxy"
	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
	"github.com/airlockhq/airlock/sshca"
	"github.com/airlockhq/airlock/sshproxy"
	"github.com/airlockhq/airlock/web"
)

func newServerCmd() *cobra.Command {
	cfg := defaultServerConfig()
	var configFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Airlock server (API, console and gateways)",
		Long: `Run the Airlock server. With no flags it creates ./airlock-data (0700) holding the
embedded SQLite store and generated keys, and serves the API on 127.0.0.1:7080,
the PostgreSQL gateway on 127.0.0.1:7432 and the SSH gateway on 127.0.0.1:7022.

Each setting comes from, in order: a flag, an AIRLOCK_* environment variable
(e.g. AIRLOCK_HTTP_ADDR), the YAML file given with --config (keys are the flag
names with _ for -, e.g. http_addr), or the default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadServerConfig(cmd.Flags(), configFile, os.Getenv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, c, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (env AIRLOCK_CONFIG)")
	cfg.registerFlags(cmd.Flags())
	return cmd
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// listen binds addr or explains why it cannot.
func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s address %s is already in use; stop the other process or pick another with --%s", what, addr, what)
		}
		return nil, fmt.Errorf("cannot listen on %s for %s: %v; check --%s", addr, what, err, what)
	}
	return ln, nil
}

// openStore opens the configured store ("" = SQLite in the data dir).
func openStore(ctx context.Context, spec, dataDir string) (airlock.Store, string, error) {
	switch {
	case spec == "":
		p := filepath.Join(dataDir, "airlock.db")
		s, err := sqlite.Open(ctx, p)
		return s, "sqlite:" + p, err
	case strings.HasPrefix(spec, "sqlite:"):
		p := strings.TrimPrefix(spec, "sqlite:")
		s, err := sqlite.Open(ctx, p)
		return s, spec, err
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		s, err := postgres.Open(ctx, spec)
		return s, redactDSN(spec), err
	}
	return nil, "", fmt.Errorf("--store %q: use sqlite:PATH or postgres://USER@HOST:PORT/DB", spec)
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// server holds the running parts.
type server struct {
	cfg      serverConfig
	log      *slog.Logger
	dir      *datadir.Dir
	store    airlock.Store
	audit    *audit.Log
	ident    *identity.Service
	access   *access.Service
	push     *identity.Push // push MFA (state in the store): logins, step-ups, held statements
	pg       *pgproxy.Gateway
	ssh      *sshproxy.Gateway
	http     *httpgw.Gateway     // nil unless --http-apps-addr
	kube     *httpgw.Gateway     // nil unless --kube-addr
	mysql    *mysqlproxy.Gateway // nil unless --mysql-addr
	idKeys   *assertion.Keys     // the identity assertions' keys (JWKS)
	bus      *access.Bus         // the revocation bus, replicated when the store carries revocations
	gateways []airlock.Gateway   // every gateway built: revocations and shutdown reach each
	ca       *sshca.CA
	keyring  *secrets.Keyring
	notifier *notifier
	ends     *sessionEnds
	provs    pgprovision.Pools // the provisioning connections of ephemeral resources
	node     string            // this server's name among replicas
	pending  netguard.Limits   // each gateway listener's pending-handshake bounds

	stoppedMu sync.Mutex
	stopped   []string // listeners whose Serve returned before shutdown
}

func runServer(ctx context.Context, c serverConfig, stderr io.Writer) (err error) {
	logger, err := newLogger(stderr, c.LogLevel)
	if err != nil {
		return err
	}
	pending := fileLimits(logger, netguard.Limits{MaxPending: c.MaxPending, MaxPendingPerSource: c.MaxPendingPerSource})
	// Bind every listener first: a port in use must fail before anything
	// is created on disk.
	httpLn, err := listen("http-addr", c.HTTPAddr)
	if err != nil {
		return err
	}
	defer httpLn.Close()
	var pgLn, sshLn, appsLn, kubeLn, mysqlLn net.Listener
	if c.MySQLAddr != "" {
		if mysqlLn, err = listen("mysql-addr", c.MySQLAddr); err != nil {
			return err
		}
		defer mysqlLn.Close()
	}
	if c.KubeAddr != "" {
		if kubeLn, err = listen("kube-addr", c.KubeAddr); err != nil {
			return err
		}
		defer kubeLn.Close()
	}
	if c.HTTPAppsAddr != "" {
		if appsLn, err = listen("http-apps-addr", c.HTTPAppsAddr); err != nil {
			return err
		}
		defer appsLn.Close()
	}
	if c.PGAddr != "" {
		if pgLn, err = listen("pg-addr", c.PGAddr); err != nil {
			return err
		}
		defer pgLn.Close()
	}
	if c.SSHAddr != "" {
		if sshLn, err = listen("ssh-addr", c.SSHAddr); err != nil {
			return err
		}
		defer sshLn.Close()
	}

	trusted, err := netguard.ParsePrefixes(c.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %v", err)
	}
	if err = c.checkCredentialSources(); err != nil {
		return err
	}
	dir, err := datadir.Open(c.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && dir.Created {
			os.RemoveAll(dir.Path) // a failed first start leaves nothing behind
		}
	}()
	unlock, err := lockDataDir(dir.Path)
	if err != nil {
		return err
	}
	defer unlock()
	store, storeDesc, err := openStore(ctx, c.Store, dir.Path)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s := &server{cfg: c, log: logger, dir: dir, store: store, node: nodeName(), pending: pending}
	now := c.now
	if now == nil {
		now = time.Now
	}
	defer s.provs.Close() // after the services below stop
	if err := s.build(ctx, reg); err != nil {
		return err
	}
	defer func() {
		// The 5 s for the final writes and checkpoint start at shutdown: a
		// timeout taken at startup has long expired by then, and Close
		// would cancel the writes it was meant to finish.
		auditCtx, auditCancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer auditCancel()
		if err := s.audit.Close(auditCtx); err != nil {
			logger.Error("audit: close did not finish writing", "err", err)
		}
	}()

	mux := http.NewServeMux()
	apiSrv := &api.Server{Identity: s.ident, Access: s.access, Logger: logger,
		Audit: &api.AuditDeps{Store: store, Log: s.audit, PublicKey: audit.MarshalPublicKey(s.audit.PublicKey()),
			Export: func(ctx context.Context, w io.Writer, f airlock.EventFilter) error {
				return audit.Export(ctx, store, w, f)
			},
			Verify: func(ctx context.Context) (any, error) { return audit.Verify(ctx, store, s.audit.PublicKey()) }},
		Gateways: api.GatewayInfo{PGAddr: c.PGAddr, SSHAddr: c.SSHAddr, HTTPAppsAddr: c.HTTPAppsAddr, HTTPAppsDomain: appsDomain(c), HTTPAppsPort: appsPort(c), KubeURL: kubeURL(c), MySQLAddr: c.MySQLAddr, TLSCA: string(dir.TLSCertPEM()), SSHHostCA: s.ca.HostCAAuthorizedKey(), SSHUserCA: s.ca.UserCAAuthorizedKey()}}
	if recs, err := recording.NewDir(dir.File("recordings")); err == nil {
		apiSrv.Recordings = func(ctx context.Context, key string) (io.ReadCloser, error) { return recs.Open(ctx, key) }
	}
	apiSrv.Audit.Evidence = func(ctx context.Context, grantID string) (api.EvidencePack, error) {
		src := evidence.Source{Store: store, PublicKey: apiSrv.Audit.PublicKey, Signer: dir.AuditKey, Now: now}
		if apiSrv.Recordings != nil {
			src.Recordings = apiSrv.Recordings
		}
		return evidence.Prepare(ctx, src, grantID)
	}
	apiSrv.Now = now
	mux.Handle("/api/", http.NewCrossOriginProtection().Handler(apiSrv.Handler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			logger.Warn("not ready: store", "err", err)
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
		if err := s.audit.Healthy(); err != nil {
			logger.Warn("not ready: audit", "err", err)
			http.Error(w, "audit log not writable", http.StatusServiceUnavailable)
			return
		}
		if stopped := s.stoppedListeners(); len(stopped) > 0 {
			http.Error(w, "stopped serving: "+strings.Join(stopped, ", "), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// The keys apps verify the HTTP gateway's identity assertions with.
	mux.Handle("GET /.well-known/jwks.json", s.idKeys.Handler())
	// Push MFA keeps its challenges in the store: any replica can begin, answer or poll one.
	push := s.push
	pushAPI := http.NewCrossOriginProtection().Handler(apiSrv.PushHandler(c.PublicURL, push))
	mux.Handle(api.PrefixWebLogin, pushAPI)
	mux.Handle(api.PrefixPush, pushAPI)
	mux.Handle("/", web.Handler(web.Config{API: apiSrv, Identity: s.ident, Access: s.access, Push: push, PublicURL: c.PublicURL, Logger: logger, Now: now}))

	// IdleTimeout: a kept-alive connection does not hold a descriptor
	// for ever.
	httpSrv := &http.Server{Handler: netguard.TrustProxies(trusted, mux), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	httpSrv.RegisterOnShutdown(apiSrv.CloseStreams)

	// The bootstrap token exists before the server answers (so /healthz
	// being ready means the token can be read).
	if wrote, err := s.ident.EnsureBootstrapToken(ctx); err != nil {
		return fmt.Errorf("write bootstrap token: %w", err)
	} else if wrote {
		fmt.Fprintf(stderr, "\nNo users yet. Create the first admin with:\n\n  airlock bootstrap --token-file %s --user admin --password-stdin\n\n", dir.File("bootstrap.token"))
	}

	// This node beats before its gateways serve, and ends the sessions its
	// previous life left behind.
	if err := s.access.StartNode(ctx, access.Liveness{Node: s.node, Identity: nodeIdentity(dir.Path),
		Interval: c.NodeHeartbeat, LostAfter: c.NodeLostAfter, Wall: time.Now}); err != nil {
		return fmt.Errorf("record node heartbeat: %w", err)
	}

	if c.streams != nil && len(c.streams.Sinks) > 0 {
		// SIEM streams read the store after commit: a slow or dead sink
		// never holds back an append. Stopped before the audit log closes.
		streams, err := stream.Start(ctx, c.streams, stream.Options{Store: store, Auditor: s.audit, Holder: s.node,
			Logger: logger.With("component", "audit-stream"), Registerer: reg,
			Now: time.Now}) // leases and settling are real time between processes, like heartbeats
		if err != nil {
			return fmt.Errorf("--audit-streams: %w", err)
		}
		defer streams.Close()
	}

	var wg sync.WaitGroup
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	wg.Add(4)
	go func() { defer wg.Done(); s.access.RunSweeper(runCtx, c.SweepInterval) }()
	go func() { defer wg.Done(); s.access.RunDBRoles(runCtx, nodeIdentity(dir.Path), c.DBRoleInterval) }()
	go func() { defer wg.Done(); s.access.RunNode(runCtx) }()
	go func() { defer wg.Done(); s.watchReadiness(runCtx) }()
	if t, ok := store.(airlock.RevocationTransport); ok {
		// Replicas on one store (PostgreSQL: LISTEN/NOTIFY): revocations
		// fan out over it.
		stopped := s.bus.Replicate(runCtx, s.node, t, logger)
		wg.Add(1)
		go func() { defer wg.Done(); <-stopped }()
	}

	// Each listener serves through accept errors (netguard.Listener); a
	// Serve that returns anyway (its listener closed under it) is logged
	// and makes /readyz fail, but the other listeners serve on: only a
	// signal or ctx stops the server.
	serve := func(name string, f func() error) {
		err := f()
		if runCtx.Err() != nil || ctx.Err() != nil {
			return
		}
		logger.Error("listener stopped serving; the others serve on", "listener", name, "err", err)
		s.stoppedMu.Lock()
		s.stopped = append(s.stopped, name)
		s.stoppedMu.Unlock()
	}
	go serve("http", func() error { return httpSrv.Serve(netguard.NewListener(httpLn, "http", logger)) })
	if pgLn != nil {
		go serve("pg", func() error { return s.pg.Serve(runCtx, pgLn) })
	}
	if sshLn != nil {
		go serve("ssh", func() error { return s.ssh.Serve(runCtx, sshLn) })
	}
	if appsLn != nil {
		go serve("http-apps", func() error { return s.http.Serve(appsLn) })
	}
	if kubeLn != nil {
		go serve("kube", func() error { return s.kube.Serve(kubeLn) })
	}
	if mysqlLn != nil {
		go serve("mysql", func() error { return s.mysql.Serve(runCtx, mysqlLn) })
	}

	logger.Info("airlock server started", "version", version, "http", httpLn.Addr().String(), "pg", c.PGAddr, "ssh", c.SSHAddr, "http_apps", c.HTTPAppsAddr, "kube", c.KubeAddr, "mysql", c.MySQLAddr,
		"store", storeDesc, "data_dir", dir.Path, "created", dir.Created)

	<-ctx.Done()
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	httpSrv.Shutdown(shutCtx)
	for _, gw := range s.gateways {
		gw.Shutdown(shutCtx)
	}
	s.ends.close()
	cancelRun()
	wg.Wait()
	s.notifier.close(shutCtx)
	logger.Info("stopped")
	return nil
}

// build constructs the services and gateways.
func (s *server) build(ctx context.Context, reg prometheus.Registerer) error {
	c, dir, store, logger := s.cfg, s.dir, s.store, s.log
	now := c.now
	if now == nil {
		now = time.Now
	}
	kr, err := secrets.NewKeyring(dir.MasterKeyID, dir.MasterKeys)
	if err != nil {
		return err
	}
	s.keyring = kr
	witnesses, err := c.auditWitnesses()
	if err != nil {
		return err
	}
	al, err := audit.Open(ctx, store, audit.Options{Signer: dir.AuditKey, CheckpointEvery: c.CheckpointEvery,
		CheckpointInterval: c.CheckpointInterval, Linger: c.AuditLinger, MaxDelay: c.AuditMaxDelay, Logger: logger, Registerer: reg, Now: now,
		Witnesses: witnesses})
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	s.audit = al
	s.ends = newSessionEnds(store, al, logger)

	pub, err := url.Parse(c.PublicURL)
	if err != nil || pub.Host == "" {
		return fmt.Errorf("--public-url %q is not a URL like https://airlock.example.com", c.PublicURL)
	}
	rpID := c.WebAuthnRPID
	if rpID == "" {
		rpID = pub.Hostname()
		if net.ParseIP(rpID) != nil {
			return fmt.Errorf("--public-url %s uses an IP address; WebAuthn needs a host name (use localhost or set --webauthn-rp-id)", c.PublicURL)
		}
	}
	origins := []string{c.PublicURL}
	if c.WebAuthnOrigins != "" {
		origins = splitList(c.WebAuthnOrigins)
	}
	wa, err := mfa.NewWebAuthn(mfa.WebAuthnConfig{RPID: rpID, RPDisplayName: "Airlock", RPOrigins: origins,
		RequireUserVerification: c.WebAuthnRequireUV, AllowedAAGUIDs: splitList(c.WebAuthnAAGUIDs)}, store, store, now)
	if err != nil {
		return fmt.Errorf("webauthn: %w", err)
	}
	s.ident = identity.New(identity.Deps{
		Store: store, Audit: al, Logger: logger, Now: now,
		Hasher:   auth.NewHasher(auth.DefaultParams(), runtime.GOMAXPROCS(0)),
		TOTP:     mfa.NewTOTP(store, kr, "Airlock", now),
		Recovery: mfa.NewRecovery(store, now),
		WebAuthn: wa,
	}, identity.Config{IdleTimeout: c.SessionIdle, Lifetime: c.SessionLifetime, BootstrapTokenFile: dir.File("bootstrap.token"),
		Throttle: identity.ThrottleConfig{FreeAttempts: c.LockoutFailures, MaxDelay: c.LockoutDuration},
		Freshness: map[string]time.Duration{identity.ActionApprove: c.FreshApprove, identity.ActionConnect: c.FreshConnect,
			identity.ActionFactors: c.FreshFactors, identity.ActionAdmin: c.FreshAdmin, identity.ActionBreakGlass: c.FreshConnect}})

	s.push = s.ident.NewPush(identity.PushConfig{})

	if c.OIDCIssuer != "" {
		o, err := newOIDC(ctx, c, now)
		if err != nil {
			return err
		}
		s.ident.SetOIDC(o)
	}

	bus := &access.Bus{}
	s.bus = bus
	creds := access.CredentialSources{Dir: c.CredentialsDir, EnvPrefix: c.CredentialsEnvPrefix}
	s.notifier = newNotifier(al, logger, c.PublicURL, c.WebhookAllowLinkLocal, now, creds.Resolve)
	s.ca = sshca.New(dir.SSHUserCA, dir.SSHHostCA)
	s.access, err = access.New(ctx, access.Deps{Store: store, Audit: al, Sealer: kr, Identity: s.ident, Bus: bus, Logger: logger, Now: now,
		ConsoleURL: c.PublicURL, Notify: s.notifier.send, Credentials: creds, SSHCA: s.ca,
		Provisioners: provisioners(&s.provs), ProvisionerChanged: s.provs.Forget})
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	s.notifier.policy = s.access.Policy
	s.ident.OnDisable(func(ctx context.Context, userID, reason string) { s.access.RevokeUser(ctx, userID, reason) })

	// SSH gateway (its CA is the access service's, above).
	if c.SSHAddr != "" {
		hostKey, err := loadOrCreateHostKey(dir)
		if err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(c.SSHAddr)
		hs, err := s.ca.HostSigner(hostKey, []string{host, "localhost", "airlock"}, 365*24*time.Hour)
		if err != nil {
			return err
		}
		recs, err := recording.NewDir(dir.File("recordings"))
		if err != nil {
			return err
		}
		s.ssh, err = sshproxy.New(sshproxy.Config{HostSigner: hs, CA: s.ca, Auth: sshAuthorizer{s}, Audit: endAuditor{al, s.ends}, Sessions: s.ends,
			Recordings: recs, Logger: logger.With("gateway", "ssh"), Node: s.node, Now: now,
			HandshakeTimeout: c.HandshakeTimeout, Pending: s.pending})
		if err != nil {
			return err
		}
	}
	if c.PGAddr != "" {
		host, _, _ := net.SplitHostPort(c.PGAddr)
		certPEM, keyPEM, err := dir.IssueServerCert([]string{host, "localhost", "127.0.0.1"}, 365*24*time.Hour)
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return err
		}
		s.pg, err = pgproxy.New(pgproxy.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			// Connect tokens travel only inside TLS (airlock psql and
			// airlock connect always use it); plaintext clients on
			// loopback prove the token with SCRAM-SHA-256 instead of
			// sending it (pgAuthenticator is a SCRAMAuthenticator).
			AllowLoopbackPlaintext: true, Auth: pgAuthenticator{s}, Audit: auditSink{al, s.ends}, Sessions: s.ends,
			Logger: logger.With("gateway", "postgres"), Node: s.node, Registerer: reg, Now: now,
			UpstreamIdle: upstreamIdle(c.PGUpstreamIdle), HandshakeTimeout: c.HandshakeTimeout, Pending: s.pending,
			Holder: statementHolder{s}, ColumnHashKey: s.keyring.Derive("pgproxy column hash")})
		if err != nil {
			return err
		}
	}
	if err := s.buildMySQLGateway(reg); err != nil {
		return err
	}
	if err := s.buildKubeGateway(); err != nil {
		return err
	}
	if err := s.buildHTTPGateway(); err != nil {
		return err
	}
	// One list, in a fixed order (pg, ssh, http): every revocation and the
	// shutdown reach each gateway through the root package's contract.
	if s.pg != nil {
		s.gateways = append(s.gateways, s.pg)
	}
	if s.ssh != nil {
		s.gateways = append(s.gateways, s.ssh)
	}
	if s.http != nil {
		s.gateways = append(s.gateways, s.http)
	}
	if s.kube != nil {
		s.gateways = append(s.gateways, s.kube)
	}
	if s.mysql != nil {
		s.gateways = append(s.gateways, s.mysql)
	}
	bus.Subscribe(func(r airlock.Revocation) {
		for _, gw := range s.gateways {
			r.Apply(gw)
		}
	})
	return nil
}

// stoppedListeners names the listeners whose Serve returned before shutdown.
func (s *server) stoppedListeners() []string {
	s.stoppedMu.Lock()
	defer s.stoppedMu.Unlock()
	return append([]string(nil), s.stopped...)
}

// fileLimits raises the soft open-file limit to the hard one, logs the
// limit the server runs with, and returns the gateways' pending-handshake
// bounds fitted to it (netguard.MaxPendingFor).
func fileLimits(logger *slog.Logger, want netguard.Limits) netguard.Limits {
	fl, err := netguard.RaiseFileLimit()
	if err != nil {
		logger.Warn("cannot raise the open-file limit (RLIMIT_NOFILE) to its hard limit", "err", err, "soft", fl.Soft, "hard", fl.Hard)
	} else {
		logger.Info("open-file limit", "soft", fl.Soft, "hard", fl.Hard, "raised", fl.Raised, "soft_before", fl.Before)
	}
	lim, lowered := netguard.MaxPendingFor(want, fl)
	if lowered {
		logger.Warn("pending-handshake bounds lowered to fit the open-file limit; raise the limit (ulimit -n, LimitNOFILE=) to keep them",
			"max_pending", lim.MaxPending, "max_pending_per_source", lim.MaxPendingPerSource, "open_files", fl.Soft)
	}
	return lim
}

// readinessProbe is how often, while the audit log cannot be written,
// the server checks whether it can be again (the issue's bound: 2 s).
const readinessProbe = time.Second

// watchReadiness makes /readyz recover by itself: while the audit log is
// unhealthy (its last write failed), it pings the store every
// readinessProbe and, when the store answers, probes the log with a real
// append (audit.Log.Probe) — so the server turns ready again within a
// probe or two of the store (or disk) coming back, with no traffic at all:
// a load balancer routing on /readyz sends none to an unready replica.
func (s *server) watchReadiness(ctx context.Context) {
	t := time.NewTicker(readinessProbe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.audit.Healthy() == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.store.Ping(pctx)
		if err == nil {
			err = s.audit.Probe(pctx)
		}
		cancel()
		if err == nil {
			s.log.Info("audit log writable again; ready")
		} else {
			s.log.Debug("readiness probe: audit log still not writable", "err", err)
		}
	}
}

// nodeIdentity names this server across restarts: host and data dir. The
// nodes recorded under it are its previous lives, whose sessions it ends
// at start (two live servers never share a host and a data dir).
func nodeIdentity(dataDir string) string {
	h, _ := os.Hostname()
	return h + ":" + dataDir
}

// nodeName names one running server (sessions' Node, revocation origin):
// host, process and a random part, so two servers never share a name.
func nodeName() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", h, os.Getpid(), airlock.NewID("node"))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func loadOrCreateHostKey(dir *datadir.Dir) (ssh.Signer, error) {
	path := dir.File("ssh_gateway_host_key")
	if b, err := os.ReadFile(path); err == nil {
		return ssh.ParsePrivateKey(b)
	}
	signer, priv, err := sshca.GenerateKey()
	if err != nil {
		return nil, err
	}
	pemBytes, err := sshca.MarshalPrivateKey(priv, "airlock gateway host key")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return nil, err
	}
	return signer, nil
}

// newOIDC discovers the configured OpenID provider for single sign-on.
func newOIDC(ctx context.Context, c serverConfig, now func() time.Time) (*identity.OIDC, error) {
	var secret string
	if c.OIDCClientSecretFile != "" {
		b, err := os.ReadFile(c.OIDCClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	o, err := identity.NewOIDC(dctx, identity.OIDCConfig{Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: secret,
		RedirectURL: c.PublicURL + api.RouteOIDCCallback, GroupsClaim: c.OIDCGroupsClaim,
		AcceptAMR: splitList(c.OIDCAcceptAMR), AdminGroup: c.OIDCAdminGroup}, now)
	if err != nil {
		return nil, fmt.Errorf("--oidc-issuer %s: %w", c.OIDCIssuer, err)
	}
	return o, nil
}

// upstreamIdle maps --pg-upstream-idle (0 keeps none) to
// pgproxy.Config.UpstreamIdle (0 is the default, negative keeps none).
func upstreamIdle(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
