package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// Problems a Report can name.
const (
	ProblemModified      = "modified"       // an event's hash does not match its content (or a checkpoint proves a rewrite)
	ProblemMissing       = "missing"        // a gap in seq
	ProblemReordered     = "reordered"      // seq goes backwards, or two events swapped
	ProblemInserted      = "inserted"       // a duplicate seq, or a self-consistent event that is not linked into the chain
	ProblemTruncated     = "truncated"      // a checkpoint names a seq beyond the end of the log
	ProblemBadCheckpoint = "bad-checkpoint" // a checkpoint's signature is invalid
	ProblemBadRetraction = "bad-retraction" // a retraction names no earlier event
)

// Report is the result of verifying a log or an export.
type Report struct {
	// OK reports whether the chain and every checkpoint verified.
	OK bool `json:"ok"`
	// Events is the number of events verified before any problem.
	Events int64 `json:"events"`
	// Checkpoints is the number of checkpoints whose signature and hash matched.
	Checkpoints int `json:"checkpoints"`
	// FirstSeq and LastSeq bound the verified events (0 when none).
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// FirstBadSeq is the lowest sequence number that is absent, altered,
	// or out of place (0 when OK).
	FirstBadSeq int64 `json:"first_bad_seq,omitempty"`
	// Problem is one of the Problem constants ("" when OK).
	Problem string `json:"problem,omitempty"`
	// Message is one human line saying what was found.
	Message string `json:"message"`
	// Warnings are things the verifier could not prove, even though
	// nothing it checked was wrong (an export without any checkpoint). They
	// do not make OK false.
	Warnings []string `json:"warnings,omitempty"`
}

// WarnNoCheckpoint is the warning for an export whose events no
// checkpoint covers: its chain verifies, but events removed from its end
// would go unnoticed.
const WarnNoCheckpoint = "the export carries no checkpoint: its chain is intact, but events removed from its end cannot be detected; " +
	"export the log up to now (checkpoints follow the events they sign) or verify online"

// lookahead is how many later events the verifier looks at to tell a gap
// from a reordering.
const lookahead = 16

// verifier is the state machine shared by Verify and VerifyExport. Events
// and checkpoints are fed in stream order; each event is judged once the
// next lookahead events are known (or at the end), and a checkpoint once the
// event it names has been judged.
type verifier struct {
	pub     ed25519.PublicKey
	partial bool // the first event may start after seq 1; its PrevHash is trusted

	h        hasher
	rep      Report
	started  bool
	expect   int64  // next expected seq
	prevHash string // hash of the last accepted event
	lastCP   int64  // seq of the last checkpoint that matched
	done     bool
	// tree is the Merkle tree of the accepted events, when they start at
	// seq 1 (a partial export's tree cannot be computed: its version 2
	// checkpoints are checked against the chain only).
	tree     tlog.Compact
	treeOK   bool
	unrooted int // version 2 checkpoints whose root could not be checked

	ring  [lookahead + 1]airlock.Event
	start int
	n     int

	cps    []airlock.Checkpoint // waiting for their event to be accepted: cps[cpHead:]
	cpHead int
}

func newVerifier(pub ed25519.PublicKey, partial bool) *verifier {
	return &verifier{pub: pub, partial: partial, expect: 1}
}

func (v *verifier) at(i int) *airlock.Event { return &v.ring[(v.start+i)%len(v.ring)] }

// addEvent feeds one event; it returns false once a problem was found.
func (v *verifier) addEvent(e airlock.Event) bool {
	if v.done {
		return false
	}
	if v.n == len(v.ring) {
		v.judgeOldest()
		if v.done {
			return false
		}
	}
	*v.at(v.n) = e
	v.n++
	if v.n == len(v.ring) {
		v.judgeOldest()
	}
	return !v.done
}

// addCheckpoint feeds one checkpoint; it returns false once a problem was found.
func (v *verifier) addCheckpoint(c airlock.Checkpoint) bool {
	if v.done {
		return false
	}
	if v.started && c.Seq < v.expect-1 {
		// Its event was accepted before the checkpoint arrived: in an export
		// the checkpoint line must follow its event directly.
		v.fail(ProblemReordered, c.Seq, fmt.Sprintf("checkpoint for seq %d appears after event %d", c.Seq, v.expect-1))
		return false
	}
	v.cps = append(v.cps, c)
	v.checkCheckpoints()
	return !v.done
}

func (v *verifier) fail(problem string, seq int64, msg string) {
	if v.done {
		return
	}
	v.done = true
	v.rep.OK = false
	v.rep.Problem = problem
	v.rep.FirstBadSeq = seq
	v.rep.Message = fmt.Sprintf("seq %d: %s", seq, msg)
}

func (v *verifier) judgeOldest() {
	cur := *v.at(0)
	v.ring[v.start] = airlock.Event{}
	v.start = (v.start + 1) % len(v.ring)
	v.n--
	v.judge(&cur)
}

// judge decides about the oldest pending event cur; v.at(0..n-1) are the
// events that follow it.
func (v *verifier) judge(cur *airlock.Event) {
	if !v.started {
		v.started = true
		if v.partial && cur.Seq > 1 {
			v.expect, v.prevHash, v.lastCP = cur.Seq, cur.PrevHash, cur.Seq-1
		}
		v.treeOK = v.expect == 1
		v.rep.FirstSeq = v.expect
		// Drop checkpoints before the first event: nothing to check them against.
		kept := v.cps[:0]
		for _, c := range v.cps[v.cpHead:] {
			if c.Seq >= v.expect {
				kept = append(kept, c)
			}
		}
		v.cps, v.cpHead = kept, 0
	}
	E := v.expect
	var next *airlock.Event
	if v.n > 0 {
		next = v.at(0)
	}
	switch {
	case cur.Seq == E:
		if next != nil && next.Seq == E {
			v.fail(ProblemInserted, E, fmt.Sprintf("two events claim seq %d", E))
			return
		}
		self := v.h.matches(cur, cur.Seq)
		link := cur.PrevHash == v.prevHash
		switch {
		case self && link:
			if msg := v.checkRetraction(cur); msg != "" {
				v.fail(ProblemBadRetraction, cur.Seq, msg)
				return
			}
			v.accept(cur)
		case !self:
			if next != nil && next.Seq == E+1 && v.h.matches(cur, E+1) && v.h.matches(next, E) {
				v.fail(ProblemReordered, E, fmt.Sprintf("events %d and %d are swapped", E, E+1))
				return
			}
			v.fail(ProblemModified, E, "hash does not match the event's content")
		default: // self-consistent, but not linked to the previous event
			if next != nil && next.Seq == E+1 && next.PrevHash == cur.Hash && E > v.rep.FirstSeq {
				v.fail(ProblemModified, E-1, fmt.Sprintf("event was rewritten: its hash was recomputed but event %d still links to the original", E))
				return
			}
			v.fail(ProblemInserted, E, "event is self-consistent but does not link to the previous event's hash")
		}
	case cur.Seq > E:
		if v.h.matches(cur, E) {
			v.fail(ProblemModified, E, fmt.Sprintf("seq field altered to %d", cur.Seq))
			return
		}
		for i := 0; i < v.n; i++ {
			if v.at(i).Seq == E {
				v.fail(ProblemReordered, E, fmt.Sprintf("event %d appears after event %d", E, cur.Seq))
				return
			}
		}
		if cur.Seq == E+1 {
			v.fail(ProblemMissing, E, "event is missing")
		} else {
			v.fail(ProblemMissing, E, fmt.Sprintf("events %d..%d are missing", E, cur.Seq-1))
		}
	default: // cur.Seq < E
		if v.h.matches(cur, E) {
			v.fail(ProblemModified, E, fmt.Sprintf("seq field altered to %d", cur.Seq))
			return
		}
		if cur.Seq == E-1 {
			v.fail(ProblemInserted, cur.Seq, fmt.Sprintf("a second event claims seq %d", cur.Seq))
			return
		}
		v.fail(ProblemReordered, cur.Seq, fmt.Sprintf("event %d appears after event %d", cur.Seq, E-1))
	}
}

// checkRetraction returns what is wrong with e as a retraction (see
// Change), or "" when it is none or a sound one: a retraction names an
// earlier seq — never its own, a later one or none. (The same seq named
// twice is allowed: a retraction retried after a write whose outcome was
// unknown says the same thing again.)
func (v *verifier) checkRetraction(e *airlock.Event) string {
	if e.Outcome != airlock.OutcomeFailure || !bytes.Contains(e.Details, []byte(`"retracts_seq"`)) {
		return ""
	}
	var d struct {
		RetractsSeq json.RawMessage `json:"retracts_seq"`
	}
	if json.Unmarshal(e.Details, &d) != nil || d.RetractsSeq == nil {
		return ""
	}
	var n int64
	if err := json.Unmarshal(d.RetractsSeq, &n); err != nil {
		return fmt.Sprintf("retraction names %s, not a seq", printableJSON(d.RetractsSeq))
	}
	if n < 1 || n >= e.Seq {
		return fmt.Sprintf("retraction names seq %d, which is not an earlier event", n)
	}
	return ""
}

func printableJSON(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return strconv.Quote(string(b))
}

func (v *verifier) accept(e *airlock.Event) {
	v.rep.Events++
	v.rep.LastSeq = e.Seq
	v.prevHash = e.Hash
	v.expect = e.Seq + 1
	if v.treeOK {
		v.tree.Append(tlog.EventLeaf(e.Hash))
	}
	if len(v.cps) > 0 {
		v.checkCheckpoints()
	}
}

// checkCheckpoints settles queued checkpoints whose event has been accepted.
func (v *verifier) checkCheckpoints() {
	if !v.started {
		return
	}
	last := v.expect - 1
	for v.cpHead < len(v.cps) && !v.done {
		c := v.cps[v.cpHead]
		if c.Seq > last {
			break
		}
		v.cpHead++
		if !VerifyCheckpoint(v.pub, c) {
			v.fail(ProblemBadCheckpoint, c.Seq, "checkpoint signature is invalid")
			return
		}
		if c.Seq < last {
			v.fail(ProblemReordered, c.Seq, fmt.Sprintf("checkpoint for seq %d appears after event %d", c.Seq, last))
			return
		}
		if c.Hash != v.prevHash {
			v.fail(ProblemModified, v.lastCP+1, fmt.Sprintf(
				"checkpoint %d signs hash %.16s… but the log has %.16s…: history after seq %d was rewritten", c.Seq, c.Hash, v.prevHash, v.lastCP))
			return
		}
		if c.Root != "" {
			if !v.treeOK {
				v.unrooted++
			} else if root := hex.EncodeToString(v.tree.Root()); root != c.Root {
				v.fail(ProblemModified, v.lastCP+1, fmt.Sprintf(
					"checkpoint %d signs Merkle root %.16s… but the events give %.16s…", c.Seq, c.Root, root))
				return
			}
		}
		v.rep.Checkpoints++
		v.lastCP = c.Seq
	}
	if v.cpHead == len(v.cps) {
		v.cps, v.cpHead = v.cps[:0], 0
	}
}

// finish judges what is pending and returns the report.
func (v *verifier) finish() *Report {
	for v.n > 0 && !v.done {
		v.judgeOldest()
	}
	if !v.done {
		if !v.started {
			v.started = true
		}
		last := v.expect - 1
		for _, c := range v.cps[v.cpHead:] {
			if !VerifyCheckpoint(v.pub, c) {
				v.fail(ProblemBadCheckpoint, c.Seq, "checkpoint signature is invalid")
				break
			}
			if c.Seq > last {
				v.fail(ProblemTruncated, last+1, fmt.Sprintf("log ends at seq %d but a checkpoint signed at %s names seq %d",
					last, c.Time.Format("2006-01-02T15:04:05Z07:00"), c.Seq))
				break
			}
		}
	}
	if !v.done {
		v.rep.OK = true
		switch {
		case v.rep.Events == 0:
			v.rep.Message = "OK: no events"
		default:
			v.rep.Message = fmt.Sprintf("OK: %d events (seq %d..%d), %d checkpoints verified", v.rep.Events, v.rep.FirstSeq, v.rep.LastSeq, v.rep.Checkpoints)
		}
		if v.rep.FirstSeq > 1 {
			v.rep.Message += fmt.Sprintf("; partial export: the prev_hash of seq %d is trusted", v.rep.FirstSeq)
			if v.unrooted > 0 {
				v.rep.Message += "; Merkle roots not checked (they need the log from seq 1)"
			}
		}
		if v.rep.Events > 0 && v.lastCP < v.rep.LastSeq {
			v.rep.Message += fmt.Sprintf("; events after seq %d are not covered by a checkpoint", v.lastCP)
		}
	}
	if v.rep.Events == 0 {
		v.rep.FirstSeq = 0
	}
	return &v.rep
}

// corrupt ends verification at stored events the store cannot decode:
// the events read before them are judged, then the log is reported
// modified at the first seq not yet accounted for.
func (v *verifier) corrupt(err *airlock.CorruptEventsError) *Report {
	for v.n > 0 && !v.done {
		v.judgeOldest()
	}
	v.fail(ProblemModified, v.expect, err.Error())
	if v.rep.Events == 0 {
		v.rep.FirstSeq = 0
	}
	return &v.rep
}

var errStop = errors.New("audit: stop scan")

// Verify checks the whole log in store: the hash chain from seq 1 (genesis
// prev_hash ""), every checkpoint's signature under pub and its hash
// against the chain, that no checkpoint names a seq beyond the end, and
// that the store's own head (AuditHead, read first) names a stored event
// with the same hash: rows deleted after the last checkpoint show up as a
// head beyond the stored events (ProblemTruncated). It streams events with
// ScanEvents. A tampered log gives a Report with OK false; the error is for
// failures to read the store.
func Verify(ctx context.Context, store airlock.AuditStore, pub ed25519.PublicKey) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, airlock.Errorf(airlock.EINVALID, "audit verify: an ed25519 public key is required")
	}
	// The head is read before the events: appends that race with the scan
	// only add events after it.
	head, err := store.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit verify: read head: %w", err)
	}
	cps, err := store.ListCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit verify: list checkpoints: %w", err)
	}
	v := newVerifier(pub, false)
	ci := 0
	headHash, headSeen := "", false
	err = store.ScanEvents(ctx, 0, func(e airlock.Event) error {
		if e.Seq == head.Seq {
			headHash, headSeen = e.Hash, true
		}
		for ci < len(cps) && cps[ci].Seq < e.Seq {
			if !v.addCheckpoint(cps[ci]) {
				return errStop
			}
			ci++
		}
		if !v.addEvent(e) {
			return errStop
		}
		return nil
	})
	if corrupt := (*airlock.CorruptEventsError)(nil); errors.As(err, &corrupt) {
		return v.corrupt(corrupt), nil
	}
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("audit verify: scan events: %w", err)
	}
	for ; ci < len(cps) && !v.done; ci++ {
		v.addCheckpoint(cps[ci])
	}
	rep := v.finish()
	if rep.OK {
		checkHead(rep, head, headHash, headSeen)
	}
	return rep, nil
}

// checkHead fails an otherwise intact report when the store's recorded
// head is not one of the verified events: events after the last
// checkpoint were deleted (the head is beyond them) or the head's event
// was replaced.
func checkHead(rep *Report, head airlock.AuditHead, hash string, seen bool) {
	switch {
	case head.Seq == 0:
	case head.Seq > rep.LastSeq || !seen:
		first := rep.LastSeq + 1
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemTruncated, first
		if first == head.Seq {
			rep.Message = fmt.Sprintf("seq %d: the store's head names seq %d but the log ends at seq %d: event %d was deleted",
				first, head.Seq, rep.LastSeq, head.Seq)
		} else {
			rep.Message = fmt.Sprintf("seq %d: the store's head names seq %d but the log ends at seq %d: events %d..%d were deleted",
				first, head.Seq, rep.LastSeq, first, head.Seq)
		}
	case hash != head.Hash:
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemModified, head.Seq
		rep.Message = fmt.Sprintf("seq %d: the store's head records hash %.16s… but the event there has %.16s…", head.Seq, head.Hash, hash)
	}
}
