package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

const httpPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true}
rules:
  - name: devs-dash
    who: {groups: [devs]}
    resources: {names: [dash]}
    access: [view, admin]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

type echoReply struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// TestE2EHTTPThroughGateway runs `airlock curl` and `airlock proxy http`
// (the real CLI as processes, the real curl) through the HTTP gateway to a
// real upstream app process: no grant, no request; a view grant reads but
// cannot POST; the app gets the signed identity (verified here with
// golang-jwt against the server's JWKS) and never Airlock's token; every
// request is audited; a revoke cuts a live Server-Sent-Events stream and the
// next request gets 401 with the reason.
func TestE2EHTTPThroughGateway(t *testing.T) {
	needOathtool(t)
	app := testenv.StartHTTPApp(t, testenv.HTTPAppOptions{})
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.HTTPAppsAddr = freeAddr(t) })
	tm := setupTeam(t, h, httpPolicy)
	const secret = "s3cret-dash-admin-token"
	h.fresh(tm.admin, tm.adminSecret)
	out, err := h.runProc(tm.admin, []string{"DASH_TOKEN=" + secret}, "admin", "resources", "add", "dash", "--kind", "http", "--addr", app.URL,
		"--level", "view", "--allow", "view=GET,HEAD /", "--credential", "admin=:env:DASH_TOKEN")
	if err != nil {
		t.Fatalf("add http resource: %v\n%s", err, out)
	}

	// No grant: nothing is minted, nothing reaches the app.
	out, err = h.runProc(tm.alice, nil, "curl", "dash", "/echo")
	if err == nil || !strings.Contains(out, "no active grant") {
		t.Fatalf("curl without a grant: err=%v\n%s", err, out)
	}

	g := h.grant(tm, "dash", "view")
	out, err = h.runProc(tm.alice, nil, "curl", "dash", "/echo")
	if err != nil {
		t.Fatalf("airlock curl: %v\n%s", err, out)
	}
	var echo echoReply
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &echo); err != nil {
		t.Fatalf("echo reply: %v\n%s", err, out)
	}
	hdr := http.Header(echo.Headers)
	if hdr.Get("Authorization") != "" {
		t.Fatalf("the view level brokers nothing, yet the app got Authorization %q", hdr.Get("Authorization"))
	}
	if xf := hdr.Get("X-Forwarded-Host"); !strings.HasPrefix(xf, "dash.apps.localhost:") {
		t.Fatalf("X-Forwarded-Host = %q", xf)
	}
	// The identity assertion verifies with a library other than the issuer's,
	// against the published JWKS.
	claims := verifyIdentity(t, h, hdr.Get("X-Airlock-Identity"), "dash")
	if claims["name"] != "alice" || claims["grant"] != g.ID || claims["access"] != "view" {
		t.Fatalf("identity claims: %v", claims)
	}

	// A view grant cannot POST: refused at the gateway, never forwarded.
	before := app.Stats(t).Routes["POST /api/items"]
	out, _ = h.runProc(tm.alice, nil, "curl", "dash", "/api/items", "-X", "POST", "-d", `{"name":"x"}`, "-w", "\n%{http_code}")
	if !strings.HasSuffix(strings.TrimSpace(out), "403") || !strings.Contains(out, "does not allow POST") {
		t.Fatalf("POST on a view grant: %s", out)
	}
	if n := app.Stats(t).Routes["POST /api/items"]; n != before {
		t.Fatalf("the app saw the refused POST (%d → %d)", before, n)
	}

	// Every request is audited: http.request before forwarding (no header
	// values), http.response after it.
	h.fresh(tm.admin, tm.adminSecret)
	waitFor(t, func() bool {
		req, resp, denied := false, false, false
		for _, e := range h.auditEvents(tm.admin, "http.*") {
			var d struct {
				Method, Path string
				Status       int
			}
			json.Unmarshal(e.Details, &d)
			switch {
			case e.Action == "http.request" && e.Outcome == "success" && d.Path == "/echo" && e.GrantID == g.ID && e.SessionID != "":
				req = true
			case e.Action == "http.response" && d.Status == 200:
				resp = true
			case e.Action == "http.request" && e.Outcome == "denied" && d.Method == "POST":
				denied = true
			}
			if strings.Contains(string(e.Details), "Authorization") || strings.Contains(string(e.Details), "alh_") {
				t.Fatalf("an http event carries a header or a token: %s", e.Details)
			}
		}
		return req && resp && denied
	})

	// A long-lived proxy; an SSE stream through it is cut when the grant
	// is revoked, and the next request gets 401 with the reason.
	port := freeAddr(t)
	port = port[strings.LastIndex(port, ":")+1:]
	proxy := h.startProc(tm.alice, nil, nil, "proxy", "http", "dash", "--port", port)
	t.Cleanup(proxy.kill)
	base := "http://127.0.0.1:" + port
	waitFor(t, func() bool { resp, err := http.Get(base + "/next"); return err == nil && resp.Body.Close() == nil })
	resp, err := http.Get(base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("sse: %v", err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		ended <- err
	}()
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the SSE stream was not cut within 3 s of the revoke")
	}
	app.WaitStats(t, 5*time.Second, func(s testenv.HTTPAppStats) bool { return s.SSEOpen == 0 })
	resp2, err := http.Get(base + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Fatalf("after revoke: %d %s", resp2.StatusCode, body)
	}

	// An admin grant brokers the secret to the app; it never appears in the
	// audit log.
	h.grant(tm, "dash", "admin")
	headers := filepath.Join(t.TempDir(), "headers")
	out, err = h.runProc(tm.alice, nil, "curl", "--access", "admin", "dash", "/echo", "-D", headers)
	if err != nil {
		t.Fatalf("airlock curl --access admin: %v\n%s", err, out)
	}
	echo = echoReply{}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &echo); err != nil {
		t.Fatalf("echo reply: %v\n%s", err, out)
	}
	if got := http.Header(echo.Headers).Get("Authorization"); got != "Bearer "+secret {
		t.Fatalf("the app got Authorization %q, want the brokered bearer token", got)
	}
	if b, _ := os.ReadFile(headers); strings.Contains(string(b), secret) || len(b) == 0 {
		t.Fatalf("response headers carry the brokered secret (or are missing):\n%s", b)
	}
	if strings.Contains(h.logs.String(), secret) {
		t.Fatal("the server log carries the brokered secret")
	}
	export := h.must(tm.admin, "", "--output", "json", "audit", "tail", "-n", "500")
	if strings.Contains(export, secret) {
		t.Fatal("the brokered secret is in the audit log")
	}
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "session.ended") {
			var d struct {
				EndReason string `json:"end_reason"`
			}
			json.Unmarshal(e.Details, &d)
			if e.GrantID == g.ID && d.EndReason == "grant_revoked" {
				return true
			}
		}
		return false
	})
}

// verifyIdentity checks an identity assertion against the server's JWKS
// with golang-jwt and returns its claims.
func verifyIdentity(t *testing.T, h *harness, token, audience string) jwt.MapClaims {
	t.Helper()
	resp, err := http.Get(h.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, Kid, X string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err == nil && k.Kty == "OKP" && k.Crv == "Ed25519" {
			keys[k.Kid] = ed25519.PublicKey(x)
		}
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(audience), jwt.WithIssuer(h.cfg.PublicURL), jwt.WithExpirationRequired(), jwt.WithTimeFunc(h.clock.Now))
	if err != nil {
		t.Fatalf("identity assertion %q does not verify: %v", token, err)
	}
	return claims
}

// TestE2EHTTPBrowser drives a real Chromium to an app behind the HTTP
// gateway: sent to the console to sign in, offered the request form while
// there is no grant, sent through to the app (its cookies, redirects and
// pages working on its own host) once bob approves, a WebSocket the page
// opened cut by a revoke, and sent back to the request page when the grant
// has ended.
func TestE2EHTTPBrowser(t *testing.T) {
	needOathtool(t)
	app := testenv.StartHTTPApp(t, testenv.HTTPAppOptions{})
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.HTTPAppsAddr = freeAddr(t) })
	tm := setupTeam(t, h, httpPolicy)
	h.fresh(tm.admin, tm.adminSecret)
	h.must(tm.admin, "", "admin", "resources", "add", "dash", "--kind", "http", "--addr", app.URL, "--level", "view", "--level", "admin")

	// Chromium trusts exactly the gateway's certificate (its key's SPKI).
	_, port, _ := net.SplitHostPort(h.cfg.HTTPAppsAddr)
	appURL := "https://dash.apps.localhost:" + port
	conn, err := tls.Dial("tcp", h.cfg.HTTPAppsAddr, &tls.Config{ServerName: "dash.apps.localhost", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	conn.Close()
	browser := testenv.Chromium(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	alice := h.newTab(browser)

	// No app session: the console's sign-in, then (no grant) the request
	// form for this app.
	alice.do("open the app", chromedp.Navigate(appURL+"/next?from=test"))
	alice.passwordStep("alice", "alice password 1")
	h.step()
	alice.do("TOTP step", chromedp.SetValue(chromedp.CSS("#otp"), totp(t, tm.aliceSecret, h.clock.Now())),
		chromedp.Click(chromedp.CSS("#otp-submit")), chromedp.WaitVisible(chromedp.CSS("#app-no-grant")))
	alice.do("request access from the app page",
		chromedp.SetValue(chromedp.CSS("#reason"), "INC-9 dashboards"),
		chromedp.Click(chromedp.CSS("#submit-request")))
	var reqID string
	waitFor(t, func() bool {
		out := h.must(tm.alice, "", "--output", "json", "requests", "--mine")
		var rs []airlock.AccessRequest
		json.Unmarshal([]byte(out), &rs)
		for _, r := range rs {
			if r.Resource == "dash" && r.State == airlock.RequestPending {
				reqID = r.ID
				return true
			}
		}
		return false
	})
	h.step()
	h.must(tm.bob, "", "approve", reqID, "--comment", "ok", "--otp", totp(t, tm.bobSecret, h.clock.Now()))

	// Approved: the app opens on its own host, where it was asked for.
	alice.do("open the app with a grant", chromedp.Navigate(appURL+"/next?from=test"), chromedp.WaitVisible(chromedp.CSS("#title")))
	if loc := alice.eval("location.href"); loc != appURL+"/next?from=test" {
		t.Fatalf("after sign-in the browser is at %s", loc)
	}
	// The app session cookie is invisible to scripts (HttpOnly); the app's
	// own cookie works; its Domain attribute was dropped (host-only).
	alice.do("app cookie", chromedp.Navigate(appURL+"/login-cookie"))
	alice.do("whoami", chromedp.Navigate(appURL+"/whoami"))
	if body := alice.text("body"); !strings.Contains(body, "app_session") || strings.Contains(body, "__Host-airlock") {
		t.Fatalf("cookies the app saw: %s", body)
	}
	if c := alice.eval("document.cookie"); strings.Contains(c, "airlock") {
		t.Fatalf("scripts can read the app session cookie: %q", c)
	}

	// A WebSocket the page opened is closed by a revoke.
	alice.do("home", chromedp.Navigate(appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#host")))
	alice.eval(`(() => { window.wsState = "connecting"; const ws = new WebSocket("wss://" + location.host + "/ws");
		ws.onopen = () => { window.wsState = "open"; }; ws.onclose = () => { window.wsState = "closed"; }; return "" })()`)
	waitFor(t, func() bool { return alice.eval("window.wsState") == "open" })
	var gs []airlock.Grant
	json.Unmarshal([]byte(h.must(tm.alice, "", "--output", "json", "grants")), &gs)
	h.fresh(tm.admin, tm.adminSecret)
	for _, g := range gs {
		if g.Resource == "dash" && g.State == airlock.GrantActive {
			h.must(tm.admin, "", "revoke", g.ID, "--reason", "done")
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for alice.eval("window.wsState") != "closed" {
		if time.Now().After(deadline) {
			t.Fatal("the WebSocket was not closed within 3 s of the revoke")
		}
		time.Sleep(50 * time.Millisecond) // polling the page's own state
	}
	app.WaitStats(t, 5*time.Second, func(s testenv.HTTPAppStats) bool { return s.WebSocketsOpen == 0 })

	// A new grant, then its end: the next page load goes back to the
	// console, which offers to request access again.
	h.grant(tm, "dash", "view")
	alice.do("open the app again", chromedp.Navigate(appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#host")))
	h.clock.Advance(2 * time.Hour)
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "session.ended") {
			if strings.Contains(string(e.Details), "grant_expired") {
				return true
			}
		}
		return false
	})
	alice.do("open the app after the grant's end", chromedp.Navigate(appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#app-no-grant")))
}
