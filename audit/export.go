package audit

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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

// exportCheckpoint is a checkpoint line: {"type":"checkpoint", seq, hash,
// time, key_id, signature} and, in a version 2 checkpoint, root.
type exportCheckpoint struct {
	Type string `json:"type"`
	airlock.Checkpoint
}

// exportLine decodes either kind of line: the two share seq, hash and time.
// It is decoded strictly (github.com/go-json-experiment/json: member names
// case-sensitive, unknown or duplicate members rejected, strings must be
// valid UTF-8), so an edited line cannot hide a second value.
type exportLine struct {
	Type  string    `json:"type"`
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Actor struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"actor"`
	Action     string         `json:"action"`
	Resource   string         `json:"resource"`
	RequestID  string         `json:"request_id"`
	GrantID    string         `json:"grant_id"`
	SessionID  string         `json:"session_id"`
	SourceAddr string         `json:"source_addr"`
	Outcome    string         `json:"outcome"`
	Details    jsontext.Value `json:"details"`
	PrevHash   string         `json:"prev_hash"`
	Hash       string         `json:"hash"`
	KeyID      string         `json:"key_id"`
	Signature  string         `json:"signature"`
	Root       string         `json:"root"`
}

func (l *exportLine) event() airlock.Event {
	e := airlock.Event{
		Seq: l.Seq, Time: l.Time, Actor: airlock.Actor{ID: l.Actor.ID, Name: l.Actor.Name},
		Action: l.Action, Resource: l.Resource, RequestID: l.RequestID, GrantID: l.GrantID,
		SessionID: l.SessionID, SourceAddr: l.SourceAddr, Outcome: l.Outcome,
		PrevHash: l.PrevHash, Hash: l.Hash,
	}
	if len(l.Details) > 0 {
		e.Details = json.RawMessage(l.Details)
	}
	return e
}

// Export writes the events f selects, and the checkpoints within them, to w
// as JSON Lines ordered by seq (see the package documentation for the
// format). It streams with ScanEvents and never holds the log in memory.
//
// The exported events are contiguous when f uses only AfterSeq, Since,
// Until and Limit: Since starts at the first event at or after it (inclusive),
// Until stops at the first event at or after it (exclusive). Such an export verifies with
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
		if !f.Until.IsZero() && !e.Time.Before(f.Until) {
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
// valid record is reported as ProblemModified at the next expected seq. An
// export with events but no checkpoint at all verifies (OK) with the
// warning WarnNoCheckpoint: nothing proves its end. The error is for read
// failures only.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (*Report, error) {
	return VerifyExportWitnessed(r, pub, nil)
}

// VerifyExportWitnessed is VerifyExport with checkpoints kept outside the
// store (by witnesses; see ReadWitnessed) checked like the export's own:
// each must be signed by pub, name a seq the export reaches (else
// ProblemTruncated: the store was truncated or rolled back behind it),
// and match the chain hash and Merkle root there (else ProblemModified).
// With any witnessed checkpoint the log must start at seq 1 (else
// ProblemTruncated at seq 1): a partial export proves nothing against a
// witness, and a store that dropped its oldest events would pass.
func VerifyExportWitnessed(r io.Reader, pub ed25519.PublicKey, witnessed []airlock.Checkpoint) (*Report, error) {
	witnessed = slices.SortedFunc(slices.Values(witnessed), func(a, b airlock.Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	wi := 0
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
			if line.KeyID != "" || line.Signature != "" || line.Root != "" {
				return v.badLine(lineNo, "event line carries checkpoint fields"), nil
			}
			ok = true
			for ; wi < len(witnessed) && witnessed[wi].Seq < line.Seq && ok; wi++ {
				ok = v.addCheckpoint(witnessed[wi])
			}
			ok = ok && v.addEvent(line.event())
		case LineCheckpoint:
			ok = v.addCheckpoint(airlock.Checkpoint{
				Seq: line.Seq, Hash: line.Hash, Time: line.Time, KeyID: line.KeyID, Signature: line.Signature, Root: line.Root,
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
	for ; wi < len(witnessed) && !v.done; wi++ {
		v.addCheckpoint(witnessed[wi])
	}
	rep := v.finish()
	if rep.OK && len(witnessed) > 0 && (rep.Events == 0 || rep.FirstSeq > 1) {
		// A witnessed checkpoint before the first event cannot be checked,
		// and neither can what a store dropped from its start: nothing is
		// proved against a witness unless the log is whole from seq 1.
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemTruncated, 1
		rep.Message = fmt.Sprintf("seq 1: the log checked against the witness starts at seq %d, not 1: events before it are missing (a store truncated at its start, or a partial export)", max(rep.FirstSeq, 1))
	}
	if rep.OK && rep.Events > 0 && rep.Checkpoints == 0 {
		rep.Warnings = append(rep.Warnings, WarnNoCheckpoint)
	}
	return rep, nil
}

var strict = jsonv2.JoinOptions(jsonv2.RejectUnknownMembers(true))

func decodeLine(b []byte, line *exportLine) error {
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	return jsonv2.Unmarshal(b, line, strict)
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
