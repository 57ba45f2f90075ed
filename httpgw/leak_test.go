package httpgw

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// After a gateway that served requests, a WebSocket and an SSE stream has
// been shut down, its goroutines are gone.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("traffic", func(t *testing.T) {
		h := newHarness(t, func(_ *Target, c *Config) { c.Recheck = 50 * time.Millisecond })
		h.get("/a")
		c, br := rawConn(t, strings.TrimPrefix(h.srv.URL, "http://"))
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+testHost+"\r\nAuthorization: Bearer "+testToken+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade %v %v", resp, err)
		}
		h.up.waitStarted(t, "/ws")
		resp, err := http.DefaultClient.Do(h.req("GET", "/sse", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h.up.waitStarted(t, "/sse")
		time.Sleep(120 * time.Millisecond) // a few rechecks
	})
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf)
	}
}
