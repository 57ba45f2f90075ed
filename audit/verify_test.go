package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
)

// fillLog appends n sample events to store through a Log (Submit, so that
// batches form) and closes it, leaving a final checkpoint at the head.
func fillLog(t testing.TB, store airlock.AuditStore, n, every int) {
	t.Helper()
	fillLogBatch(t, store, n, every, 50)
}

// fillLogBatch is fillLog with batches of up to maxBatch events.
func fillLogBatch(t testing.TB, store airlock.AuditStore, n, every, maxBatch int) {
	t.Helper()
	l := openLog(t, store, Options{CheckpointEvery: every, MaxBatch: maxBatch})
	rs := make([]*Receipt, 0, min(n, 1<<16))
	for i := range n {
		rs = append(rs, l.Submit(sampleEvent(i)))
		if len(rs) == cap(rs) {
			waitAll(t, rs)
			rs = rs[:0]
		}
	}
	waitAll(t, rs)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func waitAll(t testing.TB, rs []*Receipt) {
	t.Helper()
	for _, r := range rs {
		if _, err := r.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func exportBytes(t testing.TB, store airlock.AuditStore, f airlock.EventFilter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), store, &buf, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// forgeLine renders e as an export event line, as an attacker would.
func forgeLine(t testing.TB, e airlock.Event) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(exportEvent{Type: LineEvent, Event: e}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// rehash recomputes e's hash as an attacker without the signing key can.
func rehash(e airlock.Event) airlock.Event {
	e.Hash = Hash(e)
	return e
}

func checkReport(t *testing.T, rep *Report, err error, problem string, seq int64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if problem == "" {
		if !rep.OK || rep.Problem != "" || rep.FirstBadSeq != 0 {
			t.Fatalf("report = %+v, want OK", rep)
		}
		return
	}
	if rep.OK || rep.Problem != problem || rep.FirstBadSeq != seq {
		t.Fatalf("report = %+v, want problem %q at seq %d", rep, problem, seq)
	}
	if !strings.Contains(rep.Message, strconv.FormatInt(seq, 10)) || strings.Contains(rep.Message, "\n") {
		t.Fatalf("message %q should be one line naming seq %d", rep.Message, seq)
	}
}

// lastCheckpointBefore returns the seq of the last checkpoint below seq (0 if none).
// rehashedAt is where Verify places an event whose content and own hash
// were rewritten: at the event, found by the next event's prev_hash;
// unless a checkpoint signs exactly that event (batch boundaries, hence
// checkpoint positions, depend on timing), which then finds it first and
// can only say that history after the checkpoint before was rewritten.
func rehashedAt(cps []airlock.Checkpoint, seq int64) int64 {
	for _, c := range cps {
		if c.Seq == seq {
			return lastCheckpointBefore(cps, seq) + 1
		}
	}
	return seq
}

func lastCheckpointBefore(cps []airlock.Checkpoint, seq int64) int64 {
	var s int64
	for _, c := range cps {
		if c.Seq < seq {
			s = c.Seq
		}
	}
	return s
}

func TestVerifyUntouched(t *testing.T) {
	n := 100_000
	if testing.Short() || raceEnabled {
		n = 10_000
	}
	store := &memStore{}
	fillLog(t, store, n, 1000)
	rep, err := Verify(t.Context(), store, testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != int64(n) || rep.FirstSeq != 1 || rep.LastSeq != int64(n) || rep.Checkpoints != len(store.cps) || rep.Checkpoints < n/4096 {
		t.Fatalf("online report = %+v (checkpoints stored %d)", rep, len(store.cps))
	}
	exp := exportBytes(t, store, airlock.EventFilter{})
	rep, err = VerifyExport(bytes.NewReader(exp), testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != int64(n) || rep.Checkpoints != len(store.cps) {
		t.Fatalf("offline report = %+v", rep)
	}
	if strings.Count(string(exp), "\n") != n+len(store.cps) {
		t.Fatalf("export has %d lines, want %d", strings.Count(string(exp), "\n"), n+len(store.cps))
	}
}

func TestExportFormat(t *testing.T) {
	store := &memStore{}
	fillLog(t, store, 10, 5)
	lines := strings.Split(strings.TrimSuffix(string(exportBytes(t, store, airlock.EventFilter{})), "\n"), "\n")
	if len(lines) != 10+len(store.cps) {
		t.Fatalf("%d lines", len(lines))
	}
	var prevSeq int64
	for _, ln := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("line %q: %v", ln, err)
		}
		seq := int64(m["seq"].(float64))
		switch m["type"] {
		case "event":
			if seq != prevSeq+1 {
				t.Fatalf("event %d after %d", seq, prevSeq)
			}
			prevSeq = seq
			for _, k := range []string{"time", "actor", "action", "outcome", "details", "prev_hash", "hash"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("event line lacks %s: %s", k, ln)
				}
			}
			if !strings.Contains(ln, `<&>`) {
				t.Fatalf("details re-escaped (would break the hash): %s", ln)
			}
		case "checkpoint":
			if seq != prevSeq {
				t.Fatalf("checkpoint %d does not directly follow its event (last event %d)", seq, prevSeq)
			}
			for _, k := range []string{"hash", "time", "key_id", "signature"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("checkpoint line lacks %s: %s", k, ln)
				}
			}
		default:
			t.Fatalf("line type %v", m["type"])
		}
	}
	if _, err := func() (int, error) {
		return 0, Export(t.Context(), store, &bytes.Buffer{}, airlock.EventFilter{Desc: true})
	}(); airlock.ErrorCode(err) != airlock.EINVALID {
		t.Errorf("Desc export: %v", err)
	}
}

func TestPartialExportVerifies(t *testing.T) {
	store := &memStore{}
	fillLog(t, store, 300, 50)
	// Events appended within one clock tick share a time: the bounds are
	// the first event at or after since and the last one before until.
	since := store.events[120].Time // seq 121, or an earlier one of the same time
	first := int64(0)
	for _, e := range store.events {
		if !e.Time.Before(since) {
			first = e.Seq
			break
		}
	}
	exp := exportBytes(t, store, airlock.EventFilter{Since: since})
	rep, err := VerifyExport(bytes.NewReader(exp), testPub())
	checkReport(t, rep, err, "", 0)
	if rep.FirstSeq != first || rep.LastSeq != 300 || !strings.Contains(rep.Message, fmt.Sprintf("prev_hash of seq %d is trusted", first)) {
		t.Fatalf("report = %+v, want seq %d..300", rep, first)
	}
	until := store.events[199].Time // stop before seq 200 (and any of its time)
	last := int64(0)
	for _, e := range store.events {
		if e.Seq > 150 && e.Time.Before(until) {
			last = e.Seq
		}
	}
	exp = exportBytes(t, store, airlock.EventFilter{AfterSeq: 150, Until: until})
	rep, err = VerifyExport(bytes.NewReader(exp), testPub())
	checkReport(t, rep, err, "", 0)
	if rep.FirstSeq != 151 || rep.LastSeq != last {
		t.Fatalf("report = %+v, want seq 151..%d", rep, last)
	}
	exp = exportBytes(t, store, airlock.EventFilter{Limit: 10})
	rep, err = VerifyExport(bytes.NewReader(exp), testPub())
	checkReport(t, rep, err, "", 0)
	if rep.LastSeq != 10 {
		t.Fatalf("report = %+v", rep)
	}
	// A filtered excerpt is not a contiguous chain and says so.
	exp = exportBytes(t, store, airlock.EventFilter{ActorName: "user3"})
	rep, err = VerifyExport(bytes.NewReader(exp), testPub())
	if err != nil || rep.OK {
		t.Fatalf("excerpt verified: %+v %v", rep, err)
	}
}

func TestVerifyDetectsTamperedExport(t *testing.T) {
	const n, k = 1000, 437
	store := &memStore{}
	fillLog(t, store, n, 100)
	exp := string(exportBytes(t, store, airlock.EventFilter{}))
	orig := strings.Split(strings.TrimSuffix(exp, "\n"), "\n")
	lineOf := func(seq int64) int {
		pfx := `{"type":"event","seq":` + strconv.FormatInt(seq, 10) + `,`
		for i, l := range orig {
			if strings.HasPrefix(l, pfx) {
				return i
			}
		}
		t.Fatalf("no line for seq %d", seq)
		return -1
	}
	replaceIn := func(seq int64, old, new string) func([]string) []string {
		return func(ls []string) []string {
			i := lineOf(seq)
			if !strings.Contains(ls[i], old) {
				t.Fatalf("line %d lacks %q", seq, old)
			}
			ls[i] = strings.Replace(ls[i], old, new, 1)
			return ls
		}
	}
	ev := func(seq int64) airlock.Event { return store.events[seq-1] }
	firstCP := store.cps[0]
	cpLine := func() int {
		for i, l := range orig {
			if strings.HasPrefix(l, `{"type":"checkpoint","seq":`+strconv.FormatInt(firstCP.Seq, 10)+`,`) {
				return i
			}
		}
		t.Fatal("no checkpoint line")
		return -1
	}
	flipHex := func(h string) string {
		if h[0] == 'a' {
			return "b" + h[1:]
		}
		return "a" + h[1:]
	}

	for _, tc := range []struct {
		name    string
		tamper  func([]string) []string
		problem string
		seq     int64
	}{
		{"untouched", func(ls []string) []string { return ls }, "", 0},
		{"modified/action", replaceIn(k, `"action":"db.query"`, `"action":"db.querz"`), ProblemModified, k},
		{"modified/details", replaceIn(k, `select`, `selecT`), ProblemModified, k},
		{"modified/actor", replaceIn(k, `"name":"user`, `"name":"usEr`), ProblemModified, k},
		{"modified/time", replaceIn(k, `"time":"20`, `"time":"19`), ProblemModified, k},
		{"modified/hash", replaceIn(k, ev(k).Hash, flipHex(ev(k).Hash)), ProblemModified, k},
		{"modified/prev_hash", replaceIn(k, `"prev_hash":"`+ev(k).PrevHash, `"prev_hash":"`+flipHex(ev(k).PrevHash)), ProblemModified, k},
		{"modified/seq-field", replaceIn(k, `"seq":437,`, `"seq":438,`), ProblemModified, k},
		{"modified/not-json", replaceIn(k, `"outcome":`, `"outcome"`), ProblemModified, k},
		{"modified/unknown-field", replaceIn(k, `"resource":`, `"resourcX":`), ProblemModified, k},
		{"modified/first-event", replaceIn(1, `select`, `selecT`), ProblemModified, 1},
		{"modified/last-event", replaceIn(n, `select`, `selecT`), ProblemModified, n},
		{"modified/rehashed", func(ls []string) []string {
			e := ev(k)
			e.Outcome = airlock.OutcomeDenied
			ls[lineOf(k)] = forgeLine(t, rehash(e))
			return ls
		}, ProblemModified, rehashedAt(store.cps, k)},
		{"modified/rechained", func(ls []string) []string {
			prev := ev(k - 1).Hash
			for s := int64(k); s <= n; s++ {
				e := ev(s)
				if s == k {
					e.Outcome = airlock.OutcomeDenied
				}
				e.PrevHash = prev
				e = rehash(e)
				prev = e.Hash
				ls[lineOf(s)] = forgeLine(t, e)
			}
			return ls
		}, ProblemModified, lastCheckpointBefore(store.cps, k) + 1},
		{"missing/one", func(ls []string) []string {
			i := lineOf(k)
			return append(ls[:i], ls[i+1:]...)
		}, ProblemMissing, k},
		{"missing/range", func(ls []string) []string {
			i, j := lineOf(k), lineOf(k+5)
			return append(ls[:i], ls[j:]...)
		}, ProblemMissing, k},
		{"reordered/swap", func(ls []string) []string {
			i, j := lineOf(k), lineOf(k+1)
			ls[i], ls[j] = ls[j], ls[i]
			return ls
		}, ProblemReordered, k},
		{"reordered/moved-later", func(ls []string) []string {
			i := lineOf(k)
			moved := ls[i]
			ls = append(ls[:i:i], ls[i+1:]...)
			j := lineOf(k+6) - 1
			return append(ls[:j], append([]string{moved}, ls[j:]...)...)
		}, ProblemReordered, k},
		{"inserted/duplicate-seq", func(ls []string) []string {
			e := ev(k)
			e.Action = "grant.created"
			e.Details = json.RawMessage(`{"forged":true}`)
			i := lineOf(k)
			return append(ls[:i], append([]string{forgeLine(t, rehash(e))}, ls[i:]...)...)
		}, ProblemInserted, k},
		{"inserted/duplicate-after", func(ls []string) []string {
			e := ev(k)
			e.Details = json.RawMessage(`{"forged":true}`)
			e.PrevHash = ev(k).Hash
			i := lineOf(k + 1)
			return append(ls[:i], append([]string{forgeLine(t, rehash(e))}, ls[i:]...)...)
		}, ProblemInserted, k},
		{"inserted/unlinked", func(ls []string) []string {
			e := ev(k)
			e.PrevHash = strings.Repeat("f", 64)
			e.Details = json.RawMessage(`{"forged":true}`)
			ls[lineOf(k)] = forgeLine(t, rehash(e))
			return ls
		}, ProblemInserted, k},
		{"truncated/tail", func(ls []string) []string {
			// Drop the last 10 events but keep the final checkpoint line.
			i := lineOf(n - 9)
			return append(ls[:i:i], ls[len(ls)-1])
		}, ProblemTruncated, n - 9},
		{"truncated/all-after-checkpoint", func(ls []string) []string {
			cp := store.cps[len(store.cps)-2]
			i := lineOf(cp.Seq - 3)
			return append(ls[:i:i], ls[len(ls)-1])
		}, ProblemTruncated, store.cps[len(store.cps)-2].Seq - 3},
		{"bad-checkpoint/signature", func(ls []string) []string {
			i := cpLine()
			sig := firstCP.Signature
			ls[i] = strings.Replace(ls[i], sig, "AAAA"+sig[4:], 1)
			return ls
		}, ProblemBadCheckpoint, firstCP.Seq},
		{"bad-checkpoint/hash", func(ls []string) []string {
			i := cpLine()
			ls[i] = strings.Replace(ls[i], firstCP.Hash, flipHex(firstCP.Hash), 1)
			return ls
		}, ProblemBadCheckpoint, firstCP.Seq},
		{"bad-checkpoint/beyond-end", func(ls []string) []string {
			forged := SignCheckpoint(ed25519Other(), "x", n+5, strings.Repeat("a", 64), firstCP.Time)
			b, _ := json.Marshal(exportCheckpoint{Type: LineCheckpoint, Checkpoint: forged})
			return append(ls, string(b))
		}, ProblemBadCheckpoint, n + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := tc.tamper(append([]string(nil), orig...))
			rep, err := VerifyExport(strings.NewReader(strings.Join(ls, "\n")+"\n"), testPub())
			checkReport(t, rep, err, tc.problem, tc.seq)
		})
	}
}

// tamperStore is a store an attacker with database access edits.
type tamperStore interface {
	airlock.AuditStore
	setAction(t *testing.T, seq int64, action string)
	deleteEvent(t *testing.T, seq int64)
	// swapContents swaps everything but seq between two rows.
	swapContents(t *testing.T, a, b int64)
	replace(t *testing.T, e airlock.Event)
	truncateAfter(t *testing.T, seq int64)
	setSignature(t *testing.T, seq int64, sig string)
	event(t *testing.T, seq int64) airlock.Event
}

func (m *memStore) idx(seq int64) int {
	for i, e := range m.events {
		if e.Seq == seq {
			return i
		}
	}
	panic("no event")
}
func (m *memStore) setAction(t *testing.T, seq int64, a string) { m.events[m.idx(seq)].Action = a }
func (m *memStore) deleteEvent(t *testing.T, seq int64) {
	i := m.idx(seq)
	m.events = append(m.events[:i], m.events[i+1:]...)
}
func (m *memStore) swapContents(t *testing.T, a, b int64) {
	i, j := m.idx(a), m.idx(b)
	m.events[i], m.events[j] = m.events[j], m.events[i]
	m.events[i].Seq, m.events[j].Seq = a, b
}
func (m *memStore) replace(t *testing.T, e airlock.Event) { m.events[m.idx(e.Seq)] = e }
func (m *memStore) truncateAfter(t *testing.T, seq int64) { m.events = m.events[:m.idx(seq)+1] }
func (m *memStore) setSignature(t *testing.T, seq int64, sig string) {
	for i := range m.cps {
		if m.cps[i].Seq == seq {
			m.cps[i].Signature = sig
		}
	}
}
func (m *memStore) event(t *testing.T, seq int64) airlock.Event { return m.events[m.idx(seq)] }

// runStoreTamper tampers with a fresh store per case and checks Verify
// (online) and VerifyExport of an export of the tampered store (offline).
func runStoreTamper(t *testing.T, open func(t *testing.T) tamperStore) {
	const n, k = 1000, 437
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, s tamperStore)
		problem string
		seq     func(s tamperStore) int64
	}{
		{"untouched", func(t *testing.T, s tamperStore) {}, "", nil},
		{"modified/one-byte", func(t *testing.T, s tamperStore) { s.setAction(t, k, "db.querz") }, ProblemModified, nil},
		{"modified/rehashed", func(t *testing.T, s tamperStore) {
			e := s.event(t, k)
			e.Outcome = airlock.OutcomeDenied
			s.replace(t, rehash(e))
		}, ProblemModified, func(s tamperStore) int64 {
			cps, _ := s.ListCheckpoints(context.Background())
			return rehashedAt(cps, k)
		}},
		{"missing", func(t *testing.T, s tamperStore) { s.deleteEvent(t, k) }, ProblemMissing, nil},
		{"reordered/swapped", func(t *testing.T, s tamperStore) { s.swapContents(t, k, k+1) }, ProblemReordered, nil},
		{"inserted", func(t *testing.T, s tamperStore) {
			e := s.event(t, k)
			e.PrevHash = strings.Repeat("f", 64)
			e.Details = json.RawMessage(`{"forged":true}`)
			s.replace(t, rehash(e))
		}, ProblemInserted, nil},
		{"truncated", func(t *testing.T, s tamperStore) { s.truncateAfter(t, n-10) }, ProblemTruncated,
			func(tamperStore) int64 { return n - 9 }},
		{"bad-checkpoint", func(t *testing.T, s tamperStore) {
			cps, _ := s.ListCheckpoints(context.Background())
			s.setSignature(t, cps[0].Seq, "AAAA"+cps[0].Signature[4:])
		}, ProblemBadCheckpoint, func(s tamperStore) int64 {
			cps, _ := s.ListCheckpoints(context.Background())
			return cps[0].Seq
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			fillLogBatch(t, s, n, 100, 200)
			tc.tamper(t, s)
			var want int64
			if tc.problem != "" {
				want = k
				if tc.seq != nil {
					want = tc.seq(s)
				}
			}
			rep, err := Verify(t.Context(), s, testPub())
			checkReport(t, rep, err, tc.problem, want)
			rep, err = VerifyExport(bytes.NewReader(exportBytes(t, s, airlock.EventFilter{})), testPub())
			checkReport(t, rep, err, tc.problem, want)
		})
	}
}

func TestVerifyDetectsTamperedStore(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		runStoreTamper(t, func(t *testing.T) tamperStore { return &memStore{} })
	})
}

func TestVerifyRejectsBadKey(t *testing.T) {
	if _, err := Verify(t.Context(), &memStore{}, nil); airlock.ErrorCode(err) != airlock.EINVALID {
		t.Errorf("Verify(nil key) = %v", err)
	}
	if _, err := VerifyExport(strings.NewReader(""), []byte{1, 2}); airlock.ErrorCode(err) != airlock.EINVALID {
		t.Errorf("VerifyExport(short key) = %v", err)
	}
	store := &memStore{}
	fillLog(t, store, 50, 10)
	rep, err := Verify(t.Context(), store, ed25519Other().Public().(ed25519PublicKey))
	checkReport(t, rep, err, ProblemBadCheckpoint, store.cps[0].Seq)
}
