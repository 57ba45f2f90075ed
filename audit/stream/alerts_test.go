package stream_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestBehindAlertOncePerEpisode: a sink that starts 2,000 events behind
// with alert_lag 100 records one audit.stream.behind, and one
// audit.stream.recovered once it has caught up.
func TestBehindAlertOncePerEpisode(t *testing.T) {
	w := newWorld(t)
	w.appendN(t, 2000, 2)
	path := filepath.Join(t.TempDir(), "a.jsonl")
	w.start(t, parse(t, fmt.Sprintf("sinks:\n  - {name: a, type: file, path: %s, batch: 50, alert_lag: 100, poll_interval: 5ms}\n", path)), "node-a", nil)
	if !poll(func() bool { return w.actions(t)["audit.stream.recovered"] >= 1 }) {
		t.Fatalf("no recovery: alerts %v, cursor %d of %d", w.actions(t), w.cursor(t, "a"), w.head(t))
	}
	w.waitCursor(t, "a", w.head(t), time.Minute)
	if a := w.actions(t); a["audit.stream.behind"] != 1 || a["audit.stream.recovered"] != 1 || a["audit.stream.failing"] != 0 {
		t.Fatalf("alerts %v; want one behind and one recovered", a)
	}
}
