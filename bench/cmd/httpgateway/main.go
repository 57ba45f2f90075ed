// Command httpgateway runs Airlock's HTTP gateway for bench/http.sh: one
// fixed, reusable app token (bench only) opens the app at -upstream for
// host bench.apps.localhost, with the real audit pipeline (hash-chained
// log, group commit, SQLite store in a temporary directory; two events per
// request) and real identity assertions (EdDSA keys in the same store).
// It serves plain HTTP, like the plain reverse proxy it is compared with.
//
// It prints "LISTENING <addr>" once listening and runs until SIGINT/SIGTERM.
// With -cpuprofile FILE it profiles the CPU from start to exit; with
// -memprofile FILE it writes an allocation profile (alloc_space,
// alloc_objects) on exit; with -pprof ADDR it serves net/http/pprof there
// (a separate listener, never the gateway's).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/assertion"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpgateway:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "gateway listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:8080", "the app's base URL")
	token := flag.String("token", httpgw.TokenPrefix+"bench", "the bearer token clients send")
	strict := flag.Bool("strict", false, "strict audit: forward a request once its event is durable")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile to this file on exit")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *memProfile != "" {
		defer func() {
			f, err := os.Create(*memProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "httpgateway: memprofile:", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "httpgateway: memprofile:", err)
			}
		}()
	}
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		go http.Serve(pln, nil) // http.DefaultServeMux holds net/http/pprof's handlers
		defer pln.Close()
	}
	up, err := url.Parse(*upstream)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "httpgateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "airlock.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	lg, err := audit.Open(ctx, store, audit.Options{Signer: key, Logger: logger, MaxDelay: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	mk, err := secrets.GenerateKey()
	if err != nil {
		return err
	}
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": mk})
	if err != nil {
		return err
	}
	keys, err := assertion.New(store, kr, assertion.Options{Issuer: "http://bench", Logger: logger})
	if err != nil {
		return err
	}
	target := httpgw.Target{UserID: "usr_bench", UserName: "bench", GrantID: "gr_bench", Resource: "bench", Access: "read",
		EndsAt: time.Now().Add(24 * time.Hour), TokenExpiresAt: time.Now().Add(24 * time.Hour), Upstream: up, StrictAudit: *strict}
	gw, err := httpgw.New(httpgw.Config{Domain: "apps.localhost", ConsoleURL: "http://bench", Auth: benchAuth{token: *token, target: target},
		Audit: lg.Pipeline(), Identity: signer{keys}, Logger: logger, Node: "bench"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("LISTENING", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- gw.Serve(ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gw.Shutdown(sctx)
	<-errc
	_ = lg.Close(sctx)
	if h, err := store.AuditHead(sctx); err == nil {
		fmt.Fprintf(os.Stderr, "httpgateway: %d events in the audit log\n", h.Seq)
	}
	return nil
}

// benchAuth serves one app with one fixed token.
type benchAuth struct {
	token  string
	target httpgw.Target
}

func (a benchAuth) App(ctx context.Context, host string) (*httpgw.App, error) {
	if host != "bench.apps.localhost" {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no app at %s", host)
	}
	return &httpgw.App{Resource: "bench", Host: host}, nil
}

func (a benchAuth) Authenticate(ctx context.Context, req httpgw.AuthRequest) (*httpgw.Target, error) {
	if req.Token.Reveal() != a.token {
		return nil, airlock.Errorf(airlock.EUNAUTHORIZED, "wrong token")
	}
	t := a.target
	return &t, nil
}

func (a benchAuth) Redeem(context.Context, httpgw.RedeemRequest) (secrets.Secret, *httpgw.Target, string, error) {
	return "", nil, "", errors.New("no browser sign-in in the bench")
}

func (a benchAuth) Revoke(context.Context, secrets.Secret) error { return nil }

type signer struct{ k *assertion.Keys }

func (s signer) Sign(ctx context.Context, id httpgw.Identity) (string, time.Time, error) {
	tok, err := s.k.Sign(ctx, assertion.Claims{Audience: id.Audience, Subject: id.UserID, Name: id.UserName, Grant: id.GrantID,
		Access: id.Access, EndsAt: id.EndsAt})
	return tok, time.Now().Add(assertion.DefaultLifetime), err
}
