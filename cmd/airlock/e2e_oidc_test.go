package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ptotp "github.com/pquerna/otp/totp"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The provider below is the same zitadel/oidc op-based IdP as in
// identity/oidc_test.go (test files cannot be shared across packages).

// testIdP is a real OpenID provider (zitadel/oidc's op package with its
// in-memory example storage) serving discovery, JWKS, authorize and token
// endpoints over HTTP. A test picks which user "types their password",
// which amr/acr the ID token carries, and the IdP groups; tamper makes the
// token endpoint misbehave ("aud": re-signed for another audience,
// "badsig": signed by a key not in the JWKS).
type testIdP struct {
	*storage.Storage
	URL, ClientID, Secret string

	mu     sync.Mutex
	login  string
	amr    []string
	acr    string
	groups map[string][]string
	tamper string
}

type idpUsers map[string]*storage.User

func (u idpUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u idpUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u idpUsers) ExampleClientID() string { return "service" }

// amrRequest overrides how the user authenticated at the IdP.
type amrRequest struct {
	op.AuthRequest
	amr []string
	acr string
}

func (r *amrRequest) GetAMR() []string { return r.amr }
func (r *amrRequest) GetACR() string   { return r.acr }

func (p *testIdP) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := p.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &amrRequest{AuthRequest: r, amr: p.amr, acr: p.acr}, nil
}

func (p *testIdP) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if a, ok := req.(*amrRequest); ok {
		req = a.AuthRequest
	}
	return p.Storage.CreateAccessToken(ctx, req)
}

// SetUserinfoFromRequest adds the groups claim to ID tokens.
func (p *testIdP) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := p.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if g, ok := p.groups[token.GetSubject()]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (p *testIdP) set(login string, amr []string, acr, tamper string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.login, p.amr, p.acr, p.tamper = login, amr, acr, tamper
}

var idpSeq struct {
	sync.Mutex
	n int
}

// startIdP runs a provider whose client redirects to redirectURL.
func startIdP(t *testing.T, redirectURL string) *testIdP {
	t.Helper()
	idpSeq.Lock()
	idpSeq.n++
	clientID := "airlock-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + string(rune('a'+idpSeq.n%26))
	idpSeq.Unlock()
	users := idpUsers{
		"sub-alice": {ID: "sub-alice", Username: "alice", Password: "idp-pw", Email: "alice@example.com", EmailVerified: true},
		"sub-bob":   {ID: "sub-bob", Username: "Bob Smith", Password: "idp-pw", Email: "Bob.Smith@example.com", EmailVerified: true},
	}
	p := &testIdP{Storage: storage.NewStorage(users), ClientID: clientID, Secret: "client-secret-" + clientID,
		groups: map[string][]string{}}
	storage.RegisterClients(storage.WebClient(clientID, p.Secret, redirectURL))
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	key := sha256.Sum256([]byte("test crypto key"))
	//lint:ignore SA1019 the example storage this test uses is built for NewOpenIDProvider
	prov, err := op.NewOpenIDProvider(srv.URL, &op.Config{CryptoKey: key, CodeMethodS256: true}, p, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// The login UI: the user "types" their IdP password.
	mux.HandleFunc("/login/username", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		p.mu.Lock()
		login := p.login
		p.mu.Unlock()
		if err := p.CheckUsernamePassword(login, "idp-pw", id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, srv.URL+"/authorize/callback?id="+url.QueryEscape(id), http.StatusFound)
	})
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		tamper := p.tamper
		p.mu.Unlock()
		if tamper == "" {
			prov.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		prov.ServeHTTP(rec, r)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		if raw, ok := body["id_token"].(string); ok {
			body["id_token"] = p.retamper(t, raw, tamper)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		json.NewEncoder(w).Encode(body)
	})
	mux.Handle("/", prov)
	h = mux
	return p
}

// retamper re-signs an ID token: for another audience with the IdP's own
// key ("aud"), or unchanged with a key the JWKS does not hold ("badsig").
func (p *testIdP) retamper(t *testing.T, raw, mode string) string {
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sk, _ := p.Storage.SigningKey(context.Background())
	key := sk.Key().(*rsa.PrivateKey)
	switch mode {
	case "aud":
		var c map[string]any
		json.Unmarshal(payload, &c)
		c["aud"] = []string{"someone-else"}
		payload, _ = json.Marshal(c)
	case "badsig":
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = other
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	h := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// ssoBrowser follows redirects from /api/v1/oidc/start through the IdP and
// back to Airlock's callback, and returns the callback's answer and URL.
func ssoBrowser(t *testing.T, start string) (int, map[string]any, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var last string
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		last = req.URL.String()
		return nil
	}}
	req, _ := http.NewRequest("GET", start, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("callback answered %d %s", resp.StatusCode, b)
	}
	return resp.StatusCode, out, last
}

func apiCall(t *testing.T, method, u, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, u, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestE2EOIDCLogin(t *testing.T) {
	clk := &fakeClock{t: time.Now().UTC()}
	var idp *testIdP
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) {
		idp = startIdP(t, c.PublicURL+"/api/v1/oidc/callback")
		secretFile := filepath.Join(t.TempDir(), "oidc-secret")
		if err := os.WriteFile(secretFile, []byte(idp.Secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.OIDCIssuer, c.OIDCClientID, c.OIDCClientSecretFile = idp.URL, idp.ClientID, secretFile
		c.OIDCAcceptAMR = "hwk"
		c.OIDCAdminGroup = "airlock-admins"
	})
	start := h.url + "/api/v1/oidc/start"
	idp.groups["sub-alice"] = []string{"airlock-admins", "SRE", "admins"}

	// First SSO login: user created, enrollment-only session.
	idp.set("alice", []string{"pwd"}, "", "")
	st, res, _ := ssoBrowser(t, start)
	if st != 200 || res["token"] == "" || res["needs_enrollment"] != true {
		t.Fatalf("first SSO login: %d %v", st, res)
	}
	tok := res["token"].(string)
	_, who := apiCall(t, "GET", h.url+"/api/v1/whoami", tok, nil)
	groups := who["user"].(map[string]any)["groups"]
	if g, _ := json.Marshal(groups); string(g) != `["admins","sre"]` {
		t.Fatalf("groups %s", g)
	}
	// Enroll TOTP through the API.
	st, enr := apiCall(t, "POST", h.url+"/api/v1/mfa/totp", tok, map[string]string{"name": "phone"})
	if st != 201 {
		t.Fatalf("enroll: %d %v", st, enr)
	}
	pu, _ := url.Parse(enr["otpauth_uri"].(string))
	secret := pu.Query().Get("secret")
	code, _ := ptotp.GenerateCode(secret, clk.Now())
	fid := enr["factor"].(map[string]any)["id"].(string)
	if st, out := apiCall(t, "POST", h.url+"/api/v1/mfa/factors/"+fid+"/confirm", tok, map[string]string{"otp": code}); st != 200 {
		t.Fatalf("confirm: %d %v", st, out)
	}

	// IdP password alone: Airlock answers with the same challenge as a
	// password login, and TOTP completes it.
	clk.Advance(31 * time.Second)
	st, res, cb := ssoBrowser(t, start)
	details, _ := res["error"].(map[string]any)["details"].(map[string]any)
	if st != 401 || details["challenge"] == nil {
		t.Fatalf("want mfa_required, got %d %v", st, res)
	}
	code, _ = ptotp.GenerateCode(secret, clk.Now())
	st, done := apiCall(t, "POST", h.url+"/api/v1/login/factor", "", map[string]string{"challenge": details["challenge"].(string), "otp": code})
	if st != 200 || done["mfa_method"] != "totp" {
		t.Fatalf("login/factor: %d %v", st, done)
	}
	// The callback (state and code) cannot be replayed.
	if st, out := apiCall(t, "GET", cb, "", nil); st != 401 {
		t.Fatalf("replayed callback: %d %v", st, out)
	}

	// A hardware-key login at the IdP is accepted as the second factor.
	idp.set("alice", []string{"pwd", "hwk"}, "", "")
	st, res, _ = ssoBrowser(t, start)
	if st != 200 || res["mfa_method"] != "sso:hwk" {
		t.Fatalf("accepted amr: %d %v", st, res)
	}
	// A token for another audience is refused.
	idp.set("alice", []string{"pwd", "hwk"}, "", "aud")
	if st, res, _ = ssoBrowser(t, start); st != 401 {
		t.Fatalf("wrong audience: %d %v", st, res)
	}
	if strings.Contains(h.logs.String(), idp.Secret) {
		t.Error("client secret in the server log")
	}
}

// TestE2EOIDCLoginCLI drives `airlock login --sso`: the CLI prints the
// sign-in link, a browser completes it at the real test IdP, and the CLI's
// poll stores the session.
func TestE2EOIDCLoginCLI(t *testing.T) {
	clk := &fakeClock{t: time.Now().UTC()}
	var idp *testIdP
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) {
		idp = startIdP(t, c.PublicURL+"/api/v1/oidc/callback")
		secretFile := filepath.Join(t.TempDir(), "oidc-secret")
		if err := os.WriteFile(secretFile, []byte(idp.Secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.OIDCIssuer, c.OIDCClientID, c.OIDCClientSecretFile = idp.URL, idp.ClientID, secretFile
		c.OIDCAcceptAMR = "hwk"
	})
	idp.set("alice", []string{"pwd", "hwk"}, "", "")
	home := t.TempDir()

	cliMu.Lock()
	os.Setenv("AIRLOCK_HOME", home)
	global = globalOpts{}
	root := newRootCmd()
	out := &syncBuffer{}
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"--server", h.url, "login", "--sso"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(context.Background()) }()
	var link string
	deadline := time.Now().Add(10 * time.Second)
	for link == "" {
		for _, f := range strings.Fields(out.String()) {
			if strings.Contains(f, "/api/v1/oidc/start?cli=") {
				link = f
			}
		}
		if time.Now().After(deadline) {
			cliMu.Unlock()
			t.Fatalf("no sign-in link printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ssoBrowser(t, link)
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		err = errors.New("login --sso did not finish")
	}
	cliMu.Unlock()
	if err != nil {
		t.Fatalf("login --sso: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Logged in as alice") {
		t.Fatalf("output:\n%s", out.String())
	}
	who := h.must(home, "", "--output", "json", "whoami")
	if !strings.Contains(who, `"mfa_method": "sso:hwk"`) {
		t.Fatalf("whoami: %s", who)
	}
}
