package stream_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOneStreamerPerSink: two servers on one store, each configured with
// the sink "archive" (each writing its own file), stream one at a time:
// while A holds the lease B writes nothing; when A stops, B takes over
// from A's cursor, so together the files hold every seq with no gap.
func TestOneStreamerPerSink(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { w := newWorld(t); oneStreamerPerSink(t, w, w) })
	t.Run("postgres", func(t *testing.T) { ws := newPostgresWorlds(t, 2); oneStreamerPerSink(t, ws[0], ws[1]) })
}

// oneStreamerPerSink runs server A on wa and B on wb (the same store).
func oneStreamerPerSink(t *testing.T, wa, wb *world) {
	w := wa
	dir := t.TempDir()
	cfg := func(who string) string {
		return fmt.Sprintf("lease: 1s\npoll_interval: 5ms\nsinks:\n  - {name: archive, type: file, path: %s, batch: 100}\n", filepath.Join(dir, who+".jsonl"))
	}
	w.appendN(t, 1000, 2)
	a := w.start(t, parse(t, cfg("a")), "node-a", nil)
	w.waitCursor(t, "archive", 1000, time.Minute)
	b := wb.start(t, parse(t, cfg("b")), "node-b", nil)
	wb.appendN(t, 1000, 2)
	w.waitCursor(t, "archive", 2000, time.Minute)
	if _, err := os.Stat(filepath.Join(dir, "b.jsonl")); !os.IsNotExist(err) {
		t.Fatalf("B wrote while A held the lease (stat: %v)", err)
	}
	a.Close() // releases the lease
	w.appendN(t, 1000, 2)
	w.waitCursor(t, "archive", 3000, time.Minute)
	b.Close()
	seen, _ := readSeqs(t, []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")})
	for seq := int64(1); seq <= 3000; seq++ {
		if seen[seq] == 0 {
			t.Fatalf("seq %d was delivered by neither server", seq)
		}
	}
	bSeen, _ := readSeqs(t, []string{filepath.Join(dir, "b.jsonl")})
	if len(bSeen) == 0 || bSeen[1] != 0 {
		t.Fatalf("B delivered %d seqs (seq 1: %d times); want it to resume after A's cursor", len(bSeen), bSeen[1])
	}
}
