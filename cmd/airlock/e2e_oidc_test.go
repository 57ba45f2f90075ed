package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ptotp "github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock/internal/testenv"
)

// testIdP is the real OpenID provider shared with identity's tests.
type testIdP = testenv.OIDCProvider

func startIdP(t *testing.T, redirectURL string) *testIdP { return testenv.StartOIDC(t, redirectURL) }

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
	idp.Groups["sub-alice"] = []string{"airlock-admins", "SRE", "admins"}

	// First SSO login: user created, enrollment-only session.
	idp.Set("alice", []string{"pwd"}, "", "")
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
	idp.Set("alice", []string{"pwd", "hwk"}, "", "")
	st, res, _ = ssoBrowser(t, start)
	if st != 200 || res["mfa_method"] != "sso:hwk" {
		t.Fatalf("accepted amr: %d %v", st, res)
	}
	// A token for another audience is refused.
	idp.Set("alice", []string{"pwd", "hwk"}, "", "aud")
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
	idp.Set("alice", []string{"pwd", "hwk"}, "", "")
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
		time.Sleep(20 * time.Millisecond) // polling the CLI's output for the link it prints
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
