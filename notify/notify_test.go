package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
)

const testSecret = "whsec-test-9f8e7d6c5b4a"

// recorder is an in-memory airlock.Auditor for unit tests.
type recorder struct {
	mu     sync.Mutex
	events []airlock.Event
	fail   bool
	seen   chan airlock.Event // optional: receives each recorded event
}

func (r *recorder) Record(_ context.Context, e airlock.Event) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return 0, errors.New("audit down")
	}
	r.events = append(r.events, e)
	if r.seen != nil {
		r.seen <- e
	}
	return int64(len(r.events)), nil
}

func (r *recorder) all() []airlock.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]airlock.Event(nil), r.events...)
}

func details(t *testing.T, e airlock.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Details, &m); err != nil {
		t.Fatalf("details %s: %v", e.Details, err)
	}
	return m
}

func secrets(ref string) (string, error) {
	switch ref {
	case "env:HOOK_SECRET":
		return testSecret, nil
	}
	return "", errors.New("no such secret")
}

var fixedNow = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func newTestNotifier(t *testing.T, channels []policy.Channel, logs *bytes.Buffer) (*Notifier, *recorder) {
	t.Helper()
	rec := &recorder{}
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	n := New(channels, secrets, rec, nil, logger, func() time.Time { return fixedNow })
	n.Backoff = func(int) time.Duration { return 0 }
	t.Cleanup(func() { _ = n.Close() })
	return n, rec
}

func flush(t *testing.T, n *Notifier) {
	t.Helper()
	if err := n.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

var msg = Message{
	Kind: KindRequestCreated, RequestID: "rq_1", User: "alice", Resource: "prod-db", Access: "read",
	Duration: time.Hour, Reason: "INC-42 <https://evil.example|click>", Ticket: "INC-42",
	ApproveURL: "https://airlock.example/r/rq_1/approve", DenyURL: "https://airlock.example/r/rq_1/deny",
	ConsoleURL: "https://airlock.example/r/rq_1",
}

func TestWebhookSignedAndAudited(t *testing.T) {
	type got struct {
		body []byte
		h    http.Header
	}
	received := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !VerifySignature(testSecret, r.Header.Get("X-Airlock-Timestamp"), b, r.Header.Get("X-Airlock-Signature")) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		received <- got{b, r.Header.Clone()}
	}))
	defer srv.Close()

	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL + "/hook?token=query-secret-123", SecretEnv: "HOOK_SECRET"}}, nil)
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)

	var g got
	select {
	case g = <-received:
	default:
		t.Fatalf("receiver got nothing valid; audit: %+v", rec.all())
	}
	if ts := g.h.Get("X-Airlock-Timestamp"); ts != strconv.FormatInt(fixedNow.Unix(), 10) {
		t.Errorf("timestamp header %q", ts)
	}
	if g.h.Get("Content-Type") != "application/json" || !strings.HasPrefix(g.h.Get("X-Airlock-Delivery"), "ntf_") {
		t.Errorf("headers %v", g.h)
	}
	var body map[string]any
	if err := json.Unmarshal(g.body, &body); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"kind": "request.created", "request_id": "rq_1", "user": "alice", "resource": "prod-db", "access": "read",
		"duration": "1h0m0s", "duration_seconds": float64(3600), "approve_url": msg.ApproveURL, "time": "2026-11-30T10:00:00Z",
		"text": "alice requests read on prod-db for 1h",
	} {
		if body[k] != want {
			t.Errorf("body[%q] = %v, want %v", k, body[k], want)
		}
	}
	evs := rec.all()
	if len(evs) != 1 || evs[0].Action != ActionDelivered || evs[0].Outcome != airlock.OutcomeSuccess ||
		evs[0].RequestID != "rq_1" || evs[0].Resource != "prod-db" || evs[0].Actor != airlock.SystemActor {
		t.Fatalf("audit = %+v", evs)
	}
	d := details(t, evs[0])
	if d["channel"] != "sec" || d["attempt"] != float64(1) || d["status"] != float64(200) || d["type"] != "webhook" {
		t.Errorf("details = %v", d)
	}
	if s := string(evs[0].Details); strings.Contains(s, testSecret) || strings.Contains(s, "query-secret-123") || strings.Contains(s, srv.URL) {
		t.Errorf("audit details leak secret or URL: %s", s)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "HOOK_SECRET"}}, nil)
	var waits []int
	var mu sync.Mutex
	n.Backoff = func(attempt int) time.Duration {
		mu.Lock()
		waits = append(waits, attempt)
		mu.Unlock()
		return 0
	}
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)

	evs := rec.all()
	if len(evs) != 3 {
		t.Fatalf("%d audit events, want 3: %+v", len(evs), evs)
	}
	for i, want := range []struct {
		action string
		status float64
	}{{ActionFailed, 503}, {ActionFailed, 503}, {ActionDelivered, 204}} {
		d := details(t, evs[i])
		if evs[i].Action != want.action || d["attempt"] != float64(i+1) || d["status"] != want.status {
			t.Errorf("event %d = %s %v, want %s attempt %d status %v", i, evs[i].Action, d, want.action, i+1, want.status)
		}
	}
	if calls.Load() != 3 || len(waits) != 2 || waits[0] != 1 || waits[1] != 2 {
		t.Errorf("calls %d, backoff asked for %v", calls.Load(), waits)
	}
}

func TestPermanentFailureGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "HOOK_SECRET"}}, &logs)
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)
	evs := rec.all()
	if len(evs) != 5 || calls.Load() != 5 {
		t.Fatalf("%d events, %d calls; want 5 attempts", len(evs), calls.Load())
	}
	for i, e := range evs {
		d := details(t, e)
		if e.Action != ActionFailed || e.Outcome != airlock.OutcomeFailure || d["attempt"] != float64(i+1) || d["final"] != (i == 4) {
			t.Errorf("event %d = %s %v", i, e.Action, d)
		}
	}
	if !strings.Contains(logs.String(), "delivery failed") || strings.Contains(logs.String(), testSecret) {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestClientErrorIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "HOOK_SECRET"}}, nil)
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)
	if evs := rec.all(); len(evs) != 1 || calls.Load() != 1 || details(t, evs[0])["final"] != true {
		t.Fatalf("400 was retried: %d calls, events %+v", calls.Load(), evs)
	}
}

func TestConnectionErrorScrubsURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T000/B000/slack-path-token?sig=query-token"
	srv.Close() // nothing listens any more
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "chat", Type: "slack", URL: url}}, nil)
	n.Attempts = 2
	n.Notify(t.Context(), []string{"chat"}, msg)
	flush(t, n)
	evs := rec.all()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	for _, e := range evs {
		s := string(e.Details)
		if strings.Contains(s, "slack-path-token") || strings.Contains(s, "query-token") {
			t.Errorf("audit leaks the URL: %s", s)
		}
		if details(t, e)["error"] == "" {
			t.Errorf("no error recorded: %s", s)
		}
	}
}

func TestMissingSecretFailsClosed(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "MISSING"}}, nil)
	n.Attempts = 1
	n.Notify(t.Context(), []string{"sec", "nope"}, msg)
	flush(t, n)
	if calls.Load() != 0 {
		t.Error("sent an unsigned webhook")
	}
	evs := rec.all()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	errs := map[string]string{}
	for _, e := range evs {
		d := details(t, e)
		errs[d["channel"].(string)] = d["error"].(string)
	}
	if errs["sec"] != "channel secret is unavailable" || errs["nope"] != "unknown channel" {
		t.Errorf("errors = %v", errs)
	}
}

func TestSlackPayload(t *testing.T) {
	received := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Airlock-Signature") != "" {
			t.Error("slack request carries a signature header")
		}
		b, _ := io.ReadAll(r.Body)
		received <- b
	}))
	defer srv.Close()
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "chat", Type: "slack", URLEnv: "SLACK_URL"}}, nil)
	n.secrets = func(ref string) (string, error) {
		if ref == "env:SLACK_URL" {
			return srv.URL + "/services/x\n", nil
		}
		return "", errors.New("no")
	}
	n.Notify(t.Context(), []string{"chat"}, msg)
	flush(t, n)
	var b []byte
	select {
	case b = <-received:
	default:
		t.Fatalf("nothing received; audit %+v", rec.all())
	}
	var p struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string                `json:"type"`
			Text     struct{ Text string } `json:"text"`
			Elements []struct {
				Text  struct{ Text string } `json:"text"`
				URL   string                `json:"url"`
				Style string                `json:"style"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Text != "alice requests read on prod-db for 1h" || len(p.Blocks) != 2 {
		t.Fatalf("payload %s", b)
	}
	if sec := p.Blocks[0].Text.Text; !strings.Contains(sec, "*Reason:* INC-42 &lt;https://evil.example|click&gt;") {
		t.Errorf("reason not escaped: %q", sec)
	}
	els := p.Blocks[1].Elements
	if len(els) != 3 || els[0].Text.Text != "Approve" || els[0].URL != msg.ApproveURL || els[0].Style != "primary" ||
		els[1].Text.Text != "Deny" || els[1].URL != msg.DenyURL || els[1].Style != "danger" || els[2].URL != msg.ConsoleURL {
		t.Errorf("buttons %+v", els)
	}
}

func TestCloseStopsRetries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "HOOK_SECRET"}}, nil)
	rec.seen = make(chan airlock.Event, 10)
	n.Backoff = func(int) time.Duration { return time.Hour }
	n.Notify(t.Context(), []string{"sec"}, msg)
	<-rec.seen // first attempt failed and is audited; the notifier now waits an hour
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	if len(evs) != 2 || evs[1].Action != ActionFailed || details(t, evs[1])["error"] != "notifier closed before retry" {
		t.Fatalf("events %+v", evs)
	}
	n.Notify(t.Context(), []string{"sec"}, msg) // dropped after Close
	flush(t, n)
	if len(rec.all()) != 2 {
		t.Error("message sent after Close")
	}
}

func TestAuditFailureDoesNotBlockDelivery(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	var logs bytes.Buffer
	n, rec := newTestNotifier(t, []policy.Channel{{Name: "sec", Type: "webhook", URL: srv.URL, SecretEnv: "HOOK_SECRET"}}, &logs)
	rec.fail = true
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)
	if calls.Load() != 1 || !strings.Contains(logs.String(), "cannot audit") {
		t.Errorf("calls %d logs %s", calls.Load(), logs.String())
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"kind":"request.created"}`)
	ts := "1796032800"
	good := Sign(testSecret, ts, body)
	tests := []struct {
		name, secret, ts string
		body             []byte
		header           string
		want             bool
	}{
		{"valid", testSecret, ts, body, good, true},
		{"wrong-secret", "other", ts, body, good, false},
		{"tampered-body", testSecret, ts, []byte(`{"kind":"request.approved"}`), good, false},
		{"tampered-timestamp", testSecret, "1796032801", body, good, false},
		{"no-prefix", testSecret, ts, body, strings.TrimPrefix(good, "sha256="), false},
		{"upper-hex", testSecret, ts, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"short", testSecret, ts, body, good[:20], false},
		{"not-hex", testSecret, ts, body, "sha256=" + strings.Repeat("zz", 32), false},
		{"empty-secret", "", ts, body, Sign("", ts, body), false},
		{"empty", testSecret, ts, body, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySignature(tt.secret, tt.ts, tt.body, tt.header); got != tt.want {
				t.Errorf("VerifySignature = %v, want %v", got, tt.want)
			}
		})
	}
	// The documented signed string: timestamp "." body.
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte("1700000000.{\"a\":1}"))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); Sign("k", "1700000000", []byte(`{"a":1}`)) != want {
		t.Errorf("Sign does not MAC timestamp + \".\" + body")
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := DefaultBackoff(i + 1); got != w {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

func TestResolveSecret(t *testing.T) {
	t.Setenv("AIRLOCK_TEST_SECRET", "s1")
	if v, err := ResolveSecret("env:AIRLOCK_TEST_SECRET"); err != nil || v != "s1" {
		t.Errorf("env: %q %v", v, err)
	}
	f := t.TempDir() + "/s"
	if err := writeFile(f, "s2\n"); err != nil {
		t.Fatal(err)
	}
	if v, err := ResolveSecret("file:" + f); err != nil || v != "s2" {
		t.Errorf("file: %q %v", v, err)
	}
	for _, bad := range []string{"env:AIRLOCK_TEST_UNSET", "file:/nonexistent/x", "vault:x", ""} {
		if _, err := ResolveSecret(bad); err == nil {
			t.Errorf("ResolveSecret(%q) succeeded", bad)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// FuzzVerifySignature checks that the header parser never panics and
// only accepts the signature Sign produces.
func FuzzVerifySignature(f *testing.F) {
	f.Add("secret", "1796032800", []byte(`{"kind":"x"}`), Sign("secret", "1796032800", []byte(`{"kind":"x"}`)))
	f.Add("s", "1", []byte{}, "sha256=")
	f.Add("s", "1", []byte("b"), "sha256=zz")
	f.Fuzz(func(t *testing.T, secret, ts string, body []byte, header string) {
		ok := VerifySignature(secret, ts, body, header)
		if ok && !strings.EqualFold(strings.TrimSpace(header), Sign(secret, ts, body)) {
			t.Fatalf("accepted a header Sign did not produce: %q", header)
		}
		if secret != "" && ts != "" && !VerifySignature(secret, ts, body, Sign(secret, ts, body)) {
			t.Fatal("rejected its own signature")
		}
	})
}

// A held statement's notification names the hold and carries the
// statement (escaped, its fences neutralised) and the reason.
func TestStatementHeldMessage(t *testing.T) {
	m := Message{Kind: KindStatementHeld, User: "alice", Resource: "prod-db", Access: "write", Reason: "INC-7",
		HoldID: "hold_1", Statement: "DELETE FROM orders /* ``` <@here> */"}
	if s := Summary(m); s != "alice's statement on prod-db waits for approval (airlock statements approve hold_1)" {
		t.Fatalf("summary %q", s)
	}
	b, err := slackBody(m)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Blocks []struct {
			Text struct{ Text string } `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	text := p.Blocks[0].Text.Text
	if !strings.Contains(text, "*Statement:*\n```DELETE FROM orders /* ''' &lt;@here&gt; */```") || !strings.Contains(text, "*Reason:* INC-7") {
		t.Fatalf("slack text %q", text)
	}
	j, _ := json.Marshal(m)
	if !strings.Contains(string(j), `"hold_id":"hold_1"`) || !strings.Contains(string(j), `"statement":"DELETE FROM orders`) {
		t.Fatalf("webhook body %s", j)
	}
}
