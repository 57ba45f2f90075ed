package stream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit/stream"
)

// readSeqs returns how often each seq appears in the JSON Lines files, and
// the size of the largest file.
func readSeqs(t *testing.T, files []string) (map[int64]int, int64) {
	t.Helper()
	seen := map[int64]int{}
	var largest int64
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		largest = max(largest, st.Size())
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e airlock.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: a line is not an event: %v: %q", p, err, sc.Text())
			}
			seen[e.Seq]++
		}
		f.Close()
	}
	return seen, largest
}

// TestFileRotationUnderLoad streams to a JSON Lines file rotated by size
// while 8 writers append to the log: every seq is in exactly one file (no
// failure, so no resend), no file passes max_bytes, and it rotated.
func TestFileRotationUnderLoad(t *testing.T) {
	w := newWorld(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w.start(t, parse(t, fmt.Sprintf(`
sinks:
  - name: archive
    type: file
    path: %s
    max_bytes: 65536
    max_files: 1000
    batch: 500
poll_interval: 5ms
`, path)), "node-a", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.appendN(t, 20000, 8)
	}()
	<-done
	head := w.head(t)
	w.waitCursor(t, "archive", head, time.Minute)
	rotated, err := stream.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) < 10 {
		t.Fatalf("%d rotated files; want many for 20000 events at 64 KiB each", len(rotated))
	}
	seen, largest := readSeqs(t, append(rotated, path))
	if largest > 65536 {
		t.Fatalf("a file is %d bytes; max_bytes is 65536", largest)
	}
	for seq := int64(1); seq <= head; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d appears %d times; want once", seq, seen[seq])
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v; want 0600", st.Mode().Perm())
	}
}

// fakeClock is a clock a test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestFileRotationByAge: a file open for max_age is rotated before the
// next write, and only max_files rotated files are kept.
func TestFileRotationByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	c := parse(t, fmt.Sprintf("sinks:\n  - {name: a, type: file, path: %s, max_age: 1h, max_files: 2}\n", path))
	clk := &fakeClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	s, err := stream.NewSink(c.Sinks[0], stream.SinkOptions{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := int64(1); i <= 4; i++ {
		if err := s.Send(context.Background(), []airlock.Event{{Seq: i, Action: "test.append", Outcome: "success"}}); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(time.Hour)
	}
	rotated, err := stream.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".20261203T120000.000000Z", path + ".20261203T130000.000000Z"}
	if fmt.Sprint(rotated) != fmt.Sprint(want) {
		t.Fatalf("rotated = %v; want %v (the oldest pruned)", rotated, want)
	}
	seen, _ := readSeqs(t, append(rotated, path))
	if seen[2] != 1 || seen[3] != 1 || seen[4] != 1 || seen[1] != 0 {
		t.Fatalf("seqs kept = %v; want 2, 3, 4 (1 was in the pruned file)", seen)
	}
}
