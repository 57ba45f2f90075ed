package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

type bufCloser struct {
	mu     sync.Mutex
	b      bytes.Buffer
	wrote  chan struct{}
	closed bool
}

func (b *bufCloser) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.wrote != nil {
		select {
		case b.wrote <- struct{}{}:
		default:
		}
	}
	return n, err
}
func (b *bufCloser) Close() error { b.closed = true; return nil }
func (b *bufCloser) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// clock returns a fake clock advanced by step on every call.
func clock(step time.Duration) func() time.Time {
	t := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func TestWriterRoundTrip(t *testing.T) {
	dst := &bufCloser{}
	w, err := NewWriter(dst, Header{Width: 100, Height: 30, Title: "alice@prod-web", Env: map[string]string{"TERM": "xterm"}}, clock(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	euro := []byte("€") // 3 bytes, split across two writes
	must(t, w.Output([]byte("$ ls\r\n")))
	must(t, w.Output(euro[:1]))
	must(t, w.Output(append(euro[1:], []byte(" ok\x00\x1b[0m")...)))
	must(t, w.Input([]byte("ls\r")))
	must(t, w.Resize(120, 40))
	must(t, w.Close())
	if !dst.closed {
		t.Error("destination not closed")
	}
	sum := sha256.Sum256([]byte(dst.String()))
	if got := w.SHA256(); got != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256() = %s, want digest of the bytes written %x", got, sum)
	}

	r, err := NewReader(strings.NewReader(dst.String()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Version != 2 || r.Header.Width != 100 || r.Header.Height != 30 || r.Header.Env["TERM"] != "xterm" || r.Header.Timestamp == 0 {
		t.Errorf("header = %+v", r.Header)
	}
	var evs []Event
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		evs = append(evs, ev)
	}
	want := []Event{{0.5, "o", "$ ls\r\n"}, {1.0, "o", "€ ok\x00\x1b[0m"}, {1.5, "i", "ls\r"}, {2.0, "r", "120x40"}}
	if len(evs) != len(want) {
		t.Fatalf("events = %+v, want %+v", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
		}
	}
}

func TestWriterFlushesWithoutClose(t *testing.T) {
	dst := &bufCloser{wrote: make(chan struct{}, 1)}
	w, err := NewWriter(dst, Header{}, nil)
	must(t, err)
	<-dst.wrote // header
	must(t, w.Output([]byte("hello")))
	select {
	case <-dst.wrote:
	case <-time.After(10 * FlushInterval):
		t.Fatal("buffered output was never flushed")
	}
	if !strings.Contains(dst.String(), `"hello"`) {
		t.Fatalf("flushed %q", dst.String())
	}
	must(t, w.Close())
}

func TestPlay(t *testing.T) {
	dst := &bufCloser{}
	w, err := NewWriter(dst, Header{}, clock(time.Second))
	must(t, err)
	must(t, w.Output([]byte("a")))
	must(t, w.Input([]byte("secret-typed")))
	must(t, w.Output([]byte("b")))
	must(t, w.Close())

	var out bytes.Buffer
	var slept []time.Duration
	must(t, Play(strings.NewReader(dst.String()), &out, 2, func(d time.Duration) { slept = append(slept, d) }))
	if out.String() != "ab" {
		t.Errorf("played %q, want only output events", out.String())
	}
	if len(slept) != 2 || slept[0] != 500*time.Millisecond || slept[1] != time.Second {
		t.Errorf("slept %v, want [500ms 1s] at speed 2", slept)
	}
}

func TestVerify(t *testing.T) {
	dst := &bufCloser{}
	w, err := NewWriter(dst, Header{}, clock(time.Second))
	must(t, err)
	must(t, w.Output([]byte("rm -rf /tmp/x\r\n")))
	must(t, w.Close())
	sum := w.SHA256()
	if err := Verify(strings.NewReader(dst.String()), sum); err != nil {
		t.Fatalf("intact recording: %v", err)
	}
	tampered := strings.Replace(dst.String(), "rm -rf", "ls -la", 1)
	err = Verify(strings.NewReader(tampered), sum)
	if err == nil || !strings.Contains(err.Error(), "was modified: sha256") {
		t.Fatalf("tampered recording: err = %v", err)
	}
	if err := Verify(strings.NewReader(""), "nothex"); err == nil {
		t.Fatal("accepted a malformed expected digest")
	}
}

func TestDir(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir() + "/recordings")
	must(t, err)
	wc, err := d.Create(ctx, "ses_abc")
	must(t, err)
	w, err := NewWriter(wc, Header{}, nil)
	must(t, err)
	must(t, w.Output([]byte("x")))
	must(t, w.Close())
	p, _ := d.Path("ses_abc")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %s: %v %v", p, fi, err)
	}
	must(t, VerifyStored(ctx, d, "ses_abc", w.SHA256()))
	must(t, os.WriteFile(p, []byte("{}\n"), 0o600))
	if err := VerifyStored(ctx, d, "ses_abc", w.SHA256()); err == nil || !strings.Contains(err.Error(), "recording ses_abc: recording was modified") {
		t.Fatalf("err = %v", err)
	}
	if _, err := d.Create(ctx, "ses_abc"); !airlock.IsCode(err, airlock.ECONFLICT) {
		t.Errorf("overwrite: err = %v, want conflict", err)
	}
	if _, err := d.Open(ctx, "ses_missing"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Errorf("missing: err = %v, want not found", err)
	}
	for _, id := range []string{"", "../x", "a/b", "a.cast", strings.Repeat("a", 200)} {
		if _, err := d.Create(ctx, id); !airlock.IsCode(err, airlock.EINVALID) {
			t.Errorf("Create(%q) err = %v, want invalid", id, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("{\"version\":2,\"width\":80,\"height\":24}\n[0.1, \"o\", \"hi\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Play(bytes.NewReader(b), io.Discard, 1, func(time.Duration) {})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
