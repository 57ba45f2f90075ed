package kubegw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// wsUpstream is an API server's exec endpoint as far as the gateway can
// tell: it switches to WebSocket and keeps every byte the client's side
// sent after the switch.
type wsUpstream struct {
	mu   sync.Mutex
	got  bytes.Buffer
	done chan struct{}
	// protocol is the subprotocol its 101 names (default
	// v5.channel.k8s.io).
	protocol string
}

func newWSUpstream() *wsUpstream { return &wsUpstream{done: make(chan struct{})} }

func (u *wsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "upgrade required", http.StatusBadRequest)
		return
	}
	defer close(u.done)
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	proto := u.protocol
	if proto == "" {
		proto = "v5.channel.k8s.io"
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: "+proto+"\r\n\r\n")
	buf := make([]byte, 4096)
	for {
		n, err := brw.Read(buf)
		u.mu.Lock()
		u.got.Write(buf[:n])
		end := bytes.Contains(u.got.Bytes(), []byte("last-frame"))
		u.mu.Unlock()
		if err != nil || end {
			return
		}
	}
}

func (u *wsUpstream) received() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got.String()
}

// dialExec opens an exec through the gateway with query and returns the
// client's side after the 101 (or the refusal's status).
func dialExec(t *testing.T, k *kubeGW, query string) (net.Conn, int) {
	t.Helper()
	c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /k8s/a/api/v1/namespaces/payments/pods/web-1/exec?" + query + " HTTP/1.1\r\nHost: gw\r\n" +
		"Authorization: Bearer " + tokA + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, resp.StatusCode
}

// stdin is a client's stdin message (unmasked, so what reaches the
// upstream can be read as it is).
func stdin(s string) []byte { return frame(true, 2, append([]byte{chanStdin}, s...), nil) }

// The API server (golang.org/x/net/websocket) reads every frame from the
// client as a message of its own, text or binary, continuation or not,
// reserved bits and opcodes unchecked. A frame the gateway would read
// differently must not reach it: input the recording did not see would
// run on the terminal.
func TestExecUnfollowableFramesNeverReachTheCluster(t *testing.T) {
	rsv := stdin("evil-rsv\n")
	rsv[0] |= 0x40
	for name, evil := range map[string][]byte{
		"text frame":             frame(true, 1, append([]byte{chanStdin}, "evil-text\n"...), nil),
		"continuation as stdin":  append(frame(false, 2, []byte{chanStderr, 'x'}, nil), frame(true, 0, append([]byte{chanStdin}, "evil-cont\n"...), nil)...),
		"reserved control op":    frame(true, 0xb, append([]byte{chanStdin}, "evil-ctl\n"...), nil),
		"reserved data op":       frame(true, 3, append([]byte{chanStdin}, "evil-op3\n"...), nil),
		"reserved bit":           rsv,
		"fragmented binary":      frame(false, 2, append([]byte{chanStdin}, "evil-frag\n"...), nil),
		"continuation, no start": frame(true, 0, append([]byte{chanStdin}, "evil-orphan\n"...), nil),
	} {
		t.Run(name, func(t *testing.T) {
			up := newWSUpstream()
			k := newKubeWith(t, up)
			c, code := dialExec(t, k, "command=sh&stdin=true&stdout=true&tty=true")
			if code != http.StatusSwitchingProtocols {
				t.Fatalf("exec: %d", code)
			}
			c.Write(stdin("good\n"))
			testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(up.received(), "good") },
				"the first stdin message did not reach the cluster")
			c.Write(evil)
			c.Write(stdin("last-frame\n"))
			select {
			case <-up.done:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream connection neither ended nor saw the last frame")
			}
			if got := up.received(); strings.Contains(got, "evil-") {
				t.Errorf("the cluster got input the gateway could not follow: %q", got)
			}
		})
	}
}

// tty is read as the API server reads a boolean option: any first value
// but "0" or "false" (any case) turns the terminal on, and such a terminal
// is recorded.
func TestExecTTYReadAsTheAPIServerDoes(t *testing.T) {
	for _, tty := range []string{"true", "TRUE", "yes", "", "t"} {
		t.Run("tty="+tty, func(t *testing.T) {
			up := newWSUpstream()
			k := newKubeWith(t, up)
			c, code := dialExec(t, k, "command=sh&stdin=true&stdout=true&tty="+tty)
			if code != http.StatusSwitchingProtocols {
				t.Fatalf("exec: %d", code)
			}
			c.Write(stdin("typed-on-the-terminal\n"))
			c.Write(stdin("last-frame\n"))
			select {
			case <-up.done:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream did not see the last frame")
			}
			c.Close()
			k.g.Shutdown(context.Background())
			reqs := k.au.byAction("k8s.request")
			if len(reqs) != 1 {
				t.Fatalf("k8s.request events: %d", len(reqs))
			}
			var d struct{ TTY bool }
			json.Unmarshal(reqs[0].Details, &d)
			if !d.TTY {
				t.Errorf("k8s.request has no tty: %s", reqs[0].Details)
			}
			var all []byte
			files, _ := filepath.Glob(filepath.Join(k.recs, "*"))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				all = append(all, b...)
			}
			if !bytes.Contains(all, []byte("typed-on-the-terminal")) {
				t.Errorf("the terminal's input is not in a recording (%d files)", len(files))
			}
		})
	}
	// "0" and "false" in any case are no terminal, as for the server.
	for _, tty := range []string{"0", "False"} {
		if queryBool(map[string][]string{"tty": {tty}}, "tty") {
			t.Errorf("tty=%s read as a terminal", tty)
		}
	}
	if queryBool(map[string][]string{}, "tty") {
		t.Error("no tty parameter read as a terminal")
	}
}
