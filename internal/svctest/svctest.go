// Package svctest builds Airlock's services (identity, access, audit) on
// a throwaway SQLite store, the way the server wires them, for the tests
// of the front ends that serve them (api, web).
package svctest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/mfa"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

// Env is a set of services on one store, closed when the test ends.
type Env struct {
	Store     airlock.Store
	Audit     *audit.Log
	PublicKey ed25519.PublicKey  // the audit checkpoint key
	AuditKey  ed25519.PrivateKey // its private half (evidence packs sign with it)
	Identity  *identity.Service
	Access    *access.Service
	// BootstrapFile is where Identity keeps the bootstrap token.
	BootstrapFile string
}

// New builds the services with clock now (cheap password hashing, TOTP
// and recovery codes, a fresh keyring).
func New(t testing.TB, now func() time.Time) *Env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close(context.Background()) })
	mk, _ := secrets.GenerateKey()
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": mk})
	if err != nil {
		t.Fatal(err)
	}
	p := auth.DefaultParams()
	p.Memory, p.Iterations = 1024, 1
	e := &Env{Store: store, Audit: al, PublicKey: pub, AuditKey: key, BootstrapFile: filepath.Join(t.TempDir(), "bootstrap.token")}
	e.Identity = identity.New(identity.Deps{Store: store, Audit: al, Now: now, Hasher: auth.NewHasher(p, 2),
		TOTP:     mfa.NewTOTP(store, kr, "Airlock", now),
		Recovery: mfa.NewRecovery(store, now)}, identity.Config{BootstrapTokenFile: e.BootstrapFile})
	if e.Access, err = access.New(ctx, access.Deps{Store: store, Audit: al, Sealer: kr, Identity: e.Identity, Now: now}); err != nil {
		t.Fatal(err)
	}
	return e
}

// Verify checks the stored audit chain and checkpoints (api.AuditDeps.Verify).
func (e *Env) Verify(ctx context.Context) (any, error) {
	return audit.Verify(ctx, e.Store, e.PublicKey)
}

// BootstrapToken makes sure the one-time bootstrap token exists and
// returns it.
func (e *Env) BootstrapToken(t testing.TB) string {
	t.Helper()
	if _, err := e.Identity.EnsureBootstrapToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(e.BootstrapFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}
