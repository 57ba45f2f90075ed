package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlockhq/airlock"
)

// Line types of an export.
const (
	LineEvent      = "event"
	LineCheckpoint = "checkpoint"
)

// exportEvent is an event line: {"type":"event", …the event's fields…}.
type exportEvent struct {
	Type string `json:"type"`
	airlock.Event
}

// exportCheckpoint is a checkpoint line: {"type":"checkpoint", seq, hash, time, key_id, signature}.
type exportCheckpoint struct {
	Type string `json:"type"`
	airlock.Checkpoint
}

// exportLine decodes either kind of line: the two share seq, hash and time.
type exportLine struct {
	Type string `json:"type"`
	airlock.Event
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

// Export writes the events f selects, and the checkpoints within them, to w
// as JSON Lines ordered by seq (see the package documentation for the
// format). It streams with ScanEvents and never holds the log in memory.
//
// The exported events are contiguous when f uses only AfterSeq, Since,
// Until and Limit: Since starts at the first event at or after it, Until
// stops before the first event after it. Such an export verifies with
// VerifyExport. Filters on Action, ActorName, Resource, SessionID or
// GrantID produce an excerpt that does not verify. When the export runs to
// the end of the log (no Until, no Limit) it also carries checkpoints
// beyond the last event, so a truncated log shows. f.Desc is refused.
func Export(ctx context.Context, store airlock.AuditStore, w io.Writer, f airlock.EventFilter) error {
	if f.Desc {
		return airlock.Errorf(airlock.EINVALID, "audit export: descending order cannot be exported; exports are ordered by seq")
	}
	after := f.AfterSeq
	if !f.Since.IsZero() {
		first, err := store.ListEvents(ctx, airlock.EventFilter{AfterSeq: f.AfterSeq, Since: f.Since, Limit: 1})
		if err != nil {
			return fmt.Errorf("audit export: find first event since %s: %w", f.Since, err)
		}
		if len(first) == 0 {
			return nil
		}
		after = max(after, first[0].Seq-1)
	}
	cps, err := store.ListCheckpoints(ctx)
	if err != nil {
		return fmt.Errorf("audit export: list checkpoints: %w", err)
	}
	ci := 0
	for ci < len(cps) && cps[ci].Seq <= after {
		ci++
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	ev := exportEvent{Type: LineEvent}
	cl := exportCheckpoint{Type: LineCheckpoint}
	writeCheckpointsUpTo := func(seq int64) error {
		for ci < len(cps) && cps[ci].Seq <= seq {
			cl.Checkpoint = cps[ci]
			if err := enc.Encode(&cl); err != nil {
				return err
			}
			ci++
		}
		return nil
	}
	n := 0
	bounded := !f.Until.IsZero() || f.Limit > 0
	var werr error
	err = store.ScanEvents(ctx, after, func(e airlock.Event) error {
		if !f.Until.IsZero() && e.Time.After(f.Until) {
			return errStop
		}
		if f.Limit > 0 && n >= f.Limit {
			return errStop
		}
		if !matchExtra(&e, &f) {
			return nil
		}
		if werr = writeCheckpointsUpTo(e.Seq - 1); werr != nil {
			return errStop
		}
		ev.Event = e
		if werr = enc.Encode(&ev); werr != nil {
			return errStop
		}
		n++
		if werr = writeCheckpointsUpTo(e.Seq); werr != nil {
			return errStop
		}
		return nil
	})
	if werr != nil {
		return fmt.Errorf("audit export: write: %w", werr)
	}
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit export: scan events: %w", err)
	}
	if !bounded && (n > 0 || after == 0) {
		if err := writeCheckpointsUpTo(1<<63 - 1); err != nil {
			return fmt.Errorf("audit export: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit export: write: %w", err)
	}
	return nil
}

// matchExtra applies the non-contiguous filters.
func matchExtra(e *airlock.Event, f *airlock.EventFilter) bool {
	if f.Action != "" {
		if p, ok := strings.CutSuffix(f.Action, "*"); ok {
			if !strings.HasPrefix(e.Action, p) {
				return false
			}
		} else if e.Action != f.Action {
			return false
		}
	}
	return (f.ActorName == "" || e.Actor.Name == f.ActorName) &&
		(f.Resource == "" || e.Resource == f.Resource) &&
		(f.SessionID == "" || e.SessionID == f.SessionID) &&
		(f.GrantID == "" || e.GrantID == f.GrantID)
}

// maxLine bounds one export line (an event with MaxDetailsLen of details fits).
const maxLine = 4 * MaxDetailsLen

// VerifyExport checks an export made by Export, offline: the chain, each
// checkpoint's signature under pub and hash, and that no checkpoint names a
// seq beyond the last event. An export that starts after seq 1 (made with
// --since) is verified from its first event, whose prev_hash is trusted; an
// export starting at seq 1 must have prev_hash "". A line that is not a
// valid record is reported as ProblemModified at the next expected seq. The
// error is for read failures only.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, airlock.Errorf(airlock.EINVALID, "audit verify: an ed25519 public key is required")
	}
	v := newVerifier(pub, true)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	lineNo := 0
	var line exportLine
	for sc.Scan() {
		lineNo++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		line = exportLine{}
		if err := decodeLine(b, &line); err != nil {
			return v.badLine(lineNo, err.Error()), nil
		}
		var ok bool
		switch line.Type {
		case LineEvent:
			if line.KeyID != "" || line.Signature != "" {
				return v.badLine(lineNo, "event line carries checkpoint fields"), nil
			}
			ok = v.addEvent(line.Event)
		case LineCheckpoint:
			ok = v.addCheckpoint(airlock.Checkpoint{
				Seq: line.Seq, Hash: line.Hash, Time: line.Time, KeyID: line.KeyID, Signature: line.Signature,
			})
		default:
			return v.badLine(lineNo, fmt.Sprintf("unknown line type %q", truncate(line.Type, 32))), nil
		}
		if !ok {
			break
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return v.badLine(lineNo+1, "line too long"), nil
		}
		return nil, fmt.Errorf("audit verify: read export: %w", err)
	}
	return v.finish(), nil
}

func decodeLine(b []byte, line *exportLine) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(line); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the record")
	}
	return nil
}

// badLine settles pending events and then reports the unreadable line.
func (v *verifier) badLine(lineNo int, why string) *Report {
	for v.n > 0 && !v.done {
		v.judgeOldest()
	}
	if !v.done {
		if !v.started {
			v.started = true
		}
		v.fail(ProblemModified, v.expect, fmt.Sprintf("line %d is not a valid audit record: %s", lineNo, why))
	}
	return &v.rep
}
