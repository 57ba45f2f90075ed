package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

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
