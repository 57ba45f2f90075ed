package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

// apiAs returns an API client with the login session kept in home.
func (h *harness) apiAs(home string) *api.Client {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "session.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var st clientState
	if err := json.Unmarshal(b, &st); err != nil {
		h.t.Fatal(err)
	}
	return api.NewClient(h.url, st.Token)
}

// request files a request as home and returns its ID.
func (h *harness) request(home, resource, access, dur string) string {
	h.t.Helper()
	out := h.must(home, "", "--output", "json", "request", resource, "--access", access, "--for", dur, "--reason", "INC-9 "+access)
	var res struct {
		Request airlock.AccessRequest `json:"request"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Request.ID == "" {
		h.t.Fatalf("request %s %s: %v\n%s", resource, access, err, out)
	}
	return res.Request.ID
}

func (h *harness) applyPolicy(admin, yaml string) {
	h.t.Helper()
	pol := filepath.Join(h.t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(yaml), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.must(admin, "", "policy", "apply", "-f", pol)
}

func eventDetails(t *testing.T, e airlock.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if len(e.Details) > 0 {
		if err := json.Unmarshal(e.Details, &m); err != nil {
			t.Fatalf("details %s: %v", e.Details, err)
		}
	}
	return m
}

const reviewPolicyV1 = `version: 1
rules:
  - name: read-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
  - name: write-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 1h
    approval: {required: 1, groups: [leads]}
  - name: read-stage
    who: {groups: [devs]}
    resources: {names: [stage-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// reviewPolicyV2 lowers read-prod's max below 1h, drops write-prod and
// makes security, not leads, approve stage-db.
const reviewPolicyV2 = `version: 1
rules:
  - name: read-prod
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 30m
    approval: {required: 1, groups: [leads]}
  - name: read-stage
    who: {groups: [devs]}
    resources: {names: [stage-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [security]}
`

func addDBs(t *testing.T, h *harness, admin string, names ...string) {
	t.Helper()
	t.Setenv("E2E_DB_PW", "pw-not-used-here")
	for _, n := range names {
		h.must(admin, "", "admin", "resources", "add", n, "--kind", "postgres", "--addr", "127.0.0.1:5432",
			"--credential", "read=app_ro:env:E2E_DB_PW", "--credential", "write=app_rw:env:E2E_DB_PW")
	}
}

// TestE2EReviewUsesPolicyInForce (issue 13 item 9): approvals after a
// policy change are judged by the new policy — over its max, no longer
// allowed, approver no longer an approver — refused, audited, no grant.
func TestE2EReviewUsesPolicyInForce(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, "version: 1\n")
	h.fresh(tm.admin, tm.adminSecret)
	addDBs(t, h, tm.admin, "prod-db", "stage-db")
	h.applyPolicy(tm.admin, reviewPolicyV1)
	reqs := map[string]string{
		"duration over the new max": h.request(tm.alice, "prod-db", "read", "1h"),
		"rule removed":              h.request(tm.alice, "prod-db", "write", "30m"),
		"approver no longer one":    h.request(tm.alice, "stage-db", "read", "30m"),
	}
	h.applyPolicy(tm.admin, reviewPolicyV2)
	for name, id := range reqs {
		h.fresh(tm.bob, tm.bobSecret)
		out, err := h.run(tm.bob, "", "approve", id, "--comment", "ok")
		if err == nil {
			t.Errorf("%s: approval after the policy change succeeded:\n%s", name, out)
			continue
		}
		if !strings.Contains(err.Error(), "no longer") && !strings.Contains(err.Error(), "not an approver") {
			t.Errorf("%s: error does not say why: %v", name, err)
		}
	}
	var gs []airlock.Grant
	json.Unmarshal([]byte(h.must(tm.alice, "", "--output", "json", "grants")), &gs)
	if len(gs) != 0 {
		t.Fatalf("grants after refused approvals: %+v", gs)
	}
	h.fresh(tm.admin, tm.adminSecret)
	refused := map[string]bool{}
	for _, e := range h.auditEvents(tm.admin, "request.review_refused") {
		if e.Outcome == airlock.OutcomeDenied && eventDetails(t, e)["why"] != "" {
			refused[e.RequestID] = true
		}
	}
	for name, id := range reqs {
		if !refused[id] {
			t.Errorf("%s: no request.review_refused event for %s", name, id)
		}
	}
	if evs := h.auditEvents(tm.admin, "request.reviewed"); len(evs) != 0 {
		t.Errorf("request.reviewed recorded for refused approvals: %+v", evs)
	}
	// The requests were left as they were, and the one the policy no
	// longer allows can still be denied by the approver it was filed with.
	h.fresh(tm.bob, tm.bobSecret)
	h.must(tm.bob, "", "deny", reqs["rule removed"], "--comment", "policy changed")
	// A request the new policy allows is approved as before.
	id := h.request(tm.alice, "prod-db", "read", "20m")
	h.fresh(tm.bob, tm.bobSecret)
	if out := h.must(tm.bob, "", "approve", id); !strings.Contains(out, "Approved") {
		t.Fatalf("approve under the new policy: %s", out)
	}
}

// TestE2EMFARefusalsAudited (issue 13 item 10): a review or connect
// refused because MFA was stale, or a code was wrong, is an audit event
// with its reason.
func TestE2EMFARefusalsAudited(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, "version: 1\n")
	h.fresh(tm.admin, tm.adminSecret)
	addDBs(t, h, tm.admin, "prod-db")
	h.applyPolicy(tm.admin, reviewPolicyV1)
	g := h.grant(tm, "prod-db", "read")
	id := h.request(tm.alice, "prod-db", "write", "30m")

	clk.Advance(6 * time.Minute) // everyone's MFA is stale now
	if _, err := h.run(tm.bob, "", "approve", id); err == nil || !strings.Contains(err.Error(), "fresh second factor") {
		t.Fatalf("approve with stale MFA: %v", err)
	}
	err := h.apiAs(tm.alice).Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-db"}, nil)
	if !airlock.IsCode(err, airlock.EMFAREQUIRED) {
		t.Fatalf("connect token with stale MFA: %v", err)
	}
	err = h.apiAs(tm.alice).Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "prod-db", OTP: "000000"}, nil)
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("connect token with a wrong code: %v", err)
	}

	h.fresh(tm.admin, tm.adminSecret)
	var review []airlock.Event
	for _, e := range h.auditEvents(tm.admin, "request.review_refused") {
		if e.RequestID == id && e.Actor.Name == "bob" && e.Outcome == airlock.OutcomeDenied {
			review = append(review, e)
		}
	}
	if len(review) != 1 || !strings.Contains(eventDetails(t, review[0])["why"].(string), "MFA") {
		t.Fatalf("stale-MFA review refusal events: %+v", review)
	}
	var stale, wrong bool
	for _, e := range h.auditEvents(tm.admin, "connect.refused") {
		why, _ := eventDetails(t, e)["why"].(string)
		if e.Actor.Name != "alice" || e.GrantID != g.ID || e.Outcome != airlock.OutcomeDenied {
			continue
		}
		stale = stale || strings.Contains(why, "MFA not fresh")
		wrong = wrong || strings.Contains(why, "code was not accepted")
	}
	if !stale || !wrong {
		t.Fatalf("connect refusals audited: stale=%v wrong-code=%v", stale, wrong)
	}
}

// TestE2EOTPAlwaysVerified (issue 13 item 11): a code given with --otp is
// verified even while MFA is fresh, and a wrong one fails the command.
func TestE2EOTPAlwaysVerified(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, "version: 1\n")
	h.fresh(tm.admin, tm.adminSecret)
	addDBs(t, h, tm.admin, "prod-db")
	h.applyPolicy(tm.admin, reviewPolicyV1)
	id := h.request(tm.alice, "prod-db", "read", "30m")

	h.fresh(tm.bob, tm.bobSecret) // bob's MFA is fresh
	wrong := "000000"
	if totp(t, tm.bobSecret, clk.Now()) == wrong {
		wrong = "000001"
	}
	if out, err := h.run(tm.bob, "", "approve", id, "--otp", wrong); err == nil {
		t.Fatalf("approve --otp %s with fresh MFA succeeded:\n%s", wrong, out)
	}
	var rv struct {
		State string `json:"state"`
	}
	if err := h.apiAs(tm.bob).Do(context.Background(), "GET", "/api/v1/requests/"+id, nil, &rv); err != nil || rv.State != airlock.RequestPending {
		t.Fatalf("request after a wrong code: %+v %v", rv, err)
	}
	// The server side too: a code in the body is verified whatever the freshness.
	err := h.apiAs(tm.bob).Do(context.Background(), "POST", "/api/v1/requests/"+id+"/approve", map[string]string{"otp": wrong}, nil)
	if !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("API approve with a wrong code and fresh MFA: %v", err)
	}
	h.step()
	if out := h.must(tm.bob, "", "approve", id, "--otp", totp(t, tm.bobSecret, clk.Now())); !strings.Contains(out, "Approved") {
		t.Fatalf("approve with the right code: %s", out)
	}
}

// TestE2EPolicyVisibility (issue 13 item 7): someone who may request
// nothing cannot read the policy, check drafts against it, learn resource
// names from suggestions or approvers from a dry run.
func TestE2EPolicyVisibility(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, "version: 1\n")
	h.fresh(tm.admin, tm.adminSecret)
	addDBs(t, h, tm.admin, "prod-db")
	h.applyPolicy(tm.admin, reviewPolicyV1)
	carol, dave := t.TempDir(), t.TempDir()
	h.must(tm.admin, "carol password 1\n", "admin", "users", "add", "carol", "--password-stdin")
	h.must(tm.admin, "dave password 12\n", "admin", "users", "add", "dave", "--group", airlock.GroupPolicyReaders, "--password-stdin")
	h.must(carol, "carol password 1\n", "login", "--user", "carol", "--password-stdin")
	h.enrollTOTP(carol)
	h.must(dave, "dave password 12\n", "login", "--user", "dave", "--password-stdin")
	h.enrollTOTP(dave)

	if out, err := h.run(carol, "", "policy", "show"); err == nil || strings.Contains(out, "read-prod") {
		t.Fatalf("carol read the policy: %v\n%s", err, out)
	}
	if out, err := h.run(tm.alice, "", "policy", "show"); err == nil || strings.Contains(out, "read-prod") {
		t.Fatalf("alice (no policy reader) read the policy: %v\n%s", err, out)
	}
	err := h.apiAs(carol).Do(context.Background(), "POST", "/api/v1/policy/check", api.PolicyFiles{Files: map[string]string{"p.yaml": "version: 1\n"}}, nil)
	if !airlock.IsCode(err, airlock.EFORBIDDEN) {
		t.Fatalf("carol checked a draft against the live policy: %v", err)
	}
	if _, err := h.run(carol, "", "request", "prod-dbb", "--access", "read", "--for", "1h", "--reason", "x"); err == nil || strings.Contains(err.Error(), "prod-db?") || strings.Contains(err.Error(), "mean") {
		t.Fatalf("carol's did-you-mean: %v", err)
	}
	out, _ := h.run(carol, "", "--output", "json", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "x", "--dry-run")
	if strings.Contains(out, "bob") || strings.Contains(out, "leads") || strings.Contains(out, "read-prod") {
		t.Fatalf("carol's dry run names approvers or rules:\n%s", out)
	}
	// Eligible requesters still get suggestions and approvers; policy
	// readers and admins read the policy and check drafts.
	if _, err := h.run(tm.alice, "", "request", "prod-dbb", "--access", "read", "--for", "1h", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "did you mean prod-db?") {
		t.Fatalf("alice's did-you-mean: %v", err)
	}
	if out := h.must(tm.alice, "", "request", "prod-db", "--access", "read", "--for", "3h", "--reason", "x", "--dry-run"); !strings.Contains(out, "bob") || !strings.Contains(out, "leads") {
		t.Fatalf("alice's dry run (eligible, over the max) lacks approvers:\n%s", out)
	}
	for _, home := range []string{dave, tm.admin} {
		if out := h.must(home, "", "policy", "show"); !strings.Contains(out, "read-prod") {
			t.Fatalf("policy show for a reader:\n%s", out)
		}
		var res struct {
			Diff []string `json:"diff"`
		}
		if err := h.apiAs(home).Do(context.Background(), "POST", "/api/v1/policy/check", api.PolicyFiles{Files: map[string]string{"p.yaml": "version: 1\n"}}, &res); err != nil || len(res.Diff) == 0 {
			t.Fatalf("policy check for a reader: %v %+v", err, res)
		}
	}
}

// TestE2EAuditFollowIsAudited (issue 13 item 8): a following read of the
// audit log is itself audited, once, with its filter, and streams events
// written after it started.
func TestE2EAuditFollowIsAudited(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin := t.TempDir()
	secret := h.bootstrapAdmin(admin, "admin", "admin password 1")
	c := h.apiAs(admin)
	c.HTTP = &http.Client{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := c.Raw(ctx, "GET", "/api/v1/audit/events?follow=1&after=0&action=mfa.*", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan airlock.Event, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var e airlock.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	h.step()
	h.must(admin, "", "mfa", "verify", "--otp", totp(t, secret, clk.Now()))
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			seen = e.Action == "mfa.verified" && e.Time.Equal(clk.Now().Truncate(time.Microsecond))
		case <-deadline:
			t.Fatal("the event written after the follow started was not streamed")
		}
	}
	cancel()
	var reads []airlock.Event
	for _, e := range h.auditEvents(admin, "audit.read") {
		if d := eventDetails(t, e); d["follow"] == true {
			if f, _ := d["filter"].(map[string]any); f["action"] != "mfa.*" {
				t.Errorf("follow read without its filter: %s", e.Details)
			}
			reads = append(reads, e)
		}
	}
	if len(reads) != 1 {
		t.Fatalf("following reads audited: %d, want 1", len(reads))
	}
}

// TestE2EAuditFollowKeepsNoSessionAlive: an open `audit tail -f` is not
// activity. Its re-checks must neither keep the login session from
// idling out (an unattended terminal would stay logged in for ever) nor
// outlive the idle timeout themselves.
func TestE2EAuditFollowKeepsNoSessionAlive(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.SessionIdle = 15 * time.Minute })
	admin := t.TempDir()
	h.bootstrapAdmin(admin, "admin", "admin password 1")
	c := h.apiAs(admin)
	c.HTTP = &http.Client{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := c.Raw(ctx, "GET", "/api/v1/audit/events?follow=1&action=nothing.matches", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(ended) }()
	// 20 minutes without the user doing anything, while the stream polls.
	for range 4 {
		clk.Advance(5 * time.Minute)
		time.Sleep(3 * api.FollowPollInterval) // real time must pass: the stream polls on a real ticker; only the session clock is fake
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the follow stream outlived the login session's idle timeout")
	}
	if _, err := h.run(admin, "", "whoami"); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("the login session survived 20 idle minutes behind a follow stream: %v", err)
	}
}

// TestE2EPolicyVisibilityRefusals: someone the policy lets request nothing
// on a resource learns neither its access levels (from a request without
// --access) nor the names of the rules that refuse them (from a refusal
// or a dry run); a policy reader still sees the rule.
func TestE2EPolicyVisibilityRefusals(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, "version: 1\n")
	h.fresh(tm.admin, tm.adminSecret)
	addDBs(t, h, tm.admin, "prod-db")
	h.applyPolicy(tm.admin, reviewPolicyV1+`  - name: no-contractors-on-prod-after-incident-4711
    effect: deny
    who: {users: [carol]}
    resources: {names: [prod-db]}
    access: ["*"]
`)
	carol := t.TempDir()
	h.must(tm.admin, "carol password 1\n", "admin", "users", "add", "carol", "--password-stdin")
	h.must(carol, "carol password 1\n", "login", "--user", "carol", "--password-stdin")
	h.enrollTOTP(carol)
	if _, err := h.run(carol, "", "request", "prod-db", "--for", "1h", "--reason", "x"); err == nil || strings.Contains(err.Error(), "write") {
		t.Fatalf("carol learned prod-db's access levels: %v", err)
	}
	for _, args := range [][]string{
		{"request", "prod-db", "--access", "read", "--for", "1h", "--reason", "x"},
		{"--output", "json", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "x", "--dry-run"},
	} {
		out, err := h.run(carol, "", args...)
		if strings.Contains(out, "incident-4711") || (err != nil && strings.Contains(err.Error(), "incident-4711")) {
			t.Fatalf("carol learned a rule name from %v: %v\n%s", args, err, out)
		}
	}
	// The audit log keeps the real reason.
	found := false
	for _, e := range h.auditEvents(tm.admin, "request.refused") {
		found = found || strings.Contains(string(e.Details), "incident-4711")
	}
	if !found {
		t.Fatal("request.refused lost the rule that refused it")
	}
}

// TestE2EAuditFollowStreamsBounded: one user may hold only
// api.MaxFollowsPerUser following audit reads open at once (each polls the
// store twice a second for as long as it lasts); one more is refused with
// 429, and closing one frees its place.
func TestE2EAuditFollowStreamsBounded(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	admin := t.TempDir()
	h.bootstrapAdmin(admin, "admin", "admin password 1")
	c := h.apiAs(admin)
	c.HTTP = &http.Client{}
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := c.Raw(ctx, "GET", "/api/v1/audit/events?follow=1&action=nothing.matches", nil)
		if err != nil {
			cancel()
			return nil, nil
		}
		return resp, cancel
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := 0; i < api.MaxFollowsPerUser; i++ {
		resp, cancel := open()
		if resp == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("follow stream %d refused: %v", i+1, resp)
		}
		cancels = append(cancels, func() { cancel(); resp.Body.Close() })
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.Raw(ctx, "GET", "/api/v1/audit/events?follow=1", nil)
	if err == nil || airlock.ErrorCode(err) != airlock.ELOCKED {
		t.Fatalf("follow stream %d: err = %v, want ELOCKED (429)", api.MaxFollowsPerUser+1, err)
	}
	cancels[0]()
	cancels = cancels[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, cancel := open()
		if resp != nil && resp.StatusCode == http.StatusOK {
			cancels = append(cancels, func() { cancel(); resp.Body.Close() })
			break
		}
		if cancel != nil {
			cancel()
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed follow stream did not free its place")
		}
		time.Sleep(100 * time.Millisecond) // polling the server, which frees the place when it sees the close
	}
}
