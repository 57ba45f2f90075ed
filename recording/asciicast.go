package recording

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// FlushInterval is the longest time an event stays buffered in a Writer.
const FlushInterval = time.Second

// Header is the first line of an asciicast v2 recording.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// Writer writes one asciicast v2 recording. Its methods are safe for
// concurrent use. Events are buffered and flushed at least every
// FlushInterval; Close flushes the rest and closes the destination.
type Writer struct {
	mu      sync.Mutex
	dst     io.WriteCloser
	buf     *bufio.Writer
	sum     hash.Hash
	start   time.Time
	now     func() time.Time
	timer   *time.Timer
	pending map[string][]byte // incomplete UTF-8 tail per stream
	err     error
	closed  bool
	n       int64
}

// NewWriter writes h (Version forced to 2, Timestamp from now when zero)
// to dst and returns a Writer for the events that follow. now is the clock
// event times are taken from (time.Now when nil).
func NewWriter(dst io.WriteCloser, h Header, now func() time.Time) (*Writer, error) {
	if now == nil {
		now = time.Now
	}
	h.Version = 2
	start := now()
	if h.Timestamp == 0 {
		h.Timestamp = start.Unix()
	}
	if h.Width <= 0 {
		h.Width = 80
	}
	if h.Height <= 0 {
		h.Height = 24
	}
	w := &Writer{dst: dst, sum: sha256.New(), start: start, now: now, pending: map[string][]byte{}}
	w.buf = bufio.NewWriterSize(io.MultiWriter(dst, w.sum), 32<<10)
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("recording: header: %w", err)
	}
	if _, err := w.buf.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("recording: header: %w", err)
	}
	if err := w.buf.Flush(); err != nil {
		return nil, fmt.Errorf("recording: header: %w", err)
	}
	return w, nil
}

// Output records p as terminal output.
func (w *Writer) Output(p []byte) error { return w.event("o", p) }

// Input records p as keyboard input.
func (w *Writer) Input(p []byte) error { return w.event("i", p) }

// Resize records a terminal size change.
func (w *Writer) Resize(cols, rows int) error {
	return w.event("r", []byte(strconv.Itoa(cols)+"x"+strconv.Itoa(rows)))
}

func (w *Writer) event(kind string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("recording: writer closed")
	}
	if w.err != nil {
		return w.err
	}
	data := p
	if kind != "r" {
		// Keep an incomplete UTF-8 sequence at the end for the next chunk so
		// multi-byte characters split across reads stay intact.
		data = append(w.pending[kind], p...)
		cut := completeUTF8(data)
		w.pending[kind] = append([]byte(nil), data[cut:]...)
		data = data[:cut]
		if len(data) == 0 {
			return nil
		}
	}
	return w.writeLine(kind, data)
}

// writeLine appends one event line; w.mu must be held.
func (w *Writer) writeLine(kind string, data []byte) error {
	t := w.now().Sub(w.start).Seconds()
	if t < 0 {
		t = 0
	}
	s, err := json.Marshal(string(data))
	if err != nil {
		return err
	}
	line := make([]byte, 0, len(s)+32)
	line = append(line, '[')
	line = strconv.AppendFloat(line, t, 'f', 6, 64)
	line = append(line, `, "`...)
	line = append(line, kind...)
	line = append(line, `", `...)
	line = append(line, s...)
	line = append(line, "]\n"...)
	if _, err := w.buf.Write(line); err != nil {
		w.err = fmt.Errorf("recording: write: %w", err)
		return w.err
	}
	w.n += int64(len(line))
	if w.timer == nil && w.buf.Buffered() > 0 {
		w.timer = time.AfterFunc(FlushInterval, w.timedFlush)
	}
	return nil
}

// completeUTF8 returns the length of the prefix of b that does not end in
// an incomplete (but possibly valid) UTF-8 sequence.
func completeUTF8(b []byte) int {
	n := len(b)
	for i := 1; i <= utf8.UTFMax-1 && i <= n; i++ {
		c := b[n-i]
		if c < 0x80 {
			return n // ASCII: nothing pending
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[n-i:]) {
				return n - i
			}
			return n
		}
	}
	return n
}

func (w *Writer) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.closed || w.err != nil {
		return
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("recording: flush: %w", err)
	}
}

// Flush writes buffered events to the destination now.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("recording: flush: %w", err)
	}
	return w.err
}

// Close flushes pending events (an incomplete UTF-8 tail is written with
// replacement characters) and closes the destination.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	for _, kind := range []string{"o", "i"} {
		if p := w.pending[kind]; len(p) > 0 && w.err == nil {
			w.pending[kind] = nil
			_ = w.writeLine(kind, p)
		}
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	err := w.err
	if ferr := w.buf.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("recording: flush: %w", ferr)
	}
	if cerr := w.dst.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("recording: close: %w", cerr)
	}
	return err
}

// SHA256 returns the hex SHA-256 of everything flushed so far; after Close
// it is the digest of the whole recording.
func (w *Writer) SHA256() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return hex.EncodeToString(w.sum.Sum(nil))
}

// Size returns the number of event bytes written (excluding the header).
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
