package recording

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxLine bounds one recorded line when reading (a single output chunk is
// at most 32 KiB raw, ~200 KiB escaped).
const maxLine = 4 << 20

// Event is one recorded event.
type Event struct {
	Time float64 // seconds since the start
	Kind string  // "o", "i" or "r"
	Data string
}

// Reader reads an asciicast v2 recording.
type Reader struct {
	Header Header
	sc     *bufio.Scanner
	line   int
}

// NewReader reads and checks the header of the recording r.
func NewReader(r io.Reader) (*Reader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("recording: read header: %w", err)
		}
		return nil, errors.New("recording: empty recording")
	}
	var h Header
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return nil, fmt.Errorf("recording: header: %w", err)
	}
	if h.Version != 2 {
		return nil, fmt.Errorf("recording: asciicast version %d, want 2", h.Version)
	}
	return &Reader{Header: h, sc: sc, line: 1}, nil
}

// Next returns the next event, or io.EOF after the last.
func (r *Reader) Next() (Event, error) {
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 3 {
			return Event{}, fmt.Errorf("recording: line %d: not an event", r.line)
		}
		var ev Event
		if json.Unmarshal(raw[0], &ev.Time) != nil || json.Unmarshal(raw[1], &ev.Kind) != nil || json.Unmarshal(raw[2], &ev.Data) != nil {
			return Event{}, fmt.Errorf("recording: line %d: malformed event", r.line)
		}
		if ev.Time < 0 || ev.Time != ev.Time {
			return Event{}, fmt.Errorf("recording: line %d: bad time", r.line)
		}
		return ev, nil
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, fmt.Errorf("recording: line %d: %w", r.line+1, err)
	}
	return Event{}, io.EOF
}

// Play writes the output events of the recording r to w, waiting between
// events as recorded divided by speed (speed <= 0 means as fast as
// possible). sleep waits (time.Sleep when nil); pauses longer than 2 s are
// shortened to 2 s so idle time does not stall playback.
func Play(r io.Reader, w io.Writer, speed float64, sleep func(time.Duration)) error {
	if sleep == nil {
		sleep = time.Sleep
	}
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	const maxPause = 2 * time.Second
	last := 0.0
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Kind != "o" {
			continue
		}
		if speed > 0 && ev.Time > last {
			d := time.Duration((ev.Time - last) / speed * float64(time.Second))
			if d > maxPause {
				d = maxPause
			}
			sleep(d)
		}
		if ev.Time > last {
			last = ev.Time
		}
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return fmt.Errorf("recording: play: %w", err)
		}
	}
}

// Verify reads r to the end and returns an error unless its SHA-256 is
// wantSHA256 (hex, as recorded in the session.ended audit event).
func Verify(r io.Reader, wantSHA256 string) error {
	want, err := hex.DecodeString(strings.TrimSpace(wantSHA256))
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("recording: expected sha256 %q is not a hex SHA-256", wantSHA256)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("recording: read: %w", err)
	}
	got := h.Sum(nil)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("recording was modified: sha256 is %x, the audit log recorded %x", got, want)
	}
	return nil
}

// VerifyStored opens recording id in s and verifies it against wantSHA256;
// the error names the recording.
func VerifyStored(ctx context.Context, s Store, id, wantSHA256 string) error {
	rc, err := s.Open(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := Verify(rc, wantSHA256); err != nil {
		return fmt.Errorf("recording %s: %w", id, err)
	}
	return nil
}
