package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/evidence"
	"github.com/airlockhq/airlock/internal/svctest"
)

// consoleEnv is the console over real services on a real SQLite store.
type consoleEnv struct {
	h     http.Handler
	store airlock.Store
	log   *audit.Log
	admin *airlock.User
	token string
}

func newConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
	sv := svctest.New(t, now)
	store, al, ident, acc := sv.Store, sv.Audit, sv.Identity, sv.Access
	apiSrv := &api.Server{Identity: ident, Access: acc, Now: now,
		Audit: &api.AuditDeps{Store: store, Log: al, Verify: sv.Verify,
			Evidence: func(ctx context.Context, grantID string) (api.EvidencePack, error) {
				return evidence.Prepare(ctx, evidence.Source{Store: store, PublicKey: audit.MarshalPublicKey(sv.PublicKey), Signer: sv.AuditKey, Now: now}, grantID)
			}},
		Recordings: func(ctx context.Context, key string) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"$ uptime\\r\\n\"]\n")), nil
		}}
	apiSrv.Handler()
	env := &consoleEnv{store: store, log: al,
		h: Handler(Config{API: apiSrv, Identity: ident, Access: acc, PublicURL: "http://localhost:8080", Now: now})}

	// The first admin, enrolled with TOTP through the console's own forms.
	var err error
	if env.admin, err = ident.Bootstrap(ctx, sv.BootstrapToken(t), "admin", "admin password 1", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	rec := env.do(t, "POST", "/signin", url.Values{"user": {"admin"}, "password": {"admin password 1"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/factors" {
		t.Fatalf("first sign-in: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == api.SessionCookie {
			env.token = c.Value
		}
	}
	rec = env.do(t, "POST", "/factors/totp", url.Values{"name": {"phone"}})
	body := rec.Body.String()
	i := strings.Index(body, "otpauth://")
	uri, _ := url.Parse(strings.ReplaceAll(body[i:i+strings.Index(body[i:], "<")], "&amp;", "&"))
	secret := uri.Query().Get("secret")
	fid := body[strings.Index(body, "/factors/totp/")+len("/factors/totp/"):]
	fid = fid[:strings.Index(fid, "/")]
	code, _ := totp.GenerateCode(secret, now())
	if rec := env.do(t, "POST", "/factors/totp/"+fid+"/confirm", url.Values{"otp": {code}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("confirm TOTP: %d %s", rec.Code, rec.Body.String())
	}
	return env
}

func (e *consoleEnv) do(t *testing.T, method, path string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if e.token != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: e.token})
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func TestSessionPages(t *testing.T) {
	env := newConsoleEnv(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for _, s := range []*airlock.Session{
		{ID: "ss_db", GrantID: "gr_1", UserID: env.admin.ID, UserName: "admin", Resource: "prod-db", Kind: airlock.KindPostgres, Access: "read", StartedAt: start},
		{ID: "ss_ssh", GrantID: "gr_2", UserID: env.admin.ID, UserName: "admin", Resource: "web-1", Kind: airlock.KindSSH, Access: "root", StartedAt: start, Recording: "rec/ss_ssh"},
		{ID: "ss_k8s", GrantID: "gr_3", UserID: env.admin.ID, UserName: "admin", Resource: "prod-k8s", Kind: airlock.KindKubernetes, Access: "edit", StartedAt: start,
			Recordings: []airlock.SessionRecording{{ID: "ss_k8s-1", SHA256: "aa", Title: "exec payments/web-1: sh"}, {ID: "ss_k8s-2", SHA256: "bb", Title: "exec payments/web-1: bash"}}},
	} {
		if err := env.store.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"select 1", "select count(*) from users"} {
		d, _ := json.Marshal(map[string]string{"sql": q})
		if _, err := env.log.Record(ctx, airlock.Event{Actor: airlock.Actor{ID: env.admin.ID, Name: "admin"}, Action: "db.query", Resource: "prod-db",
			SessionID: "ss_db", Outcome: airlock.OutcomeSuccess, Details: d}); err != nil {
			t.Fatal(err)
		}
	}

	rec := env.do(t, "GET", "/sessions", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ss_db") || !strings.Contains(rec.Body.String(), "/sessions/ss_ssh/kill") {
		t.Fatalf("sessions: %d\n%s", rec.Code, rec.Body.String())
	}
	rec = env.do(t, "GET", "/sessions/ss_db", nil)
	body := rec.Body.String()
	first, second := strings.Index(body, "select 1"), strings.Index(body, "select count(*) from users")
	if rec.Code != http.StatusOK || first < 0 || second < first {
		t.Fatalf("db session view: %d\n%s", rec.Code, body)
	}
	if evs, _ := env.store.ListEvents(ctx, airlock.EventFilter{Action: "audit.read", SessionID: "ss_db"}); len(evs) != 1 {
		t.Fatalf("reading the queries was not audited: %d events", len(evs))
	}
	rec = env.do(t, "GET", "/sessions/ss_ssh", nil)
	if !strings.Contains(rec.Body.String(), `data-src="/api/v1/sessions/ss_ssh/recording"`) {
		t.Fatalf("ssh session view has no player:\n%s", rec.Body.String())
	}
	// A Kubernetes session: one recording per exec -it, each selectable.
	rec = env.do(t, "GET", "/sessions/ss_k8s", nil)
	body = rec.Body.String()
	if !strings.Contains(body, `data-src="/api/v1/sessions/ss_k8s/recording?part=1"`) ||
		!strings.Contains(body, `value="/api/v1/sessions/ss_k8s/recording?part=2"`) || !strings.Contains(body, "2. exec payments/web-1: bash") {
		t.Fatalf("kubernetes session view has no player for each recording:\n%s", body)
	}
	if rec := env.do(t, "GET", "/sessions/ss_nope", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown session: %d", rec.Code)
	}

	// Audit search with the chain's verification status.
	rec = env.do(t, "GET", "/audit?action=db.*&user=admin", nil)
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Chain verification: OK") || strings.Count(body, "<td>db.query</td>") != 2 {
		t.Fatalf("audit page: %d\n%s", rec.Code, body)
	}
	if rec := env.do(t, "GET", "/audit?since=yesterday", nil); !strings.Contains(rec.Body.String(), "times look like") {
		t.Fatalf("bad time accepted")
	}
}

// TestRequestPageEvidenceLink: a request's page offers its grant's
// evidence pack to an audit reader (the admin), and the link is the API's
// evidence route, which takes the console's session cookie.
func TestRequestPageEvidenceLink(t *testing.T) {
	env := newConsoleEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	rq := &airlock.AccessRequest{ID: "req_ev", UserID: env.admin.ID, UserName: "admin", Resource: "prod-db", Access: "read", Duration: time.Hour,
		Reason: "INC-1", State: airlock.RequestPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := env.store.CreateRequest(ctx, rq); err != nil {
		t.Fatal(err)
	}
	g := &airlock.Grant{ID: "gr_ev", RequestID: rq.ID, UserID: env.admin.ID, UserName: "admin", Resource: "prod-db", Access: "read",
		StartsAt: t0, EndsAt: t0.Add(2 * time.Hour), State: airlock.GrantActive, CreatedAt: t0}
	if err := env.store.ApproveRequest(ctx, rq.ID, g); err != nil {
		t.Fatal(err)
	}
	rec := env.do(t, "GET", "/requests/req_ev", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `href="/api/v1/evidence/gr_ev"`) {
		t.Fatalf("request page: %d\n%s", rec.Code, rec.Body.String())
	}
}
