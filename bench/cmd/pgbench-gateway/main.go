// Command pgbench-gateway runs Airlock's PostgreSQL gateway for
// bench/pgbench.sh: a fixed connect token (reusable: bench only) opens the
// upstream database with a fixed credential, and every statement goes
// through the real audit pipeline (hash-chained log, group commit, SQLite
// store in a temporary directory) or, with -audit=count, a counting sink.
//
// It prints "ready" once listening and runs until SIGINT/SIGTERM.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"github.com/airlockhq/airlock/policy"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pgbench-gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:6432", "gateway listen address")
	upstream := flag.String("upstream", "127.0.0.1:5432", "upstream PostgreSQL host:port")
	db := flag.String("db", "bench", "upstream database")
	user := flag.String("user", "bench", "upstream user")
	token := flag.String("token", "bench-token", "the connect token clients send as password")
	strict := flag.Bool("strict", false, "strict audit: hold results until their events are durable")
	mode := flag.String("audit", "sqlite", "audit sink: sqlite (real pipeline) or count")
	dataDir := flag.String("data-dir", "", "directory for the SQLite store (default: a temporary directory)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	sslMode := flag.String("upstream-sslmode", "disable", "TLS to PostgreSQL: disable, require, verify-ca or verify-full")
	sslRootCert := flag.String("upstream-sslrootcert", "", "PEM file of the CA certificates PostgreSQL's certificate must chain to")
	guard := flag.Bool("guard", false, "statement guardrails: 20 statement rules, none of which matches pgbench's statements (every statement is checked against all of them)")
	mask := flag.Bool("mask", false, "with -guard: also mask two columns (pgbench_accounts.filler: mask, pgbench_tellers.filler: hash), so that the catalog is read per session and every result is checked")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	password := secrets.Secret(os.Getenv("UPSTREAM_PASSWORD"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var sink airlock.AuditPipeline
	var closeSink func()
	switch *mode {
	case "count":
		c := &countingSink{}
		sink, closeSink = c, func() { fmt.Fprintf(os.Stderr, "pgbench-gateway: %d events\n", c.n.Load()) }
	case "sqlite":
		dir := *dataDir
		if dir == "" {
			d, err := os.MkdirTemp("", "pgbench-gateway-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			dir = d
		}
		store, err := sqlite.Open(ctx, filepath.Join(dir, "airlock.db"))
		if err != nil {
			return err
		}
		defer store.Close()
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		lg, err := audit.Open(ctx, store, audit.Options{Signer: key, Logger: logger, Linger: envDuration("AUDIT_LINGER", 0),
			MaxDelay: envDuration("AUDIT_MAX_DELAY", 20*time.Millisecond)})
		if err != nil {
			return err
		}
		sink = lg.Pipeline()
		closeSink = func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = lg.Close(cctx)
			if h, err := store.AuditHead(cctx); err == nil {
				fmt.Fprintf(os.Stderr, "pgbench-gateway: %d events in the audit log\n", h.Seq)
			}
		}
	default:
		return fmt.Errorf("unknown -audit %q", *mode)
	}

	var caPEM []byte
	if *sslRootCert != "" {
		b, err := os.ReadFile(*sslRootCert)
		if err != nil {
			return err
		}
		caPEM = b
	}
	upTLS, err := pgproxy.UpstreamTLSConfig(*sslMode, caPEM)
	if err != nil {
		return err
	}
	target := pgproxy.Target{
		UserID: "usr_bench", UserName: "bench", GrantID: "gr_bench", Resource: "bench", Access: "write",
		EndsAt:       time.Now().Add(24 * time.Hour),
		UpstreamAddr: *upstream, UpstreamDatabase: *db, UpstreamUser: *user, UpstreamPassword: password,
		StrictAudit: *strict, UpstreamTLS: upTLS, UpstreamTLSKey: *sslMode + "\n" + string(caPEM),
	}
	if *guard {
		target.Statements = benchGuard()
		if *mask {
			target.Statements.Columns = []policy.ColumnMask{
				{Pattern: "pgbench_accounts.filler", Action: policy.ColumnMaskValue},
				{Pattern: "pgbench_tellers.filler", Action: policy.ColumnHash},
			}
		}
		pgproxy.WarmGuard()
	}
	salt := auth.SCRAMSalt("usr_bench", "bench")
	authn := &benchAuth{token: *token, target: target, salt: salt,
		verifier: auth.NewSCRAMVerifier(*token, salt, auth.SCRAMIterations)}
	gw, err := pgproxy.New(pgproxy.Config{Auth: authn, Audit: sink, AllowLoopbackPlaintext: true, Logger: logger, Node: "bench",
		UpstreamIdle: upstreamIdle()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	errc := make(chan error, 1)
	go func() { errc <- gw.Serve(ctx, ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gw.Shutdown(sctx)
	<-errc
	closeSink()
	return nil
}

// benchAuth accepts one fixed, reusable token (bench only: it never runs
// out), in the clear or — like the server for plaintext loopback clients —
// as a SCRAM-SHA-256 proof against its verifier.
type benchAuth struct {
	token    string
	target   pgproxy.Target
	salt     []byte
	verifier auth.SCRAMVerifier
}

func (a *benchAuth) Authenticate(ctx context.Context, req pgproxy.AuthRequest) (*pgproxy.Target, error) {
	if req.Token.Reveal() != a.token {
		return nil, errors.New("wrong token")
	}
	t := a.target
	return &t, nil
}

func (a *benchAuth) SCRAMCandidates(ctx context.Context, req pgproxy.AuthRequest) (*pgproxy.SCRAMCandidates, error) {
	return &pgproxy.SCRAMCandidates{Salt: a.salt, Iterations: auth.SCRAMIterations, Verifiers: []auth.SCRAMVerifier{a.verifier}}, nil
}

func (a *benchAuth) AuthenticateSCRAM(ctx context.Context, req pgproxy.AuthRequest, c *pgproxy.SCRAMCandidates, match int) (*pgproxy.Target, error) {
	if match != 0 {
		return nil, errors.New("wrong token")
	}
	t := a.target
	return &t, nil
}

// upstreamIdle reads UPSTREAM_IDLE, the gateway's kept upstream
// connections per login (0: none); the server default when unset.
func upstreamIdle() int {
	if v := os.Getenv("UPSTREAM_IDLE"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			if n <= 0 {
				return -1
			}
			return n
		}
	}
	return 0
}

type countingSink struct{ n atomic.Int64 }

type done struct{}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (done) Done() <-chan struct{} { return closed }
func (done) Err() error            { return nil }
func (done) Seq() int64            { return 0 }

func (c *countingSink) Submit(airlock.Event) airlock.AuditPending { c.n.Add(1); return done{} }
func (c *countingSink) Flush()                                    {}

// envDuration reads an audit option from the environment (e.g.
// AUDIT_LINGER=2ms, AUDIT_MAX_DELAY=0); def, the server's default, when
// unset.
func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// benchGuard is a 20-rule statement policy of the kind a team writes
// (destructive forms, server files, secret tables, DCL), none of whose
// rules matches pgbench's statements: each statement is compared with
// every rule, the worst case for a statement that is allowed.
func benchGuard() *policy.Statements {
	sp := &policy.Statements{Rules: []policy.StatementRule{
		{Name: "destructive", Forms: []string{"no_where", "truncate", "drop", "alter_drop"}, Action: policy.StatementDeny},
		{Name: "files", Functions: []string{"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_export", "lo_import"}, Action: policy.StatementDeny},
		{Name: "programs", Forms: []string{"copy_program", "copy_file"}, Action: policy.StatementDeny},
		{Name: "dblink", Functions: []string{"dblink", "dblink_exec"}, Action: policy.StatementDeny},
		{Name: "kill", Functions: []string{"pg_terminate_backend", "pg_cancel_backend"}, Action: policy.StatementDeny},
		{Name: "dcl", Class: []string{"dcl"}, Action: policy.StatementAuditOnly},
	}}
	for i := range 14 {
		sp.Rules = append(sp.Rules, policy.StatementRule{Name: fmt.Sprintf("secret-%d", i),
			Objects: []string{fmt.Sprintf("vault_%d.*", i), fmt.Sprintf("public.secret_%d", i)}, Action: policy.StatementDeny})
	}
	return sp
}
