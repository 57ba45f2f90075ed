package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"

	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/mfa"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/sqlite"
)

// testIdP is the real OpenID provider shared with cmd/airlock's tests.
type testIdP = testenv.OIDCProvider

func startIdP(t *testing.T, redirectURL string) *testIdP { return testenv.StartOIDC(t, redirectURL) }

type memAudit struct {
	mu     sync.Mutex
	events []airlock.Event
}

func (a *memAudit) Record(_ context.Context, e airlock.Event) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return int64(len(a.events)), nil
}

func (a *memAudit) find(action, outcome string) []airlock.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []airlock.Event
	for _, e := range a.events {
		if e.Action == action && (outcome == "" || e.Outcome == outcome) {
			out = append(out, e)
		}
	}
	return out
}

type oidcEnv struct {
	svc   *Service
	idp   *testIdP
	store *sqlite.DB
	audit *memAudit
	clock *testClock
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testRedirect = "http://airlock.test/api/v1/oidc/callback"

func newOIDCEnv(t *testing.T, cfg OIDCConfig) *oidcEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &testClock{t: time.Now()}
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	al := &memAudit{}
	svc := New(Deps{Store: db, Audit: al, Now: clk.Now, Hasher: auth.NewHasher(auth.DefaultParams(), 1),
		TOTP:     mfa.NewTOTP(db, kr, "Airlock", clk.Now),
		Recovery: mfa.NewRecovery(db, clk.Now)}, Config{})
	idp := startIdP(t, testRedirect)
	cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.RedirectURL = idp.URL, idp.ClientID, idp.Secret, testRedirect
	o, err := NewOIDC(ctx, cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetOIDC(o)
	return &oidcEnv{svc: svc, idp: idp, store: db, audit: al, clock: clk}
}

// browse follows the IdP's redirects like a browser until it is sent back
// to Airlock, and returns that callback's state and code.
func browse(t *testing.T, authURL string) (state, code string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "airlock.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("IdP did not redirect back (%d): %s", resp.StatusCode, b)
	}
	if !strings.HasPrefix(loc.String(), testRedirect) {
		t.Fatalf("redirected to %s", loc)
	}
	return loc.Query().Get("state"), loc.Query().Get("code")
}

// ssoLogin runs one browser SSO login as login and finishes it.
func (e *oidcEnv) ssoLogin(t *testing.T, login string, amr []string, acr, tamper string) (*OIDCResult, string, string, error) {
	t.Helper()
	e.idp.Set(login, amr, acr, tamper)
	u, err := e.svc.BeginOIDC(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	state, code := browse(t, u)
	res, err := e.svc.FinishOIDC(context.Background(), state, code, "192.0.2.1:1234")
	return res, state, code, err
}

// enrollTOTP gives the user behind an enrollment-only login a TOTP factor
// and returns its secret.
func (e *oidcEnv) enrollTOTP(t *testing.T, res *LoginResult) string {
	t.Helper()
	ctx := context.Background()
	p, err := e.svc.Authenticate(ctx, res.Token, "192.0.2.1:1234")
	if err != nil {
		t.Fatal(err)
	}
	f, uri, _, err := e.svc.EnrollTOTP(ctx, p, "phone")
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	secret := pu.Query().Get("secret")
	code, _ := totp.GenerateCode(secret, e.clock.Now())
	if err := e.svc.ConfirmTOTP(ctx, p, f.ID, code); err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestOIDCLoginThenTOTPRequired(t *testing.T) {
	e := newOIDCEnv(t, OIDCConfig{})
	e.idp.Groups["sub-alice"] = []string{"SRE", "db-readers", "admins", "bad group!"}
	ctx := context.Background()

	// First login creates the user (name from preferred_username, which
	// this IdP returns from userinfo only) with mapped groups; no factor
	// yet, so the session is enrollment-only.
	res, _, _, err := e.ssoLogin(t, "alice", []string{"pwd"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	first := res.Login
	if first.Token == "" || first.User.Name != "alice" || !first.Session.MFAAt.IsZero() {
		t.Fatalf("first login: %+v", first)
	}
	if want := []string{"db-readers", "sre"}; !slices.Equal(first.User.Groups, want) {
		t.Fatalf("groups %v, want %v (admins never from the IdP)", first.User.Groups, want)
	}
	u, err := e.store.UserBySSOSubject(ctx, e.idp.URL+"|sub-alice")
	if err != nil || u.ID != first.User.ID || u.PasswordHash != "" {
		t.Fatalf("stored user %+v, %v", u, err)
	}
	secret := e.enrollTOTP(t, first)

	// Groups are synced on the next login; the IdP password alone is not
	// enough: a challenge for Airlock's own factor comes back.
	e.idp.Groups["sub-alice"] = []string{"db-readers"}
	e.clock.Advance(31 * time.Second)
	res, _, _, err = e.ssoLogin(t, "alice", []string{"pwd", "mfa"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Login.Token != "" || res.Login.Challenge == "" || !slices.Contains(res.Login.Methods, MethodTOTP) {
		t.Fatalf("want a TOTP challenge, got %+v", res.Login)
	}
	u, _ = e.store.UserByID(ctx, first.User.ID)
	if !slices.Equal(u.Groups, []string{"db-readers"}) {
		t.Fatalf("groups not synced: %v", u.Groups)
	}
	if _, err := e.svc.LoginFactor(ctx, res.Login.Challenge, FactorInput{OTP: "000000"}, "192.0.2.1:1234"); err == nil {
		t.Fatal("wrong TOTP accepted")
	}
	code, _ := totp.GenerateCode(secret, e.clock.Now())
	done, err := e.svc.LoginFactor(ctx, res.Login.Challenge, FactorInput{OTP: code}, "192.0.2.1:1234")
	if err != nil {
		t.Fatal(err)
	}
	if done.Token == "" || done.Session.MFAMethod != MethodTOTP {
		t.Fatalf("after TOTP: %+v", done.Session)
	}
	if n := len(e.audit.find("login.sso", airlock.OutcomeSuccess)); n != 2 {
		t.Fatalf("%d login.sso successes audited, want 2", n)
	}
}

func TestOIDCAcceptedAMRSkipsTOTP(t *testing.T) {
	e := newOIDCEnv(t, OIDCConfig{AcceptAMR: []string{"hwk"}, AdminGroup: "airlock-admins"})
	e.idp.Groups["sub-alice"] = []string{"airlock-admins", "sre"}
	res, _, _, err := e.ssoLogin(t, "alice", []string{"pwd"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Login.User.Groups, []string{"admins", "sre"}) {
		t.Fatalf("configured admin group not mapped: %v", res.Login.User.Groups)
	}
	e.enrollTOTP(t, res.Login)

	// amr "mfa" is not in the accepted list: challenge.
	res, _, _, err = e.ssoLogin(t, "alice", []string{"pwd", "mfa"}, "", "")
	if err != nil || res.Login.Challenge == "" {
		t.Fatalf("unaccepted amr: %+v, %v", res, err)
	}
	// amr "hwk" is accepted: session with fresh MFA, method sso:hwk.
	res, _, _, err = e.ssoLogin(t, "alice", []string{"pwd", "hwk"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Login.Token == "" || res.Login.Session.MFAMethod != "sso:hwk" || res.Login.Session.MFAAt.IsZero() {
		t.Fatalf("accepted amr: %+v", res.Login)
	}
	// acr counts too when listed.
	res, _, _, err = e.ssoLogin(t, "alice", nil, "hwk", "")
	if err != nil || res.Login.Session == nil || res.Login.Session.MFAMethod != "sso:hwk" {
		t.Fatalf("accepted acr: %+v, %v", res, err)
	}
}

func TestOIDCRefusals(t *testing.T) {
	e := newOIDCEnv(t, OIDCConfig{AcceptAMR: []string{"hwk"}})
	ctx := context.Background()
	for _, mode := range []string{"aud", "badsig"} {
		_, _, _, err := e.ssoLogin(t, "alice", []string{"hwk"}, "", mode)
		if !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("%s: got %v, want EUNAUTHORIZED", mode, err)
		}
	}
	if _, err := e.store.UserBySSOSubject(ctx, e.idp.URL+"|sub-alice"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("a refused token created a user: %v", err)
	}

	// A good login works once; replaying its state (and code) is refused.
	res, state, code, err := e.ssoLogin(t, "alice", []string{"hwk"}, "", "")
	if err != nil || res.Login.Token == "" {
		t.Fatalf("good login: %+v, %v", res, err)
	}
	if _, err := e.svc.FinishOIDC(ctx, state, code, "192.0.2.1:1234"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("replayed state: %v", err)
	}
	// An unknown state is refused before any exchange.
	if _, err := e.svc.FinishOIDC(ctx, "st_forged", code, "192.0.2.1:1234"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("forged state: %v", err)
	}
	// A state older than its TTL is refused.
	e.idp.Set("alice", []string{"hwk"}, "", "")
	u, _ := e.svc.BeginOIDC(ctx, "")
	state, code = browse(t, u)
	e.clock.Advance(OIDCStateTTL + time.Second)
	if _, err := e.svc.FinishOIDC(ctx, state, code, "192.0.2.1:1234"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("expired state: %v", err)
	}
	e.clock.Advance(-OIDCStateTTL - time.Second)

	// A disabled user is refused even with a valid IdP login.
	usr, _ := e.store.UserBySSOSubject(ctx, e.idp.URL+"|sub-alice")
	usr.Disabled = true
	if err := e.store.UpdateUser(ctx, usr); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.ssoLogin(t, "alice", []string{"hwk"}, "", ""); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("disabled user: %v", err)
	}
	fails := e.audit.find("login.sso", airlock.OutcomeFailure)
	var reasons []string
	for _, f := range fails {
		var d map[string]any
		json.Unmarshal(f.Details, &d)
		reasons = append(reasons, d["reason"].(string))
	}
	joined := strings.Join(reasons, "\n")
	for _, want := range []string{"audience", "signature", "replayed state", "user disabled"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no audited failure mentioning %q in:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, e.idp.Secret) {
		t.Error("client secret in the audit log")
	}
}

func TestOIDCNameConflictAndEmailFallback(t *testing.T) {
	e := newOIDCEnv(t, OIDCConfig{})
	ctx := context.Background()
	// "Bob Smith" is not a valid name: the email's local part is used.
	res, _, _, err := e.ssoLogin(t, "Bob Smith", nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Login.User.Name != "bob.smith" {
		t.Fatalf("name %q, want bob.smith", res.Login.User.Name)
	}
	// A local account named alice is never taken over by the IdP's alice.
	now := time.Now()
	if err := e.store.CreateUser(ctx, &airlock.User{ID: airlock.NewID("usr"), Name: "alice", Groups: []string{"admins"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.ssoLogin(t, "alice", nil, "", ""); !airlock.IsCode(err, airlock.ECONFLICT) {
		t.Fatalf("name clash: %v", err)
	}
}

func TestOIDCPoll(t *testing.T) {
	e := newOIDCEnv(t, OIDCConfig{})
	ctx := context.Background()
	poll, _ := auth.NewToken("poll")
	if _, err := e.svc.PollOIDC(ctx, poll, "192.0.2.1:1"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("poll before login: %v", err)
	}
	e.idp.Set("alice", nil, "", "")
	u, err := e.svc.BeginOIDC(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	state, code := browse(t, u)
	res, err := e.svc.FinishOIDC(ctx, state, code, "192.0.2.1:1234")
	if err != nil || !res.Pending || res.Login != nil {
		t.Fatalf("callback with poll: %+v, %v", res, err)
	}
	if _, err := e.svc.PollOIDC(ctx, "poll_wrong-token-of-enough-length", "192.0.2.1:1"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("wrong poll token: %v", err)
	}
	lr, err := e.svc.PollOIDC(ctx, poll, "192.0.2.1:1")
	if err != nil || lr.Token == "" || lr.User.Name != "alice" {
		t.Fatalf("poll: %+v, %v", lr, err)
	}
	if _, err := e.svc.PollOIDC(ctx, poll, "192.0.2.1:1"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("second poll: %v", err)
	}
}

func TestOIDCMapGroups(t *testing.T) {
	o := &OIDC{cfg: OIDCConfig{GroupsClaim: "groups"}}
	got := o.mapGroups(map[string]any{"groups": []any{"Admins", "x", 3, "x", "a b"}}, []string{"admins"})
	if !slices.Equal(got, []string{"admins", "x"}) {
		t.Fatalf("locally granted admins must survive when no admin group is configured: %v", got)
	}
	o.cfg.AdminGroup = "ops"
	if got := o.mapGroups(map[string]any{"groups": []any{"x"}}, []string{"admins"}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("with an admin group the IdP decides: %v", got)
	}
}
