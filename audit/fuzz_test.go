package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
)

// smallExport is a deterministic export of a 6-event log with checkpoints.
func smallExport(t testing.TB) []byte { return smallExportN(t, 6, 3) }

// smallExportN is a deterministic export of an n-event log with a
// checkpoint every `every` events.
func smallExportN(t testing.TB, n, every int) []byte {
	t.Helper()
	store := &memStore{}
	clock := newStepClock()
	l, err := Open(context.Background(), store, Options{Signer: testKey, Now: clock.Now, CheckpointEvery: every, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := l.Append(context.Background(), sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Export(context.Background(), store, &buf, airlock.EventFilter{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzVerifyExport when
// AIRLOCK_WRITE_FUZZ_SEEDS=1; otherwise it checks the seeds still verify.
func TestWriteFuzzSeeds(t *testing.T) {
	exp := smallExport(t)
	lines := strings.SplitAfter(string(exp), "\n")
	seeds := map[string]string{
		"valid":     string(exp),
		"swapped":   lines[1] + lines[0] + strings.Join(lines[2:], ""),
		"truncated": lines[0] + lines[len(lines)-2],
		"garbage":   lines[0] + "{\"type\":\"event\",\"seq\":\n",
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyExport")
	if os.Getenv("AIRLOCK_WRITE_FUZZ_SEEDS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(s))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := VerifyExport(strings.NewReader(seeds["valid"]), testPub())
	if err != nil || !rep.OK || rep.Events != 6 || rep.Checkpoints != 2 {
		t.Fatalf("valid seed: %+v %v", rep, err)
	}
	rep, err = VerifyExport(strings.NewReader(seeds["swapped"]), testPub())
	if err != nil || rep.Problem != ProblemReordered || rep.FirstBadSeq != 1 {
		t.Fatalf("swapped seed: %+v %v", rep, err)
	}
}

func FuzzVerifyExport(f *testing.F) {
	exp := smallExport(f)
	f.Add(exp)
	f.Add([]byte{})
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"type":"checkpoint","seq":9223372036854775807}` + "\n"))
	pub := testPub()
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyExport(bytes.NewReader(data), pub)
		if err != nil {
			return
		}
		if rep.OK != (rep.Problem == "") || rep.Message == "" || strings.Contains(rep.Message, "\n") {
			t.Fatalf("inconsistent report %+v", rep)
		}
		if rep.OK && rep.FirstBadSeq != 0 {
			t.Fatalf("OK report with a bad seq: %+v", rep)
		}
		if rep.Events < 0 || rep.Checkpoints < 0 {
			t.Fatalf("negative counts: %+v", rep)
		}
	})
}

// FuzzCompactDetails pins prepare's shortcut for details that are already
// compact: whatever the input, the stored details are what json.Compact
// makes of it, and invalid JSON is refused.
func FuzzCompactDetails(f *testing.F) {
	f.Add([]byte(`{"kind":"query","text":"SELECT 1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := sampleEvent(1)
		e.Details = b
		got, err := prepare(e)
		var want bytes.Buffer
		cerr := json.Compact(&want, b)
		switch {
		case len(b) == 0:
			return
		case len(b) > MaxDetailsLen:
			return
		case cerr != nil:
			if err == nil {
				t.Fatalf("invalid JSON %q accepted as %q", b, got.Details)
			}
			return
		case want.Bytes()[0] != '{':
			if err == nil {
				t.Fatalf("non-object %q accepted", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid object %q refused: %v", b, err)
		}
		w := want.Bytes()
		if !utf8.Valid(w) || bytes.IndexByte(w, 0) >= 0 {
			w = []byte(cleanString(string(w)))
		}
		if !bytes.Equal(got.Details, w) {
			t.Fatalf("details %q stored as %q, want %q", b, got.Details, w)
		}
		if isCompact(b) && json.Valid(b) && !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("isCompact(%q) but json.Compact gives %q", b, want.Bytes())
		}
	})
}
