package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// These tests drive the WebAuthn ceremonies through the real HTTP API of an
// in-process server, with github.com/descope/virtualwebauthn as the
// browser + authenticator.

// apiError is the error body of a failed API call.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// call sends one API request. body is nil, a []byte sent as is, or a value
// sent as JSON. A 2xx answer is decoded into out (when not nil); any other
// answer is decoded as an error body.
func (h *harness) call(method, path, token string, body, out any) (int, apiError) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var e struct {
		Error apiError `json:"error"`
	}
	if resp.StatusCode/100 != 2 {
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" {
			h.t.Fatalf("%s %s: status %d with a body that is not an API error: %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, e.Error
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, e.Error
}

// mustCall is call that fails the test unless the status is want.
func (h *harness) mustCall(want int, method, path, token string, body, out any) {
	h.t.Helper()
	if st, e := h.call(method, path, token, body, out); st != want {
		h.t.Fatalf("%s %s: status %d (%s: %s), want %d", method, path, st, e.Code, e.Message, want)
	}
}

// rp is the relying party as a browser on the console's origin sees it.
func (h *harness) rp() virtualwebauthn.RelyingParty {
	return virtualwebauthn.RelyingParty{ID: "localhost", Name: "Airlock", Origin: h.cfg.PublicURL}
}

// waKey is a software authenticator holding one credential.
type waKey struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newWAKey(userID string, opts virtualwebauthn.AuthenticatorOptions) *waKey {
	opts.UserHandle = []byte(userID)
	return &waKey{auth: virtualwebauthn.NewAuthenticatorWithOptions(opts), cred: testenv.WebAuthnEC2Credential()}
}

// registration is a finished registration request as posted.
type registration struct {
	status int
	err    apiError
	factor airlock.Factor
	body   api.WebAuthnFinish
}

// register runs a registration ceremony for k through the API as the
// session token, answering as a browser at rp.
func (h *harness) register(token string, k *waKey, rp virtualwebauthn.RelyingParty, name string) registration {
	h.t.Helper()
	var begin api.WebAuthnBegin
	h.mustCall(http.StatusOK, "POST", "/api/v1/mfa/webauthn/register/begin", token, map[string]string{"name": name}, &begin)
	if begin.Ceremony == "" {
		h.t.Fatal("register/begin: no ceremony")
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(begin.Options))
	if err != nil {
		h.t.Fatalf("the browser cannot parse the creation options %s: %v", begin.Options, err)
	}
	if ao.RelyingPartyID != "localhost" {
		h.t.Fatalf("creation options name RP %q, want localhost", ao.RelyingPartyID)
	}
	r := registration{body: api.WebAuthnFinish{Ceremony: begin.Ceremony, Response: json.RawMessage(virtualwebauthn.CreateAttestationResponse(rp, k.auth, k.cred, *ao))}}
	r.status, r.err = h.call("POST", "/api/v1/mfa/webauthn/register/finish", token, r.body, &r.factor)
	if r.status == http.StatusCreated {
		k.auth.AddCredential(k.cred)
	}
	return r
}

// assertion answers request options opts with k's credential at sign count counter.
func (h *harness) assertion(opts json.RawMessage, k *waKey, rp virtualwebauthn.RelyingParty, counter uint32) json.RawMessage {
	h.t.Helper()
	ao, err := virtualwebauthn.ParseAssertionOptions(string(opts))
	if err != nil {
		h.t.Fatalf("the browser cannot parse the request options %s: %v", opts, err)
	}
	if !k.cred.IsAllowedForAssertion(*ao) {
		h.t.Fatalf("request options do not allow the registered credential: %s", opts)
	}
	k.cred.Counter = counter
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, k.auth, k.cred, *ao))
}

// factorBody is the second-factor part of /login/factor and /mfa/verify.
type factorBody struct {
	Challenge string          `json:"challenge,omitempty"`
	Ceremony  string          `json:"webauthn_ceremony"`
	Response  json.RawMessage `json:"webauthn_response"`
}

// stepUpBody begins a step-up ceremony and returns the body to post to /mfa/verify.
func (h *harness) stepUpBody(token string, k *waKey, rp virtualwebauthn.RelyingParty, counter uint32) factorBody {
	h.t.Helper()
	var begin api.WebAuthnBegin
	h.mustCall(http.StatusOK, "POST", "/api/v1/mfa/webauthn/verify/begin", token, nil, &begin)
	return factorBody{Ceremony: begin.Ceremony, Response: h.assertion(begin.Options, k, rp, counter)}
}

// stepUp runs a whole WebAuthn step-up and returns the status and, on success, whoami.
func (h *harness) stepUp(token string, k *waKey, rp virtualwebauthn.RelyingParty, counter uint32) (int, apiError, api.WhoAmI) {
	h.t.Helper()
	var who api.WhoAmI
	st, e := h.call("POST", "/api/v1/mfa/verify", token, h.stepUpBody(token, k, rp, counter), &who)
	return st, e, who
}

// passwordStep posts user and password and returns the login challenge,
// failing unless the server asks for a second factor offering webauthn.
func (h *harness) passwordStep(user, password string) string {
	h.t.Helper()
	st, e := h.call("POST", "/api/v1/login", "", map[string]string{"user": user, "password": password}, nil)
	if st != http.StatusUnauthorized || e.Code != airlock.EMFAREQUIRED {
		h.t.Fatalf("login with an enrolled factor: status %d %s (%s), want 401 %s", st, e.Code, e.Message, airlock.EMFAREQUIRED)
	}
	chal, _ := e.Details["challenge"].(string)
	methods, _ := json.Marshal(e.Details["methods"])
	if chal == "" || !strings.Contains(string(methods), `"webauthn"`) {
		h.t.Fatalf("mfa_required details: %v", e.Details)
	}
	return chal
}

// loginBody runs the password step and a login ceremony and returns the
// body to post to /login/factor.
func (h *harness) loginBody(user, password string, k *waKey, rp virtualwebauthn.RelyingParty, counter uint32) factorBody {
	h.t.Helper()
	chal := h.passwordStep(user, password)
	var begin api.WebAuthnBegin
	h.mustCall(http.StatusOK, "POST", "/api/v1/login/webauthn/begin", "", map[string]string{"challenge": chal}, &begin)
	return factorBody{Challenge: chal, Ceremony: begin.Ceremony, Response: h.assertion(begin.Options, k, rp, counter)}
}

// passwordLogin logs in a user without a factor: an enrollment-only session.
func (h *harness) passwordLogin(user, password string) api.LoginResponse {
	h.t.Helper()
	var lr api.LoginResponse
	h.mustCall(http.StatusOK, "POST", "/api/v1/login", "", map[string]string{"user": user, "password": password}, &lr)
	if lr.Token == "" || lr.User == nil || !lr.NeedsEnrollment || lr.MFAMethod != "" {
		h.t.Fatalf("enrollment login: %+v", lr)
	}
	return lr
}

// events returns the audit events with action (read as an admin token).
func (h *harness) events(token, action string) []airlock.Event {
	h.t.Helper()
	var evs []airlock.Event
	h.mustCall(http.StatusOK, "GET", "/api/v1/audit/events?action="+action, token, nil, &evs)
	for _, ev := range evs {
		if ev.Action != action {
			h.t.Fatalf("filter action=%s returned %s", action, ev.Action)
		}
	}
	return evs
}

func (h *harness) factors(token string) []airlock.Factor {
	h.t.Helper()
	var fs []airlock.Factor
	h.mustCall(http.StatusOK, "GET", "/api/v1/mfa/factors", token, nil, &fs)
	return fs
}

// settle moves the clock past the limiter window so refused attempts made
// on purpose neither slow the test nor lock the account.
func (h *harness) settle() { h.clock.Advance(16 * time.Minute) }

const waAdminPassword = "correct horse battery"

// bootstrapWA bootstraps "admin" with the CLI and returns an
// enrollment-only session made through the API.
func bootstrapWA(t *testing.T, h *harness) api.LoginResponse {
	t.Helper()
	h.must(t.TempDir(), waAdminPassword+"\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", "admin", "--password-stdin")
	return h.passwordLogin("admin", waAdminPassword)
}

func TestE2EWebAuthnFlow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	lr := bootstrapWA(t, h)
	tok, userID := lr.Token, lr.User.ID
	rp := h.rp()

	// The enrollment-only session can do nothing but enroll.
	if st, e := h.call("GET", "/api/v1/audit/events", tok, nil, nil); st != http.StatusForbidden || e.Details["reason"] != "mfa_enrollment_required" {
		t.Fatalf("audit read before enrollment: %d %+v", st, e)
	}

	// Registration refusals: a browser on another origin, a credential
	// scoped to another RP ID. Nothing is stored.
	key := newWAKey(userID, virtualwebauthn.AuthenticatorOptions{})
	for name, bad := range map[string]virtualwebauthn.RelyingParty{
		"wrong origin": {ID: "localhost", Name: "x", Origin: "http://evil.localhost:" + strings.TrimPrefix(rp.Origin, "http://localhost:")},
		"wrong RP ID":  {ID: "evil.test", Name: "x", Origin: rp.Origin},
	} {
		r := h.register(tok, key, bad, "laptop")
		if r.status != http.StatusBadRequest || r.err.Code != airlock.EINVALID {
			t.Fatalf("registration with %s: %d %+v, want 400 invalid", name, r.status, r.err)
		}
	}
	if fs := h.factors(tok); len(fs) != 0 {
		t.Fatalf("factors stored by refused registrations: %+v", fs)
	}

	// Register the passkey; it makes the session's MFA fresh.
	r := h.register(tok, key, rp, "laptop")
	if r.status != http.StatusCreated {
		t.Fatalf("registration: %d %+v", r.status, r.err)
	}
	if f := r.factor; f.Kind != airlock.FactorWebAuthn || f.Status != airlock.FactorActive || f.Name != "laptop" || f.UserID != userID || f.ID == "" {
		t.Fatalf("registered factor: %+v", f)
	}
	var who api.WhoAmI
	h.mustCall(http.StatusOK, "GET", "/api/v1/whoami", tok, nil, &who)
	if !who.Enrolled || who.MFAMethod != "webauthn" {
		t.Fatalf("whoami after registration: %+v", who)
	}
	// The finished registration ceremony cannot be posted again.
	if st, e := h.call("POST", "/api/v1/mfa/webauthn/register/finish", tok, r.body, nil); st != http.StatusBadRequest || !strings.Contains(e.Message, "expired or already used") {
		t.Fatalf("registration ceremony reused: %d %+v", st, e)
	}
	if fs := h.factors(tok); len(fs) != 1 {
		t.Fatalf("factors after one registration: %+v", fs)
	}
	// Refused registrations are audited as such, never as enrolled.
	if evs := h.events(tok, "mfa.enrolled"); len(evs) != 1 {
		t.Fatalf("mfa.enrolled events: %d, want 1 (the refused registrations must not count)", len(evs))
	}
	if evs := h.events(tok, "mfa.confirm_failed"); len(evs) != 3 {
		t.Fatalf("mfa.confirm_failed events: %d, want 3", len(evs))
	}

	// Log out: the token is dead.
	h.mustCall(http.StatusOK, "POST", "/api/v1/logout", tok, nil, nil)
	if st, e := h.call("GET", "/api/v1/whoami", tok, nil, nil); st != http.StatusUnauthorized || e.Code != airlock.EUNAUTHORIZED {
		t.Fatalf("whoami after logout: %d %+v", st, e)
	}

	// Password alone is not enough now; password + assertion is.
	body := h.loginBody("admin", waAdminPassword, key, rp, 1)
	var login api.LoginResponse
	h.mustCall(http.StatusOK, "POST", "/api/v1/login/factor", "", body, &login)
	if login.Token == "" || login.MFAMethod != "webauthn" || login.NeedsEnrollment || login.User.Name != "admin" {
		t.Fatalf("webauthn login: %+v", login)
	}
	tok = login.Token
	// The same request posted again is refused (challenge and ceremony used up).
	if st, _ := h.call("POST", "/api/v1/login/factor", "", body, nil); st != http.StatusUnauthorized {
		t.Fatalf("replayed login: %d", st)
	}
	// The same assertion for a new challenge and ceremony is refused too.
	fresh := h.loginBody("admin", waAdminPassword, key, rp, 2)
	fresh.Response = body.Response
	if st, _ := h.call("POST", "/api/v1/login/factor", "", fresh, nil); st != http.StatusUnauthorized {
		t.Fatalf("login assertion replayed into a new ceremony: %d", st)
	}
	h.settle()

	// Step-up: after the freshness window, approving is stale; a WebAuthn
	// assertion makes it fresh again.
	h.mustCall(http.StatusOK, "GET", "/api/v1/whoami", tok, nil, &who)
	if who.FreshFor["approve"] != 0 || who.MFAAgeSecs < 300 {
		t.Fatalf("whoami before step-up: %+v", who)
	}
	up := h.stepUpBody(tok, key, rp, 3)
	h.mustCall(http.StatusOK, "POST", "/api/v1/mfa/verify", tok, up, &who)
	if who.MFAMethod != "webauthn" || who.MFAAgeSecs != 0 || who.FreshFor["approve"] <= 0 {
		t.Fatalf("whoami after step-up: %+v", who)
	}
	// Replayed assertion: the same step-up body posted twice.
	if st, e := h.call("POST", "/api/v1/mfa/verify", tok, up, nil); st != http.StatusUnauthorized || e.Code != airlock.EUNAUTHORIZED {
		t.Fatalf("replayed step-up: %d %+v", st, e)
	}
	// Wrong origin, wrong RP ID: refused, with a higher counter so only the
	// origin/RP binding is at fault.
	if st, _, _ := h.stepUp(tok, key, virtualwebauthn.RelyingParty{ID: "localhost", Origin: "https://evil.example"}, 10); st != http.StatusUnauthorized {
		t.Fatalf("step-up from a wrong origin: %d", st)
	}
	h.settle()
	if st, _, _ := h.stepUp(tok, key, virtualwebauthn.RelyingParty{ID: "evil.example", Origin: rp.Origin}, 11); st != http.StatusUnauthorized {
		t.Fatalf("step-up for a wrong RP ID: %d", st)
	}
	// An expired ceremony is refused.
	stale := h.stepUpBody(tok, key, rp, 12)
	clk.Advance(6 * time.Minute)
	if st, _ := h.call("POST", "/api/v1/mfa/verify", tok, stale, nil); st != http.StatusUnauthorized {
		t.Fatalf("step-up with an expired ceremony: %d", st)
	}
	h.settle()
	// The refusals did not advance the counter nor hurt the key.
	if st, e, _ := h.stepUp(tok, key, rp, 4); st != http.StatusOK {
		t.Fatalf("step-up after refusals: %d %+v", st, e)
	}

	// Sign-count regression: the same and a lower count are a cloned key.
	for _, c := range []uint32{4, 2} {
		if st, e, _ := h.stepUp(tok, key, rp, c); st != http.StatusUnauthorized || e.Code != airlock.EUNAUTHORIZED {
			t.Fatalf("step-up with sign count %d after 4: %d %+v", c, st, e)
		}
	}
	h.settle()
	// Also at login.
	if st, _ := h.call("POST", "/api/v1/login/factor", "", h.loginBody("admin", waAdminPassword, key, rp, 1), nil); st != http.StatusUnauthorized {
		t.Fatalf("login with a regressed sign count: %d", st)
	}
	h.settle()
	if st, e, _ := h.stepUp(tok, key, rp, 5); st != http.StatusOK {
		t.Fatalf("step-up with an increased count: %d %+v", st, e)
	}
	evs := h.events(tok, "mfa.cloned_key")
	if len(evs) != 3 {
		t.Fatalf("mfa.cloned_key events: %d, want 3", len(evs))
	}
	for _, ev := range evs {
		var d map[string]any
		json.Unmarshal(ev.Details, &d)
		if ev.Actor.Name != "admin" || ev.Outcome != airlock.OutcomeDenied || d["factor_id"] != r.factor.ID {
			t.Fatalf("mfa.cloned_key event: %+v details %s (factor %s)", ev, ev.Details, r.factor.ID)
		}
	}
	// The CLI shows the same events to the admin.
	home := t.TempDir()
	st, _ := json.Marshal(clientState{Server: h.url, User: "admin", Token: tok, ExpiresAt: login.ExpiresAt})
	if err := os.WriteFile(filepath.Join(home, "session.json"), st, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.must(home, "", "audit", "tail", "--action", "mfa.cloned_key"); strings.Count(out, "mfa.cloned_key") != 3 {
		t.Fatalf("audit tail --action mfa.cloned_key:\n%s", out)
	}
	if out := h.must(home, "", "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
}

func TestE2EWebAuthnPolicy(t *testing.T) {
	allowed := uuid.New()
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) {
		c.WebAuthnRequireUV = true
		c.WebAuthnAAGUIDs = allowed.String()
	})
	lr := bootstrapWA(t, h)
	tok, rp := lr.Token, h.rp()

	// The allowed model without user verification: refused for UV.
	noUV := newWAKey(lr.User.ID, virtualwebauthn.AuthenticatorOptions{UserNotVerified: true})
	noUV.auth.Aaguid = allowed
	if r := h.register(tok, noUV, rp, "no-uv"); r.status != http.StatusForbidden || !strings.Contains(r.err.Message, "did not verify the user") {
		t.Fatalf("registration without UV: %d %+v", r.status, r.err)
	}
	// Another model (and one hiding its AAGUID) with UV: refused for the allowlist.
	for _, aaguid := range [][16]byte{uuid.New(), {}} {
		other := newWAKey(lr.User.ID, virtualwebauthn.AuthenticatorOptions{})
		other.auth.Aaguid = aaguid
		if r := h.register(tok, other, rp, "other"); r.status != http.StatusForbidden || !strings.Contains(r.err.Message, "model is not allowed") {
			t.Fatalf("registration of AAGUID %x: %d %+v", aaguid, r.status, r.err)
		}
	}
	if fs := h.factors(tok); len(fs) != 0 {
		t.Fatalf("factors stored by refused registrations: %+v", fs)
	}
	h.settle()
	// The allowed model with UV registers.
	key := newWAKey(lr.User.ID, virtualwebauthn.AuthenticatorOptions{})
	key.auth.Aaguid = allowed
	if r := h.register(tok, key, rp, "yubikey"); r.status != http.StatusCreated {
		t.Fatalf("allowed registration: %d %+v", r.status, r.err)
	}
	h.mustCall(http.StatusOK, "POST", "/api/v1/logout", tok, nil, nil)

	// Login with UV works; the same key skipping UV is refused.
	var login api.LoginResponse
	h.mustCall(http.StatusOK, "POST", "/api/v1/login/factor", "", h.loginBody("admin", waAdminPassword, key, rp, 1), &login)
	key.auth.Options.UserNotVerified = true
	if st, _ := h.call("POST", "/api/v1/login/factor", "", h.loginBody("admin", waAdminPassword, key, rp, 2), nil); st != http.StatusUnauthorized {
		t.Fatalf("login without UV while UV is required: %d", st)
	}
	if st, _, _ := h.stepUp(login.Token, key, rp, 3); st != http.StatusUnauthorized {
		t.Fatalf("step-up without UV while UV is required: %d", st)
	}
	h.settle()
	key.auth.Options.UserNotVerified = false
	if st, e, _ := h.stepUp(login.Token, key, rp, 4); st != http.StatusOK {
		t.Fatalf("step-up with UV: %d %+v", st, e)
	}
}

func TestE2EAPIBodiesAndTokens(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	lr := bootstrapWA(t, h)
	tok, rp := lr.Token, h.rp()
	key := newWAKey(lr.User.ID, virtualwebauthn.AuthenticatorOptions{})
	if r := h.register(tok, key, rp, "laptop"); r.status != http.StatusCreated {
		t.Fatalf("registration: %d %+v", r.status, r.err)
	}

	users := func() string {
		var us []airlock.User
		h.mustCall(http.StatusOK, "GET", "/api/v1/admin/users", tok, nil, &us)
		var names []string
		for _, u := range us {
			names = append(names, u.Name)
		}
		return strings.Join(names, ",")
	}
	if got := users(); got != "admin" {
		t.Fatalf("users: %s", got)
	}
	huge := `{"name":"eve","password":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty", ``, 400, airlock.EINVALID},
		{"truncated", `{"name":"eve","password":"eve password 1"`, 400, airlock.EINVALID},
		{"not an object", `["eve"]`, 400, airlock.EINVALID},
		{"wrong type", `{"name":"eve","password":"eve password 1","groups":"devs"}`, 400, airlock.EINVALID},
		{"unknown field", `{"name":"eve","password":"eve password 1","admin":true}`, 400, airlock.EINVALID},
		{"trailing data", `{"name":"eve","password":"eve password 1"}{"name":"mallory"}`, 400, airlock.EINVALID},
		{"oversized", huge, 413, airlock.ETOOLARGE},
	} {
		st, e := h.call("POST", "/api/v1/admin/users", tok, []byte(tc.body), nil)
		if st != tc.status || e.Code != tc.code {
			t.Fatalf("%s body: %d %s (%s), want %d %s", tc.name, st, e.Code, e.Message, tc.status, tc.code)
		}
		if strings.Contains(e.Message, "xxxxxxxx") {
			t.Fatalf("%s body echoed in the error", tc.name)
		}
	}
	if got := users(); got != "admin" {
		t.Fatalf("users after refused bodies: %s", got)
	}
	// The same body well formed is accepted (the refusals were about the body).
	h.mustCall(http.StatusCreated, "POST", "/api/v1/admin/users", tok, []byte(`{"name":"eve","password":"eve password 1"}`), nil)
	if got := users(); got != "admin,eve" {
		t.Fatalf("users: %s", got)
	}

	// WebAuthn finish with an oversized (but under MaxBodyBytes) or
	// malformed response: refused, no factor stored.
	for _, tc := range []struct {
		name     string
		response json.RawMessage
		status   int
	}{
		{"oversized response", json.RawMessage(`"` + strings.Repeat("A", 100<<10) + `"`), 413},
		{"garbage response", json.RawMessage(`{"id":"x","rawId":"x","type":"public-key","response":{}}`), 400},
	} {
		var begin api.WebAuthnBegin
		h.mustCall(http.StatusOK, "POST", "/api/v1/mfa/webauthn/register/begin", tok, map[string]string{"name": "second"}, &begin)
		if st, e := h.call("POST", "/api/v1/mfa/webauthn/register/finish", tok, api.WebAuthnFinish{Ceremony: begin.Ceremony, Response: tc.response}, nil); st != tc.status {
			t.Fatalf("%s: %d %+v, want %d", tc.name, st, e, tc.status)
		}
	}
	if fs := h.factors(tok); len(fs) != 1 {
		t.Fatalf("factors after refused finishes: %+v", fs)
	}
	// Step-up with an oversized or malformed assertion: 413 / 401, no session change.
	var begin api.WebAuthnBegin
	h.mustCall(http.StatusOK, "POST", "/api/v1/mfa/webauthn/verify/begin", tok, nil, &begin)
	if st, e := h.call("POST", "/api/v1/mfa/verify", tok, []byte(`{"webauthn_ceremony":"`+begin.Ceremony+`","webauthn_response":{"id":`), nil); st != 400 || e.Code != airlock.EINVALID {
		t.Fatalf("truncated step-up body: %d %+v", st, e)
	}
	if st, e := h.call("POST", "/api/v1/mfa/verify", tok, factorBody{Ceremony: begin.Ceremony, Response: json.RawMessage(`{"id":"x"}`)}, nil); st != 401 {
		t.Fatalf("garbage assertion: %d %+v", st, e)
	}
	h.settle()

	// Tokens: missing, forged, logged out, idle, past the lifetime.
	for name, bad := range map[string]string{"missing": "", "forged": "al_" + strings.Repeat("A", 43), "login challenge": "lc_nope"} {
		if st, e := h.call("GET", "/api/v1/whoami", bad, nil, nil); st != 401 || e.Code != airlock.EUNAUTHORIZED {
			t.Fatalf("%s token: %d %+v", name, st, e)
		}
	}
	h.mustCall(http.StatusOK, "POST", "/api/v1/logout", tok, nil, nil)
	for _, p := range []struct{ method, path string }{{"GET", "/api/v1/whoami"}, {"GET", "/api/v1/mfa/factors"}, {"POST", "/api/v1/mfa/webauthn/verify/begin"}, {"POST", "/api/v1/logout"}} {
		if st, e := h.call(p.method, p.path, tok, nil, nil); st != 401 || e.Code != airlock.EUNAUTHORIZED {
			t.Fatalf("%s %s with a logged-out token: %d %+v", p.method, p.path, st, e)
		}
	}
	// Idle: the harness's idle timeout is 8h.
	var login api.LoginResponse
	h.mustCall(http.StatusOK, "POST", "/api/v1/login/factor", "", h.loginBody("admin", waAdminPassword, key, rp, 1), &login)
	clk.Advance(8*time.Hour + time.Minute)
	if st, e := h.call("GET", "/api/v1/whoami", login.Token, nil, nil); st != 401 || !strings.Contains(e.Message, "idle") {
		t.Fatalf("idle token: %d %+v", st, e)
	}
	// Lifetime (12h): used every hour, the session still ends.
	h.mustCall(http.StatusOK, "POST", "/api/v1/login/factor", "", h.loginBody("admin", waAdminPassword, key, rp, 2), &login)
	for range 11 {
		clk.Advance(time.Hour)
		h.mustCall(http.StatusOK, "GET", "/api/v1/whoami", login.Token, nil, nil)
	}
	clk.Advance(time.Hour)
	if st, e := h.call("GET", "/api/v1/whoami", login.Token, nil, nil); st != 401 || !strings.Contains(e.Message, "expired") {
		t.Fatalf("token past its lifetime: %d %+v", st, e)
	}
	// An expired login challenge cannot start a ceremony.
	chal := h.passwordStep("admin", waAdminPassword)
	clk.Advance(6 * time.Minute)
	if st, e := h.call("POST", "/api/v1/login/webauthn/begin", "", map[string]string{"challenge": chal}, nil); st != 401 {
		t.Fatalf("expired login challenge: %d %+v", st, e)
	}
}
