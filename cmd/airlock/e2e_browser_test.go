package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// These tests drive the web console in a real headless Chromium (Debian's
// package) against the in-process server, with Chrome's own virtual
// authenticator for passkeys. Set AIRLOCK_SCREENSHOTS=DIR to save
// screenshots of the main pages (`make screenshots`).

// tab is one browser context: its own cookie jar, like its own person.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (h *harness) newTab(browser context.Context) *tab {
	h.t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	h.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		h.t.Fatalf("open tab: %v", err)
	}
	return &tab{t: h.t, ctx: ctx, base: h.cfg.PublicURL}
}

// do runs steps with a bound, failing the test on error.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		b.t.Fatalf("%s: %v\nat %s\n%s", what, err, loc, body)
	}
}

// clickAndWait clicks click and waits until wait is visible. A click that
// starts a navigation can race chromedp's node lookups ("Could not find
// node with given id"): then it checks whether the page got there anyway,
// and clicks again only if the button is still there and nothing came.
func (b *tab) clickAndWait(what, click, wait string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(click)), chromedp.WaitVisible(chromedp.CSS(wait)))
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Could not find node with given id") || attempt >= 2 || time.Now().After(deadline) {
			b.do(what, chromedp.WaitVisible(chromedp.CSS(wait))) // fails with the page's text
			return
		}
		ctx, cancel = context.WithTimeout(b.ctx, 5*time.Second)
		err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(wait)))
		cancel()
		if err == nil {
			return
		}
	}
}

func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

func (b *tab) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

// text returns the visible text of the first match of sel ("" if none).
func (b *tab) text(sel string) string {
	b.t.Helper()
	return b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel))
}

// waitText waits until sel's text contains want.
func (b *tab) waitText(sel, want string) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := b.text(sel)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s never showed %q; it shows %q (page: %s)", sel, want, got, b.text("body"))
		}
		time.Sleep(100 * time.Millisecond) // polling the browser, which says nothing when the page changes
	}
}

func (b *tab) location() string {
	b.t.Helper()
	return b.eval("location.pathname + location.search")
}

// shot saves a screenshot when AIRLOCK_SCREENSHOTS names a directory.
func (b *tab) shot(name string) {
	b.t.Helper()
	dir := os.Getenv("AIRLOCK_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// cookie returns the value of the browser's cookie name.
func (b *tab) cookie(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	var val string
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		cs, err := getCookies(ctx, t, b.base)
		for _, c := range cs {
			if c.Name == name {
				val = c.Value
			}
		}
		return err
	}))
	if err != nil {
		b.t.Fatalf("cookies: %v", err)
	}
	return val
}

// passwordStep fills the first sign-in form.
func (b *tab) passwordStep(user, password string) {
	b.t.Helper()
	b.do("sign in as "+user,
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SetValue(chromedp.CSS("#user"), user),
		chromedp.SetValue(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("#factor")))
}

func (b *tab) signInTOTP(user, password, code string) {
	b.t.Helper()
	b.open("/signin")
	b.passwordStep(user, password)
	b.do("TOTP step",
		chromedp.SetValue(chromedp.CSS("#otp"), code),
		chromedp.Click(chromedp.CSS("#otp-submit")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")))
}

func (b *tab) addAuthenticator() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}}); err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
}

var numberRE = regexp.MustCompile(`Tap (\d+)`)

func TestE2EBrowserConsole(t *testing.T) {
	needOathtool(t)
	browser := testenv.Chromium(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin, alice, bob := t.TempDir(), t.TempDir(), t.TempDir()
	adminSecret := h.bootstrapAdmin(admin, "admin", "admin password 1")
	h.must(admin, "alice password 1\nalice password 1\n", "admin", "users", "add", "alice", "--group", "devs", "--password-stdin")
	h.must(admin, "bob password 123\nbob password 123\n", "admin", "users", "add", "bob", "--group", "leads", "--password-stdin")
	t.Setenv("PROD_DB_READ", "s3cret-read-password")
	t.Setenv("PROD_DB_WRITE", "s3cret-write-password")
	h.must(admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", "127.0.0.1:5432",
		"--credential", "read=app_ro:env:PROD_DB_READ", "--credential", "write=app_rw:env:PROD_DB_WRITE")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte(teamPolicy), 0o600)
	h.must(admin, "", "policy", "apply", "-f", pol)
	h.must(alice, "alice password 1\n", "login", "--user", "alice", "--password-stdin")
	aliceSecret := h.enrollTOTP(alice)
	h.must(bob, "bob password 123\n", "login", "--user", "bob", "--password-stdin")
	bobSecret := h.enrollTOTP(bob)

	// Alice's laptop: sign in with password + TOTP.
	a := h.newTab(browser)
	h.step()
	a.open("/signin")
	a.shot("signin")
	a.passwordStep("alice", "alice password 1")
	a.shot("signin-factor")
	a.do("TOTP step",
		chromedp.SetValue(chromedp.CSS("#otp"), totp(t, aliceSecret, clk.Now())),
		chromedp.Click(chromedp.CSS("#otp-submit")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")))
	if got := a.text("#whoami"); got != "alice" {
		t.Fatalf("signed in as %q", got)
	}
	a.shot("home")
	// The session cookie is HttpOnly, SameSite=Lax and not readable by scripts.
	if js := a.eval("document.cookie"); strings.Contains(js, "airlock_session") {
		t.Fatalf("session cookie readable from JavaScript: %q", js)
	}
	sessionCookie := a.cookie(api.SessionCookie)
	if sessionCookie == "" {
		t.Fatal("no session cookie")
	}

	t.Log("== passkey")
	func() {
		// Register a passkey with Chrome's virtual authenticator (user
		// verification: the biometric case) while MFA is fresh.
		a.addAuthenticator()
		a.open("/factors")
		a.do("add passkey", chromedp.Click(chromedp.CSS("#add-webauthn")))
		a.waitText("#factors", "webauthn")
		a.shot("factors")
		// Sign out and back in with password + passkey.
		a.do("sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
		a.passwordStep("alice", "alice password 1")
		a.clickAndWait("passkey step", "#signin-webauthn", "#whoami")
		// Only a passkey session may make this browser a push device.
		a.open("/factors")
		a.do("register push device", chromedp.Click(chromedp.CSS("#add-push")), chromedp.WaitVisible(chromedp.CSS("#push-device-on")))
	}()

	var reqID string
	b := h.newTab(browser)
	t.Log("== request-approve-revoke")
	func() {
		a.open("/request")
		a.do("fill request",
			chromedp.SetValue(chromedp.CSS("#choice"), "prod-db|read"),
			chromedp.SetValue(chromedp.CSS("#duration"), "1h0m0s"),
			chromedp.SetValue(chromedp.CSS("#reason"), "INC-42 investigate"),
			chromedp.Click(chromedp.CSS("#preview")),
			chromedp.WaitVisible(chromedp.CSS("#dry-run")))
		if got := a.text("#approvers"); !strings.Contains(got, "bob") {
			t.Fatalf("dry run approvers: %q", got)
		}
		a.shot("request")
		a.do("submit request", chromedp.Click(chromedp.CSS("#submit-request")), chromedp.WaitVisible(chromedp.CSS("#request-state")))
		reqID = strings.TrimPrefix(strings.SplitN(a.location(), "?", 2)[0], "/requests/")
		if !strings.HasPrefix(reqID, "req_") || a.text("#request-state") != "pending" {
			t.Fatalf("after request: %s %q", a.location(), a.text("#request-state"))
		}

		// Bob follows the notification's deep link: sign-in first, then the request.
		b.open("/requests/" + reqID)
		if loc := b.location(); !strings.HasPrefix(loc, "/signin?next=") {
			t.Fatalf("deep link without a session went to %s", loc)
		}
		h.step()
		b.passwordStep("bob", "bob password 123")
		b.do("TOTP step", chromedp.SetValue(chromedp.CSS("#otp"), totp(t, bobSecret, clk.Now())),
			chromedp.Click(chromedp.CSS("#otp-submit")), chromedp.WaitVisible(chromedp.CSS("#review-form")))
		if loc := b.location(); loc != "/requests/"+reqID {
			t.Fatalf("deep link landed on %s", loc)
		}
		// Stale MFA: approving is refused until a fresh code is given inline.
		clk.Advance(6 * time.Minute)
		b.open("/requests/" + reqID)
		b.do("approve stale", chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#error")))
		if got := b.text("#error"); !strings.Contains(got, "fresh second factor") {
			t.Fatalf("stale approve: %q", got)
		}
		b.open("/approvals")
		b.waitText("#to-review", reqID)
		b.shot("approvals")
		b.open("/requests/" + reqID)
		b.do("approve", chromedp.SetValue(chromedp.CSS("#comment"), "ok"),
			chromedp.SetValue(chromedp.CSS("#review-otp"), totp(t, bobSecret, clk.Now())),
			chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		b.waitText("#request-state", "approved")
		b.waitText("#grant", "left")
		b.shot("request-approved")

		// Alice sees the grant with a live countdown, then revokes it.
		a.open("/my")
		first := a.waitText("#grants .countdown", "m ")
		if !strings.HasPrefix(first, "59m") && !strings.HasPrefix(first, "1h") {
			t.Fatalf("countdown shows %q for a 1h grant", first)
		}
		deadline := time.Now().Add(5 * time.Second)
		for a.text("#grants .countdown") == first {
			if time.Now().After(deadline) {
				t.Fatalf("countdown does not tick: %q", first)
			}
			time.Sleep(200 * time.Millisecond) // real time must pass: the countdown ticks on the browser's clock
		}
		a.shot("my-access")
		a.do("revoke", chromedp.Click(chromedp.CSS(".js-revoke")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		a.waitText("#grants .state", "revoked")
		b.open("/requests/" + reqID)
		b.waitText("#grant", "revoked")
	}()

	t.Log("== push")
	func() {
		// Alice's laptop (a) is her push device and has a console page open.
		a.open("/my")
		c := h.newTab(browser)
		pushLogin := func() string {
			c.open("/signin")
			c.passwordStep("alice", "alice password 1")
			c.do("send push", chromedp.Click(chromedp.CSS("#signin-push")))
			m := numberRE.FindStringSubmatch(c.waitText("#push-number", "Tap"))
			a.do("push prompt", chromedp.WaitVisible(chromedp.CSS("#push-prompt button.choice")))
			return m[1]
		}
		n := pushLogin()
		a.shot("push-prompt")
		a.do("tap the right number", chromedp.Click(chromedp.CSS(`#push-choices button[data-number="`+n+`"]`)))
		a.waitText("#push-result", "Approved")
		c.do("signed in by push", chromedp.WaitVisible(chromedp.CSS("#whoami")))
		c.do("sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))

		// The wrong number refuses the sign-in.
		a.open("/my")
		n = pushLogin()
		a.do("tap a wrong number", chromedp.Click(chromedp.CSS(`#push-choices button.choice:not([data-number="`+n+`"])`)))
		a.waitText("#push-result", "Refused")
		c.waitText("#factor-status", "refused")
		if c.text("#whoami") != "" {
			t.Fatal("signed in after a wrong number")
		}
	}()

	t.Log("== csrf")
	func() {
		for _, path := range []string{"/signout", "/grants/gr_x/revoke", "/api/v1/logout"} {
			req, _ := http.NewRequest("POST", h.url+path, strings.NewReader("reason=x"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "http://evil.example")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: sessionCookie})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-site POST %s: status %d, want 403", path, resp.StatusCode)
			}
		}
		// The session survived the attempts.
		a.open("/my")
		a.do("still signed in", chromedp.WaitVisible(chromedp.CSS("#whoami")))
	}()

	t.Log("== audit")
	func() {
		d := h.newTab(browser)
		h.step()
		d.signInTOTP("admin", "admin password 1", totp(t, adminSecret, clk.Now()))
		d.open("/audit?action=" + url.QueryEscape("mfa.push_*"))
		d.waitText("#verify", "OK")
		events := d.text("#events")
		for _, want := range []string{"mfa.push_approved", "mfa.push_denied", "mfa.push_sent"} {
			if !strings.Contains(events, want) {
				t.Fatalf("audit search lacks %s:\n%s", want, events)
			}
		}
		d.open("/audit?user=alice&resource=prod-db")
		d.waitText("#events", "grant.revoked")
		d.shot("audit")
	}()

	t.Log("== login-web")
	func() {
		// `airlock login --web` in a fresh home: it prints a URL with the
		// user code and waits; Alice approves in her browser.
		home := t.TempDir()
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() { done <- h.runTo(out, home, "", "login", "--web") }()
		var link string
		deadline := time.Now().Add(15 * time.Second)
		for link == "" {
			if m := regexp.MustCompile(`http://\S+/device\?code=\S+`).FindString(out.String()); m != "" {
				link = m
			}
			if time.Now().After(deadline) {
				t.Fatalf("no login URL printed: %s", out.String())
			}
			time.Sleep(50 * time.Millisecond) // polling the CLI's output for the URL it prints
		}
		if strings.Contains(link, "wl_") || strings.Contains(out.String(), "wl_") {
			t.Fatalf("poll token shown to the user: %s", out.String())
		}
		a.do("open device page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#user-code")))
		code := a.text("#user-code")
		if !strings.Contains(link, code) {
			t.Fatalf("device page shows %q for %s", code, link)
		}
		a.shot("cli-login")
		// Step up with the passkey, then approve.
		a.do("step up with passkey", chromedp.Click(chromedp.CSS(".js-stepup-webauthn")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		a.do("approve CLI", chromedp.Click(chromedp.CSS("#device-approve")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("login --web: %v\n%s", err, out.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("login --web did not finish: %s", out.String())
		}
		if who := h.must(home, "", "whoami"); !strings.Contains(who, "alice") || !strings.Contains(who, "webauthn") {
			t.Fatalf("whoami after login --web: %s", who)
		}
	}()
}

func getCookies(ctx context.Context, t *chromedp.Target, u string) ([]*network.Cookie, error) {
	res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		return nil, err
	}
	return res.Cookies, nil
}

// runTo is harness.run with the command's output going to w while it runs.
func (h *harness) runTo(w io.Writer, home, in string, args ...string) error {
	cliMu.Lock()
	defer cliMu.Unlock()
	os.Setenv("AIRLOCK_HOME", home)
	global = globalOpts{}
	stdin = strings.NewReader(in)
	root := newRootCmd()
	root.SetOut(w)
	root.SetErr(w)
	root.SetArgs(append([]string{"--server", h.url}, args...))
	if err := root.ExecuteContext(context.Background()); err != nil {
		return fmt.Errorf("%s: %w", userMessage(err), err)
	}
	return nil
}

// TestE2EBrowserAdmin does the tutorial's admin steps in the console: add a
// user, add a resource with a brokered password, apply a policy (a broken
// one first), with a stale second factor refreshed inline.
func TestE2EBrowserAdmin(t *testing.T) {
	needOathtool(t)
	browser := testenv.Chromium(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	adminSecret := h.bootstrapAdmin(t.TempDir(), "admin", "admin password 1")

	d := h.newTab(browser)
	h.step()
	d.signInTOTP("admin", "admin password 1", totp(t, adminSecret, clk.Now()))
	d.do("admin link", chromedp.Click(chromedp.CSS("#nav-admin")), chromedp.WaitVisible(chromedp.CSS("#user-form")))

	// A stale factor: adding a user is refused until a code is given.
	clk.Advance(6 * time.Minute)
	d.open("/admin/users")
	d.do("add user stale",
		chromedp.SetValue(chromedp.CSS("#user-name"), "alice"),
		chromedp.SetValue(chromedp.CSS("#user-groups"), "devs"),
		chromedp.SetValue(chromedp.CSS("#user-password"), "alice password 1"),
		chromedp.Click(chromedp.CSS("#user-add")), chromedp.WaitVisible(chromedp.CSS("#error")))
	if got := d.text("#error"); !strings.Contains(got, "fresh second factor") {
		t.Fatalf("stale add user: %q", got)
	}
	d.do("add user",
		chromedp.SetValue(chromedp.CSS("#user-password"), "alice password 1"),
		chromedp.SetValue(chromedp.CSS("#user-otp"), totp(t, adminSecret, clk.Now())),
		chromedp.Click(chromedp.CSS("#user-add")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	d.waitText("#users", "alice")
	d.waitText("#groups", "devs")

	const pw = "browser-brokered-s3cret"
	d.open("/admin/resources")
	d.do("add resource",
		chromedp.SetValue(chromedp.CSS("#res-name"), "prod-db"),
		chromedp.SetValue(chromedp.CSS("#res-addr"), "127.0.0.1:5544"),
		chromedp.SetValue(chromedp.CSS("#res-database"), "app"),
		chromedp.SetValue(chromedp.CSS("#res-labels"), "env=prod"),
		chromedp.SetValue(chromedp.CSS("#cred-level-0"), "read"),
		chromedp.SetValue(chromedp.CSS("#cred-user-0"), "app_ro"),
		chromedp.SetValue(chromedp.CSS("#cred-password-0"), pw),
		chromedp.Click(chromedp.CSS("#res-add")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := d.waitText("#resources", "prod-db"); !strings.Contains(got, "read") {
		t.Fatalf("resources: %q", got)
	}
	if html := d.eval("document.documentElement.outerHTML"); strings.Contains(html, pw) {
		t.Fatal("the brokered password is in the page")
	}

	d.open("/admin/policy")
	d.do("apply a broken policy",
		chromedp.SetValue(chromedp.CSS("#policy-text"), "version: 1\nrules:\n  - name: x\n    who: {groups: [devs]\n"),
		chromedp.Click(chromedp.CSS("#policy-apply")), chromedp.WaitVisible(chromedp.CSS("#diagnostics")))
	if got := d.text("#diagnostics"); !strings.Contains(got, "policy.yaml:") {
		t.Fatalf("diagnostics: %q", got)
	}
	d.waitText("#policy-version", "No policy applied yet")
	d.do("apply the policy",
		chromedp.SetValue(chromedp.CSS("#policy-text"), teamPolicy),
		chromedp.Click(chromedp.CSS("#policy-apply")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	d.waitText("#policy-version", "Version 1, applied by admin")
	d.waitText("#policy-diff", "devs-read-prod")
	d.shot("admin")
}
