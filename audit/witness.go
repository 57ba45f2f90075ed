package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// A Witness keeps a copy of every checkpoint somewhere the store's owner
// cannot rewrite together with the store (another disk, host or
// service), so that "airlock audit verify --witness" can show the store
// was not rolled back or truncated behind the newest copy.
type Witness interface {
	// Witness records c durably, or fails.
	Witness(ctx context.Context, c airlock.Checkpoint) error
	// String names the witness in logs (a path, or a URL without its
	// credentials or query).
	String() string
}

// FileWitness appends each checkpoint as one JSON line to a file (created
// 0600) and fsyncs it before Witness returns.
type FileWitness struct {
	Path string
	mu   sync.Mutex
}

func (w *FileWitness) String() string { return w.Path }

// Witness appends c to the file.
func (w *FileWitness) Witness(ctx context.Context, c airlock.Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WebhookWitness POSTs each checkpoint as a JSON object to URL; any 2xx
// answer is success.
type WebhookWitness struct {
	URL    string
	Client *http.Client // default: a client with a 10 s timeout
}

func (w *WebhookWitness) String() string { return redactURL(w.URL) }

// redactURL drops userinfo, query and fragment: they may hold tokens.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// defaultWitnessClient follows no redirect: a checkpoint goes to the URL
// configured, never where an answer points (a 307/308 would resend it).
var defaultWitnessClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Witness posts c.
func (w *WebhookWitness) Witness(ctx context.Context, c airlock.Checkpoint) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", w.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("witness webhook: bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	hc := w.Client
	if hc == nil {
		hc = defaultWitnessClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may carry a token
		}
		return fmt.Errorf("witness webhook %s: %w", w, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("witness webhook %s answered %s", w, resp.Status)
	}
	return nil
}

// ParseWitness makes a Witness from a configuration value: an http:// or
// https:// URL is a webhook, syslog+tcp://HOST:PORT or
// syslog+tls://HOST:PORT[?ca=FILE] a syslog receiver, an absolute path a
// file.
func ParseWitness(spec string) (Witness, error) {
	switch {
	case strings.HasPrefix(spec, "https://") || strings.HasPrefix(spec, "http://"):
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("audit witness %q: not a URL", redactURL(spec))
		}
		return &WebhookWitness{URL: spec}, nil
	case strings.HasPrefix(spec, "syslog+tcp://") || strings.HasPrefix(spec, "syslog+tls://"):
		return parseSyslogWitness(spec)
	case filepath.IsAbs(spec):
		return &FileWitness{Path: filepath.Clean(spec)}, nil
	}
	return nil, fmt.Errorf("audit witness %q: want an absolute file path, an http(s):// URL or syslog+tcp:// / syslog+tls://", redactURL(spec))
}

// maxWitnessLine bounds one line of a witness record.
const maxWitnessLine = 64 << 10

// ReadWitnessed returns the newest checkpoint (highest seq; the later
// line on a tie) in a witness record — JSON Lines of checkpoints as
// FileWitness writes them, or a single JSON checkpoint — and how many it
// holds. Every checkpoint must carry a valid signature by pub: a record
// with a line that does not is refused, not skipped. ENOTFOUND when it
// holds none.
func ReadWitnessed(r io.Reader, pub ed25519.PublicKey) (airlock.Checkpoint, int, error) {
	all, err := ReadWitnessedAll(r, pub)
	var newest airlock.Checkpoint
	for _, c := range all {
		if c.Seq >= newest.Seq {
			newest = c
		}
	}
	return newest, len(all), err
}

// ReadWitnessedAll is ReadWitnessed returning every checkpoint the record
// holds, in its order. Verify a store against all of them
// (VerifyExportWitnessed), not only the newest: a store rewritten and
// regrown past the witnessed size has a newest checkpoint of its own in
// the record, and only the older ones show the rewrite.
func ReadWitnessedAll(r io.Reader, pub ed25519.PublicKey) ([]airlock.Checkpoint, error) {
	var all []airlock.Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxWitnessLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		// A syslog receiver's file (SyslogWitness) puts its own fields
		// before the message: the checkpoint starts at the first '{'. What
		// precedes it is not trusted for anything; the checkpoint's
		// signature is.
		if b[0] != '{' {
			i := bytes.IndexByte(b, '{')
			if i < 0 {
				return all, airlock.Errorf(airlock.EINVALID, "witness line %d is not a checkpoint (one JSON object a line)", lineNo)
			}
			b = b[i:]
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var c airlock.Checkpoint
		if err := dec.Decode(&c); err != nil || dec.More() {
			return all, airlock.Errorf(airlock.EINVALID, "witness line %d is not a checkpoint (one JSON object a line)", lineNo)
		}
		if !VerifyCheckpoint(pub, c) {
			return all, airlock.Errorf(airlock.EINVALID, "witness line %d (seq %d) is not signed by this key: the record was altered, or it belongs to another log", lineNo, c.Seq)
		}
		all = append(all, c)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return all, airlock.Errorf(airlock.EINVALID, "witness line %d is longer than %d bytes", lineNo+1, maxWitnessLine)
		}
		return all, err
	}
	if len(all) == 0 {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "the witness record holds no checkpoint")
	}
	return all, nil
}

// witnessRetry is how long a witness that failed waits before it is
// offered the newest checkpoint again.
const witnessRetry = time.Second

// witnessRunner delivers checkpoints to one witness from its own
// goroutine, so a slow or failing witness never delays the log's writer.
// It holds only the newest checkpoint not yet delivered: a newer one
// replaces an older one that is still waiting (it covers everything the
// older one does).
type witnessRunner struct {
	w    Witness
	log  *slog.Logger
	m    *metrics
	wake chan struct{} // cap 1
	stop chan struct{} // closed by Log.Close after the final checkpoint
	done chan struct{}

	mu      sync.Mutex
	pending *airlock.Checkpoint
}

func newWitnessRunner(w Witness, log *slog.Logger, m *metrics) *witnessRunner {
	return &witnessRunner{w: w, log: log, m: m, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (r *witnessRunner) offer(c airlock.Checkpoint) {
	r.mu.Lock()
	if r.pending == nil || c.Seq >= r.pending.Seq {
		r.pending = &c
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// deliver hands the pending checkpoint to the witness; on failure it is
// pending again unless a newer one arrived meanwhile.
func (r *witnessRunner) deliver(ctx context.Context) error {
	r.mu.Lock()
	c := r.pending
	r.pending = nil
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := r.w.Witness(ctx, *c); err != nil {
		r.m.witnessErrs.Inc()
		r.log.Error("audit: witness did not take the checkpoint; retrying", "witness", r.w.String(), "seq", c.Seq, "err", err)
		r.mu.Lock()
		if r.pending == nil {
			r.pending = c
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

func (r *witnessRunner) run(ctx context.Context) {
	defer close(r.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-r.wake:
		case <-retry.C:
		case <-r.stop:
			// The final checkpoint was offered: one more try, bounded
			// by the context Close passed (see Log.Close).
			r.deliver(ctx)
			return
		case <-ctx.Done():
			return
		}
		if r.deliver(ctx) != nil {
			retry.Reset(witnessRetry)
		}
	}
}
