package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/evidence"
	"github.com/airlockhq/airlock/internal/svctest"
)

// apiEnv is the real Server, over real services on a real SQLite store,
// behind an httptest server, mounted as cmd/airlock mounts it.
type apiEnv struct {
	t      *testing.T
	srv    *Server
	url    string
	store  airlock.Store
	now    func() time.Time
	admin  *Client // logged in, TOTP enrolled, MFA fresh
	record string  // the recording Recordings serves
}

const (
	envAdminPassword = "admin password 1"
	envRecording     = "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"$ uptime\\r\\n\"]\n"
)

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
	sv := svctest.New(t, now)
	env := &apiEnv{t: t, store: sv.Store, now: now, record: envRecording}
	env.srv = &Server{Identity: sv.Identity, Access: sv.Access, Now: now, Gateways: GatewayInfo{PGAddr: "127.0.0.1:6432"},
		Audit: &AuditDeps{Store: sv.Store, Log: sv.Audit, PublicKey: []byte("PEM"), Verify: sv.Verify,
			Export: func(ctx context.Context, w io.Writer, f airlock.EventFilter) error {
				return audit.Export(ctx, sv.Store, w, f)
			},
			Evidence: func(ctx context.Context, grantID string) (EvidencePack, error) {
				return evidence.Prepare(ctx, evidence.Source{Store: sv.Store, PublicKey: audit.MarshalPublicKey(sv.PublicKey), Signer: sv.AuditKey, Now: now}, grantID)
			}},
		Recordings: func(ctx context.Context, key string) (io.ReadCloser, error) {
			if strings.HasPrefix(key, "ss_k-") { // a part of a Kubernetes session
				return io.NopCloser(strings.NewReader("cast of " + key)), nil
			}
			return io.NopCloser(strings.NewReader(env.record)), nil
		}}
	mux := http.NewServeMux()
	mux.Handle("/api/", env.srv.Handler())
	push := env.srv.PushHandler("http://console.test", nil)
	mux.Handle(PrefixWebLogin, push)
	mux.Handle(PrefixPush, push)
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.RegisterOnShutdown(env.srv.CloseStreams)
	hs.Start()
	t.Cleanup(hs.Close)
	env.url = hs.URL

	u, err := env.client("").Bootstrap(ctx, BootstrapRequest{Token: sv.BootstrapToken(t), User: "admin", Password: envAdminPassword})
	if err != nil || u.Name != "admin" || !u.IsAdmin() {
		t.Fatalf("bootstrap: %+v, %v", u, err)
	}
	env.admin = env.enroll("admin", envAdminPassword)
	return env
}

func (e *apiEnv) client(token string) *Client { return NewClient(e.url, token) }

// enroll logs user in (an enrollment-only session), enrolls and confirms
// a TOTP factor and returns the client of that session.
func (e *apiEnv) enroll(user, password string) *Client {
	e.t.Helper()
	ctx := context.Background()
	res, err := e.client("").Login(ctx, LoginRequest{User: user, Password: password})
	if err != nil || res.Token == "" || !res.NeedsEnrollment || res.User.Name != user {
		e.t.Fatalf("first login of %s: %+v, %v", user, res, err)
	}
	c := e.client(res.Token)
	en, err := c.EnrollTOTP(ctx, TOTPEnrollRequest{Name: "phone"})
	if err != nil {
		e.t.Fatalf("enroll TOTP: %v", err)
	}
	uri, err := url.Parse(en.URI)
	if err != nil {
		e.t.Fatal(err)
	}
	code, _ := totp.GenerateCode(uri.Query().Get("secret"), e.now())
	if err := c.ConfirmFactor(ctx, en.Factor.ID, OTPRequest{OTP: code}); err != nil {
		e.t.Fatalf("confirm TOTP: %v", err)
	}
	w, err := c.WhoAmI(ctx)
	if err != nil || !w.Enrolled || w.User.Name != user {
		e.t.Fatalf("whoami after enrolling: %+v, %v", w, err)
	}
	return c
}

// wantCode fails unless err is an *airlock.Error with code.
func wantCode(t *testing.T, what string, err error, code string) *airlock.Error {
	t.Helper()
	var ae *airlock.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s: error %v (%T), want *airlock.Error with code %s", what, err, err, code)
	}
	return ae
}

const flowPolicy = `version: 1
rules:
  - name: devs-read
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [admins]}
`

// TestClientLoginFlow: bootstrap, password login, second-factor login
// through the mfa_required challenge, logout.
func TestClientLoginFlow(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	// With a factor enrolled, a password alone is answered with the
	// challenge for the second step.
	_, err := env.client("").Login(ctx, LoginRequest{User: "admin", Password: envAdminPassword})
	ae := wantCode(t, "login without a factor", err, airlock.EMFAREQUIRED)
	challenge, _ := ae.Details["challenge"].(string)
	if challenge == "" || ae.Details["action"] != "login" {
		t.Fatalf("mfa_required details: %+v", ae.Details)
	}
	// A wrong code is refused; the challenge holds for a right one.
	_, err = env.client("").LoginFactor(ctx, LoginFactorRequest{Challenge: challenge, FactorInput: FactorInput{OTP: "000000"}})
	wantCode(t, "wrong second factor", err, airlock.EUNAUTHORIZED)
	codes, err := env.admin.RecoveryCodes(ctx, OTPRequest{})
	if err != nil || len(codes.Codes) == 0 {
		t.Fatalf("recovery codes: %+v, %v", codes, err)
	}
	res, err := env.client("").LoginFactor(ctx, LoginFactorRequest{Challenge: challenge, FactorInput: FactorInput{OTP: codes.Codes[0]}})
	if err != nil || res.Token == "" || res.User.Name != "admin" || res.NeedsEnrollment {
		t.Fatalf("second factor login: %+v, %v", res, err)
	}
	c := env.client(res.Token)
	if w, err := c.WhoAmI(ctx); err != nil || w.User.Name != "admin" || !w.Enrolled {
		t.Fatalf("whoami: %+v, %v", w, err)
	}
	if fs, err := c.Factors(ctx); err != nil || len(fs) < 2 {
		t.Fatalf("factors: %+v, %v", fs, err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.WhoAmI(ctx)
	wantCode(t, "whoami after logout", err, airlock.EUNAUTHORIZED)

	// Browser login for the CLI: started, pending until approved.
	st, err := env.client("").WebLoginStart(ctx)
	if err != nil || st.PollToken == "" || !strings.HasPrefix(st.URL, "http://console.test/device?code=") {
		t.Fatalf("web login start: %+v, %v", st, err)
	}
	if res, err := env.client("").WebLoginPoll(ctx, WebLoginPoll{PollToken: st.PollToken}); err != nil || res != nil {
		t.Fatalf("web login poll while pending: %+v, %v", res, err)
	}
	if got, want := env.client("").OIDCStartURL("p q"), env.url+RouteOIDCStart+"?cli=p+q"; got != want {
		t.Fatalf("OIDCStartURL = %q, want %q", got, want)
	}
}

// TestClientAccessFlow: policy and resource by the admin, request by a
// developer, review, grant, connect token, revoke; then the audit trail
// of it all.
func TestClientAccessFlow(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	admin := env.admin
	if res, err := admin.ApplyPolicy(ctx, PolicyFiles{Files: map[string]string{"team.yaml": flowPolicy}}); err != nil || res.Version != 1 {
		t.Fatalf("apply policy: %+v, %v", res, err)
	}
	if pi, err := admin.Policy(ctx); err != nil || pi.Version != 1 {
		t.Fatalf("policy: %+v, %v", pi, err)
	}
	rv, err := admin.AddResource(ctx, ResourceInput{Name: "prod-db", Kind: airlock.KindPostgres, Addr: "127.0.0.1:5432",
		Credentials: map[string]CredentialInput{"read": {User: "app_ro", Password: "s3cret"}}})
	if err != nil || rv.Name != "prod-db" {
		t.Fatalf("add resource: %+v, %v", rv, err)
	}
	if rs, err := admin.AdminResources(ctx); err != nil || len(rs) != 1 || rs[0].Name != "prod-db" {
		t.Fatalf("admin resources: %+v, %v", rs, err)
	}
	if u, err := admin.CreateUser(ctx, CreateUserRequest{Name: "alice", Password: "alice password 1", Groups: []string{"devs"}}); err != nil || u.Name != "alice" {
		t.Fatalf("create user: %+v, %v", u, err)
	}
	if us, err := admin.Users(ctx); err != nil || len(us) != 2 {
		t.Fatalf("users: %+v, %v", us, err)
	}
	if gs, err := admin.Groups(ctx); err != nil || len(gs["devs"]) != 1 {
		t.Fatalf("groups: %+v, %v", gs, err)
	}
	alice := env.enroll("alice", "alice password 1")

	ents, err := alice.Resources(ctx)
	if err != nil || len(ents.Entitlements) != 1 || ents.Entitlements[0].Resource != "prod-db" {
		t.Fatalf("requestable: %+v, %v", ents, err)
	}
	_, err = alice.MintConnectToken(ctx, ConnectRequest{Resource: "prod-db", Access: "read"})
	wantCode(t, "connect token without a grant", err, airlock.EFORBIDDEN)
	req, err := alice.CreateRequest(ctx, RequestInput{Resource: "prod-db", Access: "read", Duration: time.Hour, Reason: "debug INC-1"})
	if err != nil || req.Grant != nil || req.Request.State != airlock.RequestPending {
		t.Fatalf("request: %+v, %v", req, err)
	}
	id := req.Request.ID
	if mine, err := alice.Requests(ctx, RequestsFilter{Mine: true}); err != nil || len(mine) != 1 || mine[0].ID != id {
		t.Fatalf("my requests: %+v, %v", mine, err)
	}
	if tr, err := admin.Requests(ctx, RequestsFilter{ToReview: true}); err != nil || len(tr) != 1 || tr[0].ID != id {
		t.Fatalf("requests to review: %+v, %v", tr, err)
	}
	_, err = alice.Review(ctx, id, airlock.DecisionApprove, ReviewInput{})
	wantCode(t, "self-approval", err, airlock.EFORBIDDEN)
	rev, err := admin.Review(ctx, id, airlock.DecisionApprove, ReviewInput{Comment: "ok"})
	if err != nil || rev.Grant == nil || rev.Request.State != airlock.RequestApproved {
		t.Fatalf("approve: %+v, %v", rev, err)
	}
	if v, err := alice.Request(ctx, id); err != nil || v.State != airlock.RequestApproved || v.GrantID != rev.Grant.ID {
		t.Fatalf("request after approval: %+v, %v", v, err)
	}
	gs, err := alice.Grants(ctx, false)
	if err != nil || len(gs) != 1 || gs[0].ID != rev.Grant.ID || gs[0].State != airlock.GrantActive {
		t.Fatalf("grants: %+v, %v", gs, err)
	}
	ct, err := alice.MintConnectToken(ctx, ConnectRequest{Resource: "prod-db", Access: "read"})
	if err != nil || ct.Token == "" || ct.GrantID != rev.Grant.ID || ct.User != "alice" {
		t.Fatalf("connect token: %+v, %v", ct, err)
	}
	if info, err := alice.Info(ctx); err != nil || info.PGAddr != "127.0.0.1:6432" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	_, err = alice.SSHCert(ctx, ConnectRequest{Resource: "prod-db", Access: "read"})
	wantCode(t, "ssh certificate with the SSH gateway off", err, airlock.EINVALID)

	g, err := admin.RevokeGrant(ctx, rev.Grant.ID, RevokeRequest{Reason: "done"})
	if err != nil || g.State != airlock.GrantRevoked {
		t.Fatalf("revoke: %+v, %v", g, err)
	}
	_, err = alice.MintConnectToken(ctx, ConnectRequest{Resource: "prod-db", Access: "read"})
	wantCode(t, "connect token after revocation", err, airlock.EFORBIDDEN)
	if all, err := admin.Grants(ctx, true); err != nil || len(all) != 1 {
		t.Fatalf("all grants: %+v, %v", all, err)
	}

	// Sessions and their recordings.
	t0 := env.now()
	if err := env.store.CreateSession(ctx, &airlock.Session{ID: "ss_1", GrantID: rev.Grant.ID, UserID: rev.Grant.UserID, UserName: "alice",
		Resource: "prod-db", Kind: airlock.KindSSH, Access: "read", StartedAt: t0, Recording: "rec/ss_1", RecordingSHA256: "abc"}); err != nil {
		t.Fatal(err)
	}
	if ss, err := admin.Sessions(ctx, false); err != nil || len(ss) != 1 || ss[0].ID != "ss_1" {
		t.Fatalf("sessions: %+v, %v", ss, err)
	}
	if s, err := admin.Session(ctx, "ss_1"); err != nil || s.UserName != "alice" {
		t.Fatalf("session: %+v, %v", s, err)
	}
	rec, err := admin.Recording(ctx, "ss_1", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rec.Body)
	rec.Body.Close()
	if string(b) != envRecording || rec.SHA256 != "abc" {
		t.Fatalf("recording: %q sha %q", b, rec.SHA256)
	}

	// A Kubernetes session has one recording per exec -it: each by its
	// part; without one, the server asks which.
	if err := env.store.CreateSession(ctx, &airlock.Session{ID: "ss_k", GrantID: rev.Grant.ID, UserID: rev.Grant.UserID, UserName: "alice",
		Resource: "prod-db", Kind: airlock.KindKubernetes, Access: "read", StartedAt: t0,
		Recordings: []airlock.SessionRecording{{ID: "ss_k-1", SHA256: "s1"}, {ID: "ss_k-2", SHA256: "s2"}}}); err != nil {
		t.Fatal(err)
	}
	for part, want := range map[int]string{1: "s1", 2: "s2"} {
		rec, err := admin.Recording(ctx, "ss_k", part)
		if err != nil {
			t.Fatalf("part %d: %v", part, err)
		}
		b, _ := io.ReadAll(rec.Body)
		rec.Body.Close()
		if string(b) != fmt.Sprintf("cast of ss_k-%d", part) || rec.SHA256 != want {
			t.Fatalf("part %d: %q sha %q", part, b, rec.SHA256)
		}
	}
	_, err = admin.Recording(ctx, "ss_k", 0)
	wantCode(t, "recording of a session with two, no part", err, airlock.EINVALID)
	_, err = admin.Recording(ctx, "ss_k", 3)
	wantCode(t, "recording part 3 of 2", err, airlock.ENOTFOUND)
	if resp, err := admin.Raw(ctx, "GET", "/api/v1/sessions/ss_k/recording?part=-1", nil); err == nil {
		resp.Body.Close()
		t.Fatal("part=-1 accepted")
	} else {
		wantCode(t, "part=-1", err, airlock.EINVALID)
	}

	// The audit trail: read, exported, verified; reading needs admins or auditors.
	evs, err := admin.AuditEvents(ctx, AuditQuery{Action: "grant.*"})
	if err != nil || len(evs) < 2 {
		t.Fatalf("grant events: %+v, %v", evs, err)
	}
	for _, e := range evs {
		if !strings.HasPrefix(e.Action, "grant.") {
			t.Fatalf("filter grant.* returned %s", e.Action)
		}
	}
	if latest, err := admin.AuditEvents(ctx, AuditQuery{Desc: true, Limit: 1}); err != nil || len(latest) != 1 || latest[0].Action != "audit.read" {
		t.Fatalf("latest event: %+v, %v", latest, err)
	}
	_, err = alice.AuditEvents(ctx, AuditQuery{})
	wantCode(t, "audit read by a developer", err, airlock.EFORBIDDEN)
	// Proofs are audit reads too: auditors only, and audited first.
	_, err = alice.AuditProve(ctx, 1)
	wantCode(t, "proof for a developer", err, airlock.EFORBIDDEN)
	_, err = alice.AuditConsistency(ctx, 1, 2)
	wantCode(t, "consistency proof for a developer", err, airlock.EFORBIDDEN)
	if _, err = admin.AuditProve(ctx, 0); airlock.ErrorCode(err) != airlock.EINVALID {
		t.Fatalf("proof of seq 0: %v", err)
	}
	if latest, err := admin.AuditEvents(ctx, AuditQuery{Desc: true, Limit: 2}); err != nil || len(latest) != 2 || latest[1].Action != "audit.read" {
		t.Fatalf("a refused proof request was audited: %+v, %v", latest, err)
	}
	exp, err := admin.AuditExport(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := io.ReadAll(exp)
	exp.Close()
	if !strings.Contains(string(lines), `"grant.`) {
		t.Fatalf("export has no grant events:\n%s", lines)
	}
	rep, err := admin.AuditVerify(ctx)
	if err != nil || !rep.OK || rep.Events == 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if pk, err := env.client("").AuditPublicKey(ctx); err != nil || string(pk) != "PEM" {
		t.Fatalf("public key: %q, %v", pk, err)
	}

	// Admin housekeeping.
	if err := admin.SetUserDisabled(ctx, "alice", true, OTPRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.WhoAmI(ctx)
	wantCode(t, "whoami of a disabled user", err, airlock.EUNAUTHORIZED)
	if err := admin.SetUserDisabled(ctx, "alice", false, OTPRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.RemoveResource(ctx, "prod-db"); err != nil {
		t.Fatal(err)
	}
	err = admin.RemoveResource(ctx, "prod-db")
	wantCode(t, "remove a removed resource", err, airlock.ENOTFOUND)
}

// TestClientAuditFollow: a following read streams the events written
// after it starts and ends when the server closes its streams.
func TestClientAuditFollow(t *testing.T) {
	env := newAPIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := env.admin.AuditEvents(ctx, AuditQuery{Desc: true, Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("latest: %+v, %v", evs, err)
	}
	stream, err := env.admin.AuditFollow(ctx, AuditQuery{After: evs[0].Seq, Action: "user.*"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := env.admin.CreateUser(ctx, CreateUserRequest{Name: "bob", Password: "bob password 11"}); err != nil {
		t.Fatal(err)
	}
	e, err := stream.Next()
	if err != nil || !strings.HasPrefix(e.Action, "user.") || e.Seq <= evs[0].Seq {
		t.Fatalf("streamed event: %+v, %v", e, err)
	}
	env.srv.CloseStreams()
	if _, err := stream.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseStreams: %v, want io.EOF", err)
	}
}

// TestClientErrorMapping: every code of the one table travels as its
// status and comes back to the client as the same *airlock.Error; a
// throttled refusal also says when to retry; an answer that is not the
// API's error body still gets the code of its status.
func TestClientErrorMapping(t *testing.T) {
	ctx := context.Background()
	for code, status := range statusOf {
		t.Run(code, func(t *testing.T) {
			s := &Server{Logger: slog.New(slog.DiscardHandler)}
			want := &airlock.Error{Code: code, Message: "the message", Details: map[string]any{"k": "v"}}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, want) }))
			defer hs.Close()
			resp, err := http.Get(hs.URL + RouteInfo)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Fatalf("status %d, want %d", resp.StatusCode, status)
			}
			_, err = NewClient(hs.URL, "").Info(ctx)
			var ae *airlock.Error
			if !errors.As(err, &ae) || ae.Code != code || ae.Message != want.Message || !reflect.DeepEqual(ae.Details, want.Details) {
				t.Fatalf("client error %#v, want %#v", err, want)
			}
		})
	}

	// Not the API's error body: the code comes from the status.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusServiceUnavailable)
	}))
	defer plain.Close()
	_, err := NewClient(plain.URL, "").WhoAmI(ctx)
	if ae := wantCode(t, "plain 503", err, airlock.EUNAVAILABLE); !strings.Contains(ae.Message, "503") {
		t.Fatalf("message %q does not name the status", ae.Message)
	}
	// No server at all.
	plain.Close()
	_, err = NewClient(plain.URL, "").WhoAmI(ctx)
	if ae := wantCode(t, "no server", err, airlock.EUNAVAILABLE); !strings.Contains(ae.Message, "cannot reach the Airlock server") {
		t.Fatalf("message %q", ae.Message)
	}

	// The real server: unauthenticated, unknown, invalid, too large,
	// throttled.
	env := newAPIEnv(t)
	_, err = env.client("").WhoAmI(ctx)
	wantCode(t, "no session", err, airlock.EUNAUTHORIZED)
	_, err = env.admin.Request(ctx, "req_nope")
	wantCode(t, "unknown request", err, airlock.ENOTFOUND)
	err = env.admin.Do(ctx, "POST", RouteRequests, json.RawMessage(`{"resource":"prod-db","nope":1}`), nil)
	wantCode(t, "a body with an unknown field", err, airlock.EINVALID)
	_, err = env.admin.ApplyPolicy(ctx, PolicyFiles{Files: map[string]string{"big.yaml": strings.Repeat("#", MaxBodyBytes)}})
	wantCode(t, "policy larger than a body may be", err, airlock.ETOOLARGE)
	err = env.client("").Do(ctx, "GET", "/api/v1/nope", nil, nil)
	wantCode(t, "unknown route", err, airlock.ENOTFOUND)

	var locked *airlock.Error
	for i := 0; i < 10 && locked == nil; i++ {
		_, err := env.client("").Login(ctx, LoginRequest{User: "admin", Password: "wrong password"})
		if airlock.ErrorCode(err) == airlock.ELOCKED {
			errors.As(err, &locked)
			continue
		}
		wantCode(t, "wrong password", err, airlock.EUNAUTHORIZED)
	}
	if locked == nil {
		t.Fatal("ten wrong passwords from one address were never throttled")
	}
	secs, _ := locked.Details["retry_after_seconds"].(float64)
	if secs <= 0 {
		t.Fatalf("throttled without retry_after_seconds: %+v", locked.Details)
	}
	// Such a refusal on the wire: 429, with Retry-After saying what the
	// details say.
	resp, err := http.Post(env.url+RouteLogin, "application/json", strings.NewReader(`{"user":"admin","password":"wrong password"}`))
	if err != nil {
		t.Fatal(err)
	}
	var eb errorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	wire, _ := eb.Error.Details["retry_after_seconds"].(float64)
	if resp.StatusCode != http.StatusTooManyRequests || eb.Error.Code != airlock.ELOCKED || wire <= 0 ||
		resp.Header.Get("Retry-After") != strconv.Itoa(int(wire)) {
		t.Fatalf("throttled login: status %d, Retry-After %q, body %+v", resp.StatusCode, resp.Header.Get("Retry-After"), eb)
	}
}

// routeMethods lists, for every Route constant in routes.go, the methods
// (and, for a prefix route, the suffixes) the server registers it with.
var routeMethods = map[string][]string{
	"RouteInfo":                      {"GET"},
	"RouteBootstrap":                 {"POST"},
	"RouteLogin":                     {"POST"},
	"RouteLoginFactor":               {"POST"},
	"RouteLoginWebAuthnBegin":        {"POST"},
	"RouteLogout":                    {"POST"},
	"RouteWhoAmI":                    {"GET"},
	"RouteMFAVerify":                 {"POST"},
	"RouteMFAWebAuthnVerifyBegin":    {"POST"},
	"RouteMFAFactors":                {"GET"},
	"RouteMFAFactor":                 {"DELETE"},
	"RouteMFAFactorConfirm":          {"POST"},
	"RouteMFATOTP":                   {"POST"},
	"RouteMFARecoveryCodes":          {"POST"},
	"RouteMFAWebAuthnRegisterBegin":  {"POST"},
	"RouteMFAWebAuthnRegisterFinish": {"POST"},
	"RouteAdminUsers":                {"GET", "POST"},
	"RouteAdminUser":                 {"POST /disable", "POST /enable"},
	"RouteAdminGroups":               {"GET"},
	"RouteOIDCStart":                 {"GET"},
	"RouteOIDCCallback":              {"GET"},
	"RouteOIDCPoll":                  {"POST"},
	"RouteWebLoginStart":             {"POST"},
	"RouteWebLoginPoll":              {"POST"},
	"RoutePushVerifyBegin":           {"POST"},
	"RoutePushVerify":                {"POST"},
	"RouteAdminResources":            {"GET", "POST"},
	"RouteAdminResource":             {"DELETE"},
	"RoutePolicyCheck":               {"POST"},
	"RoutePolicy":                    {"GET", "POST"},
	"RouteResources":                 {"GET"},
	"RouteRequests":                  {"GET", "POST"},
	"RouteRequest":                   {"GET", "POST /" + airlock.DecisionApprove, "POST /" + airlock.DecisionDeny},
	"RouteStatements":                {"GET"},
	"RouteStatement":                 {"GET", "POST /" + airlock.DecisionApprove, "POST /" + airlock.DecisionDeny},
	"RouteGrants":                    {"GET"},
	"RouteGrantRevoke":               {"POST"},
	"RouteGrantAck":                  {"POST"},
	"RouteBreakGlass":                {"POST"},
	"RouteConnectTokens":             {"POST"},
	"RouteDBCredentials":             {"POST"},
	"RouteResourceCheck":             {"GET"},
	"RouteResourceRotate":            {"POST"},
	"RouteSSHCerts":                  {"POST"},
	"RouteHTTPTokens":                {"POST"},
	"RouteKubeTokens":                {"POST"},
	"RouteSessions":                  {"GET"},
	"RouteSession":                   {"GET"},
	"RouteSessionKill":               {"POST"},
	"RouteSessionRecording":          {"GET"},
	"RouteAuditEvents":               {"GET"},
	"RouteAuditExport":               {"GET"},
	"RouteAuditVerify":               {"GET"},
	"RouteAuditPubkey":               {"GET"},
	"RouteReportAccess":              {"GET"},
	"RouteEvidence":                  {"GET"},
	"RouteAuditProof":                {"GET"},
}

// routeConstants reads the Route constants and their values from routes.go.
func routeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Route") {
				out[name.Name], _ = strconv.Unquote(lit.Value)
			}
		}
		return true
	})
	return out
}

// TestEveryRouteIsRegistered: each Route constant, with each method it
// is meant for, reaches a handler (not the mux's 404 or 405).
func TestEveryRouteIsRegistered(t *testing.T) {
	env := newAPIEnv(t)
	consts := routeConstants(t)
	if len(consts) != len(routeMethods) {
		for name := range consts {
			if _, ok := routeMethods[name]; !ok {
				t.Errorf("%s is not in routeMethods", name)
			}
		}
		for name := range routeMethods {
			if _, ok := consts[name]; !ok {
				t.Errorf("routeMethods names %s, which routes.go does not define", name)
			}
		}
		t.FailNow()
	}
	for name, route := range consts {
		for _, m := range routeMethods[name] {
			method, suffix, _ := strings.Cut(m, " ")
			path := routePath(route, "x1", "x2") + suffix
			if strings.Contains(path, "{") {
				t.Fatalf("%s: routePath left a wildcard in %s", name, path)
			}
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("{}")
			}
			req, _ := http.NewRequest(method, env.url+path, body)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var eb errorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			resp.Body.Close()
			if resp.StatusCode == http.StatusMethodNotAllowed || strings.HasPrefix(eb.Error.Message, "no API endpoint") {
				t.Errorf("%s %s (%s): %d %s: not registered", method, path, name, resp.StatusCode, eb.Error.Message)
			}
		}
	}
	// The check itself tells a missing route apart.
	resp, err := http.Post(env.url+"/api/v1/requests/x1/maybe", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var eb errorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if !strings.HasPrefix(eb.Error.Message, "no API endpoint") {
		t.Fatalf("an unregistered route answered %d %q", resp.StatusCode, eb.Error.Message)
	}
}

// TestRoutePath fills wildcards in order, escaped.
func TestRoutePath(t *testing.T) {
	if got := routePath(RouteGrantRevoke, "gr/1?x"); got != "/api/v1/grants/gr%2F1%3Fx/revoke" {
		t.Fatalf("routePath = %q", got)
	}
	if got := routePath(RouteInfo); got != RouteInfo {
		t.Fatalf("routePath without wildcards = %q", got)
	}
	q := AuditQuery{Action: "grant.*", User: "alice", After: 7, Limit: 20, Desc: true, Follow: true}.values()
	if q.Encode() != "action=grant.%2A&after=7&desc=1&follow=1&limit=20&user=alice" {
		t.Fatalf("audit query %s", q.Encode())
	}
}
