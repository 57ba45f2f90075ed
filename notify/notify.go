package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
)

// Audit actions written for each delivery attempt.
const (
	ActionDelivered = "notify.delivered"
	ActionFailed    = "notify.failed"
)

// Message kinds the rest of Airlock sends. Any string is accepted.
const (
	KindRequestCreated      = "request.created"
	KindRequestApproved     = "request.approved"
	KindRequestDenied       = "request.denied"
	KindBreakGlassActivated = "breakglass.activated"
	KindGrantRevoked        = "grant.revoked"
	KindGrantExpired        = "grant.expired"
	KindStatementHeld       = "statement.held"
)

// Message is one notification. It must not contain secrets: its fields
// are sent to third parties.
type Message struct {
	Kind       string        `json:"kind"`
	RequestID  string        `json:"request_id,omitempty"`
	GrantID    string        `json:"grant_id,omitempty"`
	User       string        `json:"user,omitempty"`
	Resource   string        `json:"resource,omitempty"`
	Access     string        `json:"access,omitempty"`
	Duration   time.Duration `json:"-"`
	Reason     string        `json:"reason,omitempty"`
	Ticket     string        `json:"ticket,omitempty"`
	ApproveURL string        `json:"approve_url,omitempty"`
	DenyURL    string        `json:"deny_url,omitempty"`
	ConsoleURL string        `json:"console_url,omitempty"`
	// HoldID and Statement: a statement held for approval (its text, at
	// most 4 KiB, never its parameters).
	HoldID    string `json:"hold_id,omitempty"`
	Statement string `json:"statement,omitempty"`
}

// Notifier delivers messages to channels. Create it with New; set
// Attempts and Backoff, if at all, before the first Notify. Its methods
// are safe for concurrent use.
type Notifier struct {
	// Attempts is how many times one message is tried per channel (default 5).
	Attempts int
	// Backoff returns how long to wait after failed attempt n (1-based)
	// before the next (default 0.5s·2^(n-1), at most 8s).
	Backoff func(attempt int) time.Duration

	secrets func(ref string) (string, error)
	audit   airlock.Auditor
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}

	mu       sync.Mutex
	channels map[string]policy.Channel
	closed   bool
	pending  int
	idle     chan struct{} // closed when pending is 0
}

// DefaultBackoff is 0.5s, 1s, 2s, 4s, 8s, 8s …
func DefaultBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(max(attempt-1, 0), 4)
	return min(d, 8*time.Second)
}

// New returns a Notifier for channels. secrets resolves a channel's secret
// or URL reference ("env:NAME" or "file:PATH", see policy.Channel.SecretRef);
// nil means ResolveSecret. audit receives one event per attempt. client
// nil means NewHTTPClient(ClientOptions{}); a client given should come
// from NewHTTPClient too, for its address checks. Redirects are never
// followed, whatever client's CheckRedirect says.
// logger nil discards logs; now nil means time.Now.
func New(channels []policy.Channel, secrets func(ref string) (string, error), audit airlock.Auditor, client *http.Client, logger *slog.Logger, now func() time.Time) *Notifier {
	if secrets == nil {
		secrets = ResolveSecret
	}
	if client == nil {
		client = NewHTTPClient(ClientOptions{})
	}
	client = withoutRedirects(client)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	n := &Notifier{
		Attempts: 5,
		Backoff:  DefaultBackoff,
		secrets:  secrets,
		audit:    audit,
		client:   client,
		log:      logger,
		now:      now,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, 8),
		idle:     idle,
	}
	n.SetChannels(channels)
	return n
}

// SetChannels replaces the known channels (after a policy change).
// Deliveries in flight keep the channel they started with.
func (n *Notifier) SetChannels(channels []policy.Channel) {
	m := make(map[string]policy.Channel, len(channels))
	for _, c := range channels {
		m[c.Name] = c
	}
	n.mu.Lock()
	n.channels = m
	n.mu.Unlock()
}

// Notify sends msg to each named channel in the background and returns
// at once. ctx is used only for its values; delivery outlives it. After
// Close, messages are dropped (and logged).
func (n *Notifier) Notify(ctx context.Context, channelNames []string, msg Message) {
	_ = ctx
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.log.Warn("notify: notifier closed, message dropped", "kind", msg.Kind, "channels", channelNames)
		return
	}
	type job struct {
		name string
		ch   policy.Channel
		ok   bool
	}
	var jobs []job
	seen := map[string]bool{}
	for _, name := range channelNames {
		if seen[name] {
			continue
		}
		seen[name] = true
		c, ok := n.channels[name]
		jobs = append(jobs, job{name, c, ok})
	}
	if len(jobs) > 0 && n.pending == 0 {
		n.idle = make(chan struct{})
	}
	n.pending += len(jobs)
	n.mu.Unlock()

	id := airlock.NewID("ntf")
	for _, j := range jobs {
		go func() {
			defer n.done()
			if !j.ok {
				n.record(msg, j.name, "", 1, 0, errors.New("unknown channel"), true)
				n.log.Error("notify: unknown channel", "channel", j.name, "kind", msg.Kind)
				return
			}
			select {
			case n.sem <- struct{}{}:
				defer func() { <-n.sem }()
			case <-n.ctx.Done():
				n.record(msg, j.name, j.ch.Type, 1, 0, errors.New("notifier closed"), true)
				return
			}
			n.deliver(j.ch, id, msg)
		}()
	}
}

func (n *Notifier) done() {
	n.mu.Lock()
	n.pending--
	if n.pending == 0 {
		close(n.idle)
	}
	n.mu.Unlock()
}

// Flush waits until every message handed to Notify so far has been
// delivered or given up, or ctx ends.
func (n *Notifier) Flush(ctx context.Context) error {
	n.mu.Lock()
	idle := n.idle
	n.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops retries and in-flight requests, waits for the delivery
// goroutines to finish (recording the failures) and drops later messages.
func (n *Notifier) Close() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	return n.Flush(context.Background())
}

// deliver tries one channel until success, a permanent failure, the last
// attempt, or Close.
func (n *Notifier) deliver(ch policy.Channel, id string, msg Message) {
	var body []byte
	var err error
	switch ch.Type {
	case policy.ChannelSlack:
		body, err = slackBody(msg)
	default:
		body, err = webhookBody(id, n.now(), msg)
	}
	if err != nil {
		n.record(msg, ch.Name, ch.Type, 1, 0, err, true)
		return
	}
	attempts := max(n.Attempts, 1)
	for attempt := 1; ; attempt++ {
		status, err := n.send(ch, id, body)
		if err == nil {
			n.record(msg, ch.Name, ch.Type, attempt, status, nil, true)
			return
		}
		var perm permanentError
		final := errors.As(err, &perm) || attempt >= attempts || n.ctx.Err() != nil
		n.record(msg, ch.Name, ch.Type, attempt, status, err, final)
		if final {
			n.log.Error("notify: delivery failed", "channel", ch.Name, "kind", msg.Kind, "attempt", attempt, "status", status, "err", err)
			return
		}
		t := time.NewTimer(n.Backoff(attempt))
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			n.record(msg, ch.Name, ch.Type, attempt, 0, errors.New("notifier closed before retry"), true)
			return
		}
	}
}

// permanentError is a failure that retrying will not fix.
type permanentError struct{ error }

// send makes one attempt and returns the HTTP status (0 if none).
func (n *Notifier) send(ch policy.Channel, id string, body []byte) (int, error) {
	rawURL := ch.URL
	if ref := ch.URLRef(); ref != "" {
		u, err := n.secrets(ref)
		if err != nil {
			return 0, errors.New("channel URL is unavailable")
		}
		rawURL = strings.TrimSpace(u)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return 0, permanentError{errors.New("channel URL is invalid")}
	}
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, permanentError{errors.New("channel URL is invalid")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock-notify/1")
	if ch.Type != policy.ChannelSlack {
		secret := ""
		if ref := ch.SecretRef(); ref != "" {
			s, err := n.secrets(ref)
			if err != nil || s == "" {
				return 0, errors.New("channel secret is unavailable")
			}
			secret = s
		}
		ts := strconv.FormatInt(n.now().Unix(), 10)
		req.Header.Set("X-Airlock-Timestamp", ts)
		req.Header.Set("X-Airlock-Signature", Sign(secret, ts, body))
		req.Header.Set("X-Airlock-Delivery", id)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		if isTargetError(err) {
			return 0, permanentError{errors.New(scrub(err, rawURL))}
		}
		return 0, errors.New(scrub(err, rawURL))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, permanentError{fmt.Errorf("receiver answered %d; redirects are not followed: configure the final URL", resp.StatusCode)}
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return resp.StatusCode, fmt.Errorf("receiver answered %d", resp.StatusCode)
	default:
		return resp.StatusCode, permanentError{fmt.Errorf("receiver answered %d", resp.StatusCode)}
	}
}

// scrub returns err's text without the URL (whose path or query may hold
// a token, as Slack's do).
func scrub(err error, rawURL string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if rawURL != "" {
		s = strings.ReplaceAll(s, rawURL, "<url>")
	}
	if u, perr := url.Parse(rawURL); perr == nil {
		if u.RawQuery != "" {
			s = strings.ReplaceAll(s, u.RawQuery, "<query>")
		}
		if len(u.Path) > 1 {
			s = strings.ReplaceAll(s, u.Path, "<path>")
		}
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// record writes one attempt to the audit log. An audit failure is logged:
// a notification is not a state change, so it cannot be refused.
func (n *Notifier) record(msg Message, channel, typ string, attempt, status int, err error, final bool) {
	if n.audit == nil {
		return
	}
	details := map[string]any{"channel": channel, "kind": msg.Kind, "attempt": attempt, "final": final}
	if typ != "" {
		details["type"] = typ
	}
	if status != 0 {
		details["status"] = status
	}
	action, outcome := ActionDelivered, airlock.OutcomeSuccess
	if err != nil {
		action, outcome = ActionFailed, airlock.OutcomeFailure
		details["error"] = err.Error()
	}
	raw, _ := json.Marshal(details)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(n.ctx), 10*time.Second)
	defer cancel()
	_, aerr := n.audit.Record(ctx, airlock.Event{
		Actor:     airlock.SystemActor,
		Action:    action,
		Resource:  msg.Resource,
		RequestID: msg.RequestID,
		GrantID:   msg.GrantID,
		Outcome:   outcome,
		Details:   raw,
	})
	if aerr != nil {
		n.log.Error("notify: cannot audit delivery attempt", "channel", channel, "attempt", attempt, "err", aerr)
	}
}

// Sign returns the X-Airlock-Signature value for a body sent at timestamp:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is a valid X-Airlock-Signature
// for body sent at timestamp under secret. The comparison is constant
// time. It does not judge the timestamp's age: receivers should also
// reject old timestamps.
func VerifySignature(secret, timestamp string, body []byte, header string) bool {
	hexMAC, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(hexMAC) != sha256.Size*2 || secret == "" || timestamp == "" {
		return false
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// ResolveSecret resolves "env:NAME" from the environment and "file:PATH"
// from a file (trailing whitespace trimmed, at most 64 KiB). An empty
// value is an error.
func ResolveSecret(ref string) (string, error) {
	kind, name, _ := strings.Cut(ref, ":")
	var v string
	switch kind {
	case "env":
		v = os.Getenv(name)
	case "file":
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 64<<10))
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		v = strings.TrimRight(string(b), " \t\r\n")
	default:
		return "", fmt.Errorf("secret reference %q: want env:NAME or file:PATH", kind)
	}
	if v == "" {
		return "", fmt.Errorf("secret %s is empty or unset", ref)
	}
	return v, nil
}

// webhookPayload is the JSON body of a webhook delivery.
type webhookPayload struct {
	ID string `json:"id"`
	Message
	Time            string `json:"time"`
	Duration        string `json:"duration,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
	Text            string `json:"text"`
}

func webhookBody(id string, now time.Time, msg Message) ([]byte, error) {
	p := webhookPayload{ID: id, Message: msg, Time: now.UTC().Format(time.RFC3339), Text: Summary(msg)}
	if msg.Duration > 0 {
		p.Duration = msg.Duration.String()
		p.DurationSeconds = int64(msg.Duration / time.Second)
	}
	return json.Marshal(p)
}

// Summary is the one-line human text of a message.
func Summary(m Message) string {
	what := m.Access + " on " + m.Resource
	dur := ""
	if m.Duration > 0 {
		dur = " for " + airlock.FormatDuration(m.Duration)
	}
	switch m.Kind {
	case KindRequestCreated:
		return fmt.Sprintf("%s requests %s%s", m.User, what, dur)
	case KindRequestApproved:
		return fmt.Sprintf("%s's request for %s%s was approved", m.User, what, dur)
	case KindRequestDenied:
		return fmt.Sprintf("%s's request for %s was denied", m.User, what)
	case KindBreakGlassActivated:
		return fmt.Sprintf("BREAK-GLASS: %s opened %s%s without approval", m.User, what, dur)
	case KindGrantRevoked:
		return fmt.Sprintf("%s's access to %s was revoked", m.User, what)
	case KindGrantExpired:
		return fmt.Sprintf("%s's access to %s expired", m.User, what)
	case KindStatementHeld:
		return fmt.Sprintf("%s's statement on %s waits for approval (airlock statements approve %s)", m.User, m.Resource, m.HoldID)
	}
	return fmt.Sprintf("%s: %s %s%s", m.Kind, m.User, what, dur)
}

// fence delimits a statement's text in Slack.
const fence = "```"

// slackEscape escapes text for Slack mrkdwn so user input (a reason)
// cannot forge links or mentions.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func slackBody(m Message) ([]byte, error) {
	summary := slackEscape(Summary(m))
	text := "*" + summary + "*"
	if m.Reason != "" {
		text += "\n*Reason:* " + slackEscape(m.Reason)
	}
	if m.Ticket != "" {
		text += "\n*Ticket:* " + slackEscape(m.Ticket)
	}
	if m.Statement != "" {
		text += "\n*Statement:*\n" + fence + strings.ReplaceAll(slackEscape(m.Statement), fence, "'''") + fence
	}
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}},
	}
	var buttons []any
	button := func(label, style, u string) {
		if u == "" {
			return
		}
		b := map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": label}, "url": u}
		if style != "" {
			b["style"] = style
		}
		buttons = append(buttons, b)
	}
	button("Approve", "primary", m.ApproveURL)
	button("Deny", "danger", m.DenyURL)
	button("Open in console", "", m.ConsoleURL)
	if len(buttons) > 0 {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": buttons})
	}
	return json.Marshal(map[string]any{"text": summary, "blocks": blocks})
}
