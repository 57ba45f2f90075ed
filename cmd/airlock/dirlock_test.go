package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSecondServerOnSameDataDir: a second server started on the host and
// data dir of a running one shares its node identity, so at start it would
// end the first one's live sessions as its "previous life" (session.ended,
// node_lost, while they go on). It is refused; once the first has stopped,
// the data dir starts again.
func TestSecondServerOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, &fakeClock{t: time.Now()}, nil)
	cfg := h.cfg
	cfg.HTTPAddr = freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var logs syncBuffer
	err := runServer(ctx, cfg, &logs)
	if err == nil || !strings.Contains(err.Error(), "in use by another airlock server") {
		t.Fatalf("second server on the same data dir: err = %v\n%s", err, logs.String())
	}
	h.stop()
	h2 := startHarness(t, dir, &fakeClock{t: time.Now()}, nil)
	h2.stop()
}
