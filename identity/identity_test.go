package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/mfa"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newService builds a Service on a real SQLite store and audit log.
func newService(tb testing.TB, clk *clock) (*Service, airlock.Store) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "airlock.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: clk.now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { al.Close(context.Background()) })
	return newReplica(tb, clk, store, al), store
}

// testKeyring is shared by the replicas of a test, like the server's keyring.
var testKeyring = func() *secrets.Keyring {
	mk, _ := secrets.GenerateKey()
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": mk})
	if err != nil {
		panic(err)
	}
	return kr
}()

// newReplica builds a Service on store and al: several of them on one
// store are replicas behind a load balancer (they share nothing else).
func newReplica(tb testing.TB, clk *clock, store airlock.Store, al airlock.Auditor) *Service {
	tb.Helper()
	p := auth.DefaultParams()
	p.Memory, p.Iterations = 1024, 1 // tests need the code path, not the cost
	return New(Deps{Store: store, Audit: al, Now: clk.now,
		Hasher: auth.NewHasher(p, 2),
		TOTP:   mfa.NewTOTP(store, testKeyring, "Airlock", clk.now), Recovery: mfa.NewRecovery(store, clk.now)},
		Config{BootstrapTokenFile: filepath.Join(tb.TempDir(), "bootstrap.token")})
}

func TestSessionTimeouts(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, _ := newService(t, clk)
	ctx := context.Background()
	if _, err := svc.EnsureBootstrapToken(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := svc.createUser(ctx, airlock.SystemActor, "alice", "correct horse battery", nil, "", "user.created")
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if err != nil || res.Token == "" {
		t.Fatalf("login: %v", err)
	}
	for _, tc := range []struct {
		name    string
		advance time.Duration
		ok      bool
	}{
		{"ok/fresh", 0, true},
		{"ok/59m-idle", 59 * time.Minute, true},
		{"fail/61m-idle", 61 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.add(tc.advance)
			_, err := svc.Authenticate(ctx, res.Token, "")
			if (err == nil) != tc.ok {
				t.Fatalf("Authenticate after %v: err=%v, want ok=%v", tc.advance, err, tc.ok)
			}
			if err != nil && airlock.ErrorCode(err) != airlock.EUNAUTHORIZED {
				t.Fatalf("code = %s", airlock.ErrorCode(err))
			}
		})
	}
	// Absolute lifetime: keep the session busy, it still ends at 12 h.
	res, _ = svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	for i := 0; i < 12; i++ {
		clk.add(59 * time.Minute)
		if _, err := svc.Authenticate(ctx, res.Token, ""); err != nil {
			t.Fatalf("busy session ended early at step %d: %v", i, err)
		}
	}
	clk.add(20 * time.Minute)
	if _, err := svc.Authenticate(ctx, res.Token, ""); err == nil {
		t.Fatal("session outlived its absolute lifetime")
	}
	// Disabling a user ends their sessions at once (even cached ones).
	res, _ = svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if _, err := svc.Authenticate(ctx, res.Token, ""); err != nil {
		t.Fatal(err)
	}
	var hooked string
	svc.OnDisable(func(_ context.Context, userID, _ string) { hooked = userID })
	admin := &Principal{User: &airlock.User{ID: "usr_admin", Name: "admin", Groups: []string{airlock.GroupAdmins}},
		Session: &airlock.LoginSession{MFAAt: clk.now(), MFAMethod: MethodTOTP}}
	if err := svc.SetDisabled(ctx, admin, "alice", true); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, res.Token, ""); err == nil {
		t.Fatal("disabled user's session still valid")
	}
	if hooked != u.ID {
		t.Fatalf("disable hook got %q, want %q", hooked, u.ID)
	}
}

func TestFreshness(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, _ := newService(t, clk)
	p := &Principal{User: &airlock.User{ID: "u", Name: "u"}, Session: &airlock.LoginSession{MFAAt: clk.now(), MFAMethod: MethodTOTP}}
	for _, tc := range []struct {
		name    string
		age     time.Duration
		methods []string
		code    string
	}{
		{"ok/fresh", time.Minute, nil, ""},
		{"fail/stale", 6 * time.Minute, nil, airlock.EMFAREQUIRED},
		{"fail/not-phishing-resistant", time.Minute, PhishingResistant, airlock.EMFAREQUIRED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Session.MFAAt = clk.now().Add(-tc.age)
			err := svc.RequireFreshWithin(p, ActionApprove, 0, tc.methods)
			if airlock.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want code %q", err, tc.code)
			}
		})
	}
	p.Session.MFAAt = time.Time{}
	if err := svc.RequireFresh(p, ActionConnect); airlock.ErrorCode(err) != airlock.EFORBIDDEN {
		t.Fatalf("unenrolled: %v", err)
	}
}

// BenchmarkAuthenticate measures the login-session check that runs on every
// API call and gateway connection.
func BenchmarkAuthenticate(b *testing.B) {
	clk := &clock{t: time.Now()}
	svc, _ := newService(b, clk)
	ctx := context.Background()
	svc.createUser(ctx, airlock.SystemActor, "alice", "correct horse battery", nil, "", "user.created")
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Authenticate(ctx, res.Token, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}

// downAuditor is an audit log that cannot be written.
type downAuditor struct{}

func (downAuditor) Record(context.Context, airlock.Event) (int64, error) {
	return 0, errors.New("disk full")
}

// TestAuditDownRefusesLogin pins invariant 7: a login whose audit event
// cannot be written is refused and creates no session.
func TestAuditDownRefusesLogin(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	if _, err := svc.createUser(ctx, airlock.SystemActor, "alice", "correct horse battery", nil, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	svc.audit = downAuditor{}
	res, err := svc.Login(ctx, "alice", "correct horse battery", FactorInput{}, "127.0.0.1:1")
	if airlock.ErrorCode(err) != airlock.EUNAVAILABLE || res != nil {
		t.Fatalf("login with the audit log down: res=%v err=%v", res, err)
	}
	if _, err := svc.createUser(ctx, airlock.SystemActor, "bob", "correct horse battery", nil, "", "user.created"); airlock.ErrorCode(err) != airlock.EUNAVAILABLE {
		t.Fatalf("create user with the audit log down: %v", err)
	}
	if _, err := store.UserByName(ctx, "bob"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("user stored although its audit event was refused: %v", err)
	}
}
