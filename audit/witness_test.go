package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// witnessedLog writes n events with a checkpoint every `every` to a memory
// store, with a file witness; it returns the store and the witness path.
func witnessedLog(t *testing.T, n, every int, more ...Witness) (*memStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "witness.jsonl")
	store := &memStore{}
	l := openLog(t, store, Options{CheckpointEvery: every, MaxBatch: 50, Witnesses: append([]Witness{&FileWitness{Path: path}}, more...)})
	for i := range n {
		if _, err := l.Append(context.Background(), sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store, path
}

func readWitnessFile(t *testing.T, path string) (airlock.Checkpoint, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, n, err := ReadWitnessed(f, testPub())
	if err != nil {
		t.Fatal(err)
	}
	return c, n
}

// TestFileWitnessGetsTheNewestCheckpoint: the witness holds the store's
// newest checkpoint after Close. It may lack ones in between: a witness
// keeps only the newest it has not delivered yet (a slow one is never a
// queue), which is all a rollback check needs.
func TestFileWitnessGetsTheNewestCheckpoint(t *testing.T) {
	store, path := witnessedLog(t, 250, 100)
	newest, n := readWitnessFile(t, path)
	if n < 1 || n > len(store.cps) || newest != store.cps[len(store.cps)-1] || newest.Seq != 250 || newest.Root == "" {
		t.Fatalf("witness holds %d checkpoints, newest %+v; the store %d, newest %+v", n, newest, len(store.cps), store.cps[len(store.cps)-1])
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("witness file mode %v, %v", st.Mode(), err)
	}
}

func verifyWitnessed(t *testing.T, store *memStore, w airlock.Checkpoint) *Report {
	t.Helper()
	rep, err := VerifyExportWitnessed(bytes.NewReader(exportBytes(t, store, airlock.EventFilter{})), testPub(), []airlock.Checkpoint{w})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestWitnessCatchesTruncation: events after the last checkpoint the
// store keeps are deleted, with the checkpoints that named them — the
// store's own verify cannot tell, the witness can.
func TestWitnessCatchesTruncation(t *testing.T) {
	store, path := witnessedLog(t, 250, 100)
	newest, _ := readWitnessFile(t, path)
	if rep := verifyWitnessed(t, store, newest); !rep.OK {
		t.Fatalf("intact log against its witness: %+v", rep)
	}
	// Keep events 1..210 and the checkpoints up to them.
	store.events = store.events[:210]
	keep := store.cps[:0]
	for _, c := range store.cps {
		if c.Seq <= 210 {
			keep = append(keep, c)
		}
	}
	store.cps = keep
	if rep, err := Verify(context.Background(), store, testPub()); err != nil || !rep.OK {
		t.Fatalf("the store alone should look intact: %+v, %v", rep, err)
	}
	rep := verifyWitnessed(t, store, newest)
	if rep.OK || rep.Problem != ProblemTruncated || rep.FirstBadSeq != 211 {
		t.Fatalf("truncated log against its witness: %+v", rep)
	}
}

// TestWitnessCatchesRollback: the store is replaced by an old copy and
// goes on writing, so it is longer than the witness again, but different.
func TestWitnessCatchesRollback(t *testing.T) {
	store, path := witnessedLog(t, 250, 100)
	newest, _ := readWitnessFile(t, path)
	old := &memStore{}
	l := openLog(t, old, Options{CheckpointEvery: 100, MaxBatch: 50})
	for i := range 300 { // another history, longer than the witnessed one
		if _, err := l.Append(context.Background(), sampleEvent(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(context.Background(), old, testPub()); err != nil || !rep.OK {
		t.Fatalf("the other history verifies alone: %+v, %v", rep, err)
	}
	rep := verifyWitnessed(t, old, newest)
	if rep.OK || rep.Problem != ProblemModified {
		t.Fatalf("rolled-back log against the witness: %+v", rep)
	}
	_ = store
}

func TestReadWitnessedRefuses(t *testing.T) {
	_, path := witnessedLog(t, 30, 10)
	good, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	// The witness may hold only the newest checkpoint (one it had not
	// delivered yet replaces an older one): forge from that.
	var c airlock.Checkpoint
	json.Unmarshal([]byte(lines[len(lines)-1]), &c)
	c.Seq += 1000 // a forged, newer checkpoint
	forged, _ := json.Marshal(c)
	for name, in := range map[string]string{
		"empty":      "",
		"forged":     string(good) + string(forged) + "\n",
		"not json":   string(good) + "seq 40\n",
		"unknown":    strings.Replace(string(good), `"seq"`, `"x":1,"seq"`, 1),
		"two a line": lines[0] + lines[len(lines)-1] + "\n",
		"long line":  strings.Repeat(" ", maxWitnessLine+1) + "\n",
	} {
		if _, _, err := ReadWitnessed(strings.NewReader(in), testPub()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := ReadWitnessed(bytes.NewReader(good), ed25519Other().Public().(ed25519PublicKey)); err == nil {
		t.Error("accepted a record signed by another key")
	}
}

// FuzzReadWitnessed: the witness parser never panics, and what it returns
// is signed by the key.
func FuzzReadWitnessed(f *testing.F) {
	c := SignTreeCheckpoint(testKey, "k", 5, strings.Repeat("a", 64), strings.Repeat("b", 64), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	line, _ := json.Marshal(c)
	f.Add(append(line, '\n'))
	f.Add([]byte("{}\n{\"seq\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := ReadWitnessed(bytes.NewReader(data), testPub())
		if err == nil && !VerifyCheckpoint(testPub(), got) {
			t.Fatalf("returned an unsigned checkpoint %+v", got)
		}
	})
}

// TestWebhookWitness: a webhook that fails does not hold up the log; it
// gets the newest checkpoint once it answers again.
func TestWebhookWitness(t *testing.T) {
	var mu sync.Mutex
	healthy := false
	var got []airlock.Checkpoint
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if !healthy {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var c airlock.Checkpoint
		if err := json.Unmarshal(body, &c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, c)
	}))
	defer srv.Close()
	store := &memStore{}
	l := openLog(t, store, Options{CheckpointEvery: 10, MaxBatch: 5, Witnesses: []Witness{&WebhookWitness{URL: srv.URL + "/cp?token=secret"}}})
	for i := range 40 {
		if _, err := l.Append(context.Background(), sampleEvent(i)); err != nil {
			t.Fatalf("append while the witness is down: %v", err)
		}
	}
	mu.Lock()
	healthy = true
	mu.Unlock()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[len(got)-1] != store.cps[len(store.cps)-1] || !VerifyCheckpoint(testPub(), got[len(got)-1]) {
		t.Fatalf("webhook got %d checkpoints, last %+v; want the newest %+v", len(got), got, store.cps[len(store.cps)-1])
	}
	if s := (&WebhookWitness{URL: srv.URL + "/cp?token=secret"}).String(); strings.Contains(s, "secret") {
		t.Fatalf("witness name %q shows the query", s)
	}
}

func TestParseWitness(t *testing.T) {
	for spec, want := range map[string]string{"/var/lib/w.jsonl": "file", "https://w.example/cp": "webhook", "http://10.0.0.1:8080/": "webhook", "w.jsonl": "", "ftp://x": "", "https://": ""} {
		w, err := ParseWitness(spec)
		kind := ""
		switch w.(type) {
		case *FileWitness:
			kind = "file"
		case *WebhookWitness:
			kind = "webhook"
		}
		if kind != want || (want == "") != (err != nil) {
			t.Errorf("ParseWitness(%q) = %T, %v; want %s", spec, w, err, want)
		}
	}
}

// A log whose oldest events are gone (or a partial export) is not
// "intact against the witness": checkpoints before its first event could
// not be checked, so the verify fails at seq 1.
func TestWitnessCatchesMissingStart(t *testing.T) {
	store, path := witnessedLog(t, 300, 50)
	newest, _ := readWitnessFile(t, path)
	exp := exportBytes(t, store, airlock.EventFilter{AfterSeq: 200})
	rep, err := VerifyExportWitnessed(bytes.NewReader(exp), testPub(), []airlock.Checkpoint{newest, store.cps[0]})
	if err != nil || rep.OK || rep.Problem != ProblemTruncated || rep.FirstBadSeq != 1 {
		t.Fatalf("a log from seq 201 against witnessed checkpoints: %+v, %v", rep, err)
	}
	if rep := verifyWitnessed(t, store, newest); !rep.OK {
		t.Fatalf("the whole log: %+v", rep)
	}
}

// A webhook witness follows no redirect: the checkpoint goes to the URL
// configured or fails, never to where an answer points.
func TestWebhookWitnessNoRedirect(t *testing.T) {
	var got atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := SignTreeCheckpoint(testKey, "k", 5, strings.Repeat("a", 64), strings.Repeat("b", 64), time.Now())
	if err := (&WebhookWitness{URL: redirect.URL}).Witness(context.Background(), c); err == nil {
		t.Fatal("a redirect was taken for delivery")
	}
	if got.Load() != 0 {
		t.Fatal("the checkpoint was posted where the redirect pointed")
	}
}
