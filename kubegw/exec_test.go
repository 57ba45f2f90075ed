package kubegw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/recording"
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
	if k.tls {
		c = tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
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
			// Its response event says why it ended.
			testenv.Eventually(t, 10*time.Second, func() bool {
				rs := k.au.byAction("k8s.response")
				return len(rs) == 1 && strings.Contains(string(rs[0].Details), `"stream_unfollowed"`)
			}, "no k8s.response naming the unfollowed stream")
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

// An exec or attach streams only over WebSocket with a binary channel
// protocol, however the client spells its upgrade; and only those
// protocols are offered to the cluster.
func TestExecUpgradeSpellings(t *testing.T) {
	var mu sync.Mutex
	var protos []string
	k := newKubeWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, strings.Join(r.Header.Values("Sec-Websocket-Protocol"), "|"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest) // no switch: only what was forwarded matters
	}))
	for _, c := range []struct {
		name string
		hdr  []string
		want int    // the gateway's answer; 400 from the upstream when forwarded
		msg  string // in a refusal
	}{
		{"SPDY", []string{"Upgrade", "SPDY/3.1"}, 400, "over WebSocket only"},
		{"spdy lower case", []string{"Upgrade", "spdy/3.1"}, 400, "over WebSocket only"},
		{"SPDY second in a list", []string{"Upgrade", "websocket, SPDY/3.1", "Sec-WebSocket-Protocol", "v5.channel.k8s.io"}, 400, "over WebSocket only"},
		{"SPDY in a second header", []string{"Upgrade", "websocket", "Upgrade", "SPDY/3.1", "Sec-WebSocket-Protocol", "v5.channel.k8s.io"}, 400, "over WebSocket only"},
		{"base64 only", []string{"Upgrade", "websocket", "Sec-WebSocket-Protocol", "base64.channel.k8s.io"}, 400, "binary channel protocol"},
		{"v5 spelled in a second header", []string{"Upgrade", "WebSocket", "Sec-WebSocket-Protocol", "base64.channel.k8s.io", "Sec-WebSocket-Protocol", "v5.channel.k8s.io"}, 400, ""},
		{"tunnelled SPDY", []string{"Upgrade", "websocket", "Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io, v5.channel.k8s.io"}, 400, ""},
	} {
		mu.Lock()
		before := len(protos)
		mu.Unlock()
		hdr := append([]string{"Connection", "Upgrade", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, c.hdr...)
		code, body := do(t, k.srv, "GET", "/k8s/a/api/v1/namespaces/payments/pods/web-1/exec?command=sh&tty=true", tokA, hdr...)
		mu.Lock()
		forwarded := len(protos) > before
		var got string
		if forwarded {
			got = protos[len(protos)-1]
		}
		mu.Unlock()
		switch {
		case code != c.want:
			t.Errorf("%s: %d %s", c.name, code, body)
		case c.msg != "" && (forwarded || !strings.Contains(body, c.msg)):
			t.Errorf("%s: forwarded %v, %s", c.name, forwarded, body)
		case c.msg == "" && (!forwarded || got != "v5.channel.k8s.io"):
			t.Errorf("%s: the cluster was offered %q (forwarded %v)", c.name, got, forwarded)
		}
	}
}

// A header past the gateway's bound is refused before anything else,
// by the gateway's own server (Serve).
func TestHugeHeaderRefused(t *testing.T) {
	sn := &seen{}
	k := newKubeWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sn.mu.Lock()
		sn.reqs = append(sn.reqs, r)
		sn.mu.Unlock()
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go k.g.Serve(ln)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/k8s/a/api/v1/namespaces/payments/pods", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	req.Header.Set("X-Pad", strings.Repeat("a", 128<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || len(sn.reqs) != 0 {
		t.Fatalf("a 128 KiB header: %d, forwarded %d", resp.StatusCode, len(sn.reqs))
	}
}

// Impersonation sent raw — underscores, any case, repeated, hidden in a
// folded line — never reaches the cluster as anything but the grant's.
func TestRawImpersonationSpellings(t *testing.T) {
	srv, sn, _ := newKube(t)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /k8s/a/api/v1/namespaces/payments/pods HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tokA+"\r\n"+
		"Impersonate_User: admin\r\nimpersonate-group: system:masters\r\nIMPERSONATE-USER: root\r\nImpersonate-User: admin\r\n"+
		"Impersonate-Extra-Airlock-Grant: gra_forged\r\nimpersonate-extra-airlock-grant: gra_forged2\r\nImpersonate-Uid: 0\r\n"+
		"X-Remote_User: admin\r\nX-Folded: a\r\n Impersonate-User: folded\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		sn.mu.Lock()
		n := len(sn.reqs)
		sn.mu.Unlock()
		// A refusal of the folded line is as good, provided nothing went on.
		if n != 0 {
			t.Fatalf("%d and forwarded", resp.StatusCode)
		}
		return
	}
	sn.mu.Lock()
	r := sn.reqs[len(sn.reqs)-1]
	sn.mu.Unlock()
	for k, vs := range r.Header {
		lk := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if !strings.HasPrefix(lk, "impersonate-") && !strings.HasPrefix(lk, "x-remote-") {
			continue
		}
		switch lk {
		case "impersonate-user":
			if len(vs) != 1 || vs[0] != "alice" {
				t.Errorf("%s: %q", k, vs)
			}
		case "impersonate-group":
			if strings.Join(vs, ",") != "airlock-edit,team-b" {
				t.Errorf("%s: %q", k, vs)
			}
		case "impersonate-extra-airlock-grant":
			if len(vs) != 1 || vs[0] != "gra_a" {
				t.Errorf("%s: %q", k, vs)
			}
		default:
			t.Errorf("the client's %s: %q reached the cluster", k, vs)
		}
	}
	t.Logf("X-Folded upstream: %q", r.Header.Values("X-Folded"))
}

// Frames sent with the upgrade request, before its response (no client
// does so), are not followed: they must not reach the cluster either.
func TestExecFramesBeforeTheSwitchNeverReachTheCluster(t *testing.T) {
	up := newWSUpstream()
	k := newKubeWith(t, up)
	c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /k8s/a/api/v1/namespaces/payments/pods/web-1/exec?command=sh&stdin=true&tty=true HTTP/1.1\r\nHost: gw\r\n" +
		"Authorization: Bearer " + tokA + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
	c.Write(append([]byte(req), stdin("early-input\n")...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("exec: %v %v", resp, err)
	}
	c.Write(stdin("last-frame\n"))
	select {
	case <-up.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream did not see the last frame")
	}
	if got := up.received(); strings.Contains(got, "early-input") {
		t.Errorf("a frame sent before the switch reached the cluster unfollowed: %q", got)
	}
}

// Two terminals in one session are two recordings: each its own file
// holding only its own input, each named with its SHA-256 in its own
// k8s.response and both listed in session.ended.
func TestExecRecordingPerExec(t *testing.T) {
	ups := []*wsUpstream{newWSUpstream(), newWSUpstream()}
	var mu sync.Mutex
	n := 0
	k := newKubeWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		u := ups[n%2]
		n++
		mu.Unlock()
		u.ServeHTTP(w, r)
	}))
	for i, up := range ups {
		c, code := dialExec(t, k, "command=sh&stdin=true&stdout=true&tty=true")
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("exec %d: %d", i+1, code)
		}
		c.Write(stdin("typed-in-exec-" + string(rune('1'+i)) + "\n"))
		c.Write(stdin("last-frame\n"))
		select {
		case <-up.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("exec %d: the upstream did not see the last frame", i+1)
		}
		c.Close()
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(k.au.byAction("k8s.response")) == 2 }, "two k8s.response events")
	k.g.Shutdown(context.Background())
	sessionIDs := map[string]bool{}
	seen := map[string]bool{}
	for _, e := range k.au.byAction("k8s.response") {
		var d struct {
			Recording       string `json:"recording"`
			RecordingSHA256 string `json:"recording_sha256"`
		}
		json.Unmarshal(e.Details, &d)
		sessionIDs[e.SessionID] = true
		b, err := os.ReadFile(filepath.Join(k.recs, d.Recording+".cast"))
		if err != nil {
			t.Fatalf("recording %q of %s: %v", d.Recording, e.Details, err)
		}
		if err := recording.Verify(bytes.NewReader(b), d.RecordingSHA256); err != nil {
			t.Errorf("recording %s: %v", d.Recording, err)
		}
		one, two := bytes.Contains(b, []byte("typed-in-exec-1")), bytes.Contains(b, []byte("typed-in-exec-2"))
		if one == two {
			t.Errorf("recording %s holds exec 1: %v, exec 2: %v; want exactly one", d.Recording, one, two)
		}
		seen[d.Recording] = true
	}
	if len(sessionIDs) != 1 || len(seen) != 2 {
		t.Fatalf("sessions %v, recordings %v: want one session, two recordings", sessionIDs, seen)
	}
	ends := k.au.byAction("session.ended")
	if len(ends) != 1 {
		t.Fatalf("session.ended events: %d", len(ends))
	}
	var d struct{ Recordings []airlock.SessionRecording }
	json.Unmarshal(ends[0].Details, &d)
	if len(d.Recordings) != 2 || !seen[d.Recordings[0].ID] || !seen[d.Recordings[1].ID] || d.Recordings[0].SHA256 == "" {
		t.Fatalf("session.ended lists %+v", d.Recordings)
	}
}

// promptUpstream is an exec endpoint that switches to v5, waits for the
// client's first keystroke, answers with prompt (raw bytes: whole frames
// or not) and then reads and drops whatever comes.
func promptUpstream(prompt []byte) http.Handler {
	return switchedUpstream(func(c net.Conn, brw *bufio.ReadWriter) {
		c.Write(prompt)
		io.Copy(io.Discard, brw)
	})
}

// switchedUpstream is an exec endpoint that switches to v5, waits for the
// client's first keystroke, then hands the connection to then.
func switchedUpstream(then func(c net.Conn, brw *bufio.ReadWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
		brw.Read(make([]byte, 64))
		then(c, brw)
	})
}

// A session's end tells the terminal why, then closes the WebSocket with
// a normal closure, and waits for the client to close its side (never
// resetting the socket under a goodbye the client has not read yet).
func TestExecGoodbyeThenClose(t *testing.T) {
	k := newKubeWith(t, promptUpstream(frame(true, 2, append([]byte{chanStdout}, "# "...), nil)))
	c, code := dialExec(t, k, "command=sh&stdin=true&stdout=true&tty=true")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("exec: %d", code)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Write(stdin("\n"))
	want := append(frame(true, 2, append([]byte{chanStdout}, "# "...), nil), frame(true, 2, append([]byte{chanStdout}, "\r\n[airlock] "+airlock.EndGrantRevoked.Text()+": this session is closed\r\n"...), nil)...)
	want = append(want, 0x88, 0x02, 0x03, 0xe8)
	got := make([]byte, 3)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { k.g.CloseGrant("gra_a", airlock.EndGrantRevoked); close(closed) }()
	rest := make([]byte, len(want)-len(got))
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatalf("after %q: %v", got, err)
	}
	if got = append(got, rest...); !bytes.Equal(got, want) {
		t.Fatalf("the client got %q\nwant %q", got, want)
	}
	// The client answers the close and hangs up; the gateway has been
	// waiting for that, and now closes too.
	c.Write(frame(true, 8, []byte{0x03, 0xe8}, []byte{1, 2, 3, 4}))
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closing the grant did not return")
	}
}

// A session that ends while the cluster is inside a message cannot tell
// the terminal why without corrupting that message: nothing is added to
// the stream, the exec's k8s.response says the goodbye was not sent, and
// its recording does not claim it was shown.
func TestExecNoGoodbyeInsideAMessage(t *testing.T) {
	// A 10-byte stdout message of which 4 bytes are sent.
	k := newKubeWith(t, promptUpstream([]byte{0x82, 10, chanStdout, 'a', 'b', 'c'}))
	c, code := dialExec(t, k, "command=sh&stdin=true&stdout=true&tty=true")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("exec: %d", code)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Write(stdin("\n"))
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	k.g.CloseGrant("gra_a", airlock.EndGrantRevoked)
	rest, err := io.ReadAll(c)
	if len(rest) != 0 {
		t.Fatalf("after the partial message the client got %q (%v); want the stream closed with nothing added", rest, err)
	}
	notSent, details, b := endedExec(t, k)
	if notSent != "the cluster's side was inside a message" {
		t.Fatalf("k8s.response %s: want goodbye_not_sent naming the unfinished message", details)
	}
	if bytes.Contains(b, []byte("[airlock]")) || !bytes.Contains(b, []byte("abc")) {
		t.Fatalf("recording:\n%s\nwant the output that was sent and no goodbye", b)
	}
}

// A session that ends while the client has stopped reading and the
// cluster keeps sending still closes, over TLS as a server runs it: the
// relay write blocked on the full socket gives the goodbye its turn, the
// goodbye that cannot be delivered is noted as not sent (and not
// recorded), and TLS's close_notify, which the full socket would hold for
// 5 s, does not hold the close. Before, CloseGrant never returned.
func TestExecCutWhileTheClientStopsReading(t *testing.T) {
	var sent atomic.Int64
	k := newKubeTLS(t, switchedUpstream(func(c net.Conn, _ *bufio.ReadWriter) {
		out := frame(true, 2, append([]byte{chanStdout}, strings.Repeat("y\r\n", 300)...), nil)
		for {
			if _, err := c.Write(out); err != nil {
				return
			}
			sent.Add(int64(len(out)))
		}
	}))
	c, code := dialExec(t, k, "command=yes&stdin=true&stdout=true&tty=true")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("exec: %d", code)
	}
	c.Write(stdin("\n"))
	// The client reads nothing more: wait until the flood stops moving
	// (every buffer on the way is full).
	last := int64(-1)
	testenv.PollEvery(300*time.Millisecond, 20*time.Second, func() bool {
		n := sent.Load()
		stuck := n > 0 && n == last
		last = n
		return stuck
	})
	closed := make(chan struct{})
	go func() { k.g.CloseGrant("gra_a", airlock.EndGrantRevoked); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("CloseGrant did not return while the client was not reading")
	}
	notSent, details, b := endedExec(t, k)
	if notSent == "" {
		t.Fatalf("k8s.response %s: the goodbye could not reach a client that stopped reading, and is not noted as not sent", details)
	}
	if bytes.Contains(b, []byte("[airlock]")) {
		t.Fatalf("the recording claims the goodbye was shown (k8s.response %s)", details)
	}
}

// endedExec waits for the one exec's k8s.response and returns its
// goodbye_not_sent, its details and the exec's recording.
func endedExec(t *testing.T, k *kubeGW) (notSent, details string, cast []byte) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool { return len(k.au.byAction("k8s.response")) == 1 }, "the exec's k8s.response")
	var d struct {
		NotSent   string `json:"goodbye_not_sent"`
		Recording string `json:"recording"`
	}
	e := k.au.byAction("k8s.response")[0]
	json.Unmarshal(e.Details, &d)
	b, err := os.ReadFile(filepath.Join(k.recs, d.Recording+".cast"))
	if err != nil {
		t.Fatal(err)
	}
	return d.NotSent, string(e.Details), b
}

// goodbyeConn is a client connection for execStream alone: it keeps what
// is written, or fails every write.
type goodbyeConn struct {
	net.Conn
	fail bool
	got  bytes.Buffer
}

func (c *goodbyeConn) Write(p []byte) (int, error) {
	if c.fail {
		return 0, errors.New("broken pipe")
	}
	return c.got.Write(p)
}
func (c *goodbyeConn) SetWriteDeadline(time.Time) error { return nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// The goodbye is in the exec's recording only when its write went out,
// and once it is sent nothing more of the cluster's output is relayed
// (the client drops what follows a close frame) or recorded.
func TestGoodbyeRecordedOnlyWhenSent(t *testing.T) {
	for _, fail := range []bool{true, false} {
		var cast bytes.Buffer
		rec, err := recording.NewWriter(nopCloser{&cast}, recording.Header{Width: 80, Height: 24}, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		conn := &goodbyeConn{fail: fail}
		e := &execStream{Conn: conn, tty: true, rec: rec, headerOK: true}
		e.out = newFrameReader(e.fromServer)
		why := e.goodbye("\r\n[airlock] revoked: this session is closed\r\n")
		if n, err := e.Write(frame(true, 2, append([]byte{chanStdout}, "after"...), nil)); n != 0 || err == nil {
			t.Fatalf("fail=%v: a write after the goodbye: %d, %v; want it refused", fail, n, err)
		}
		rec.Close()
		shown := bytes.Contains(cast.Bytes(), []byte("[airlock]"))
		switch {
		case fail && (why != "write failed" || shown):
			t.Fatalf("a failed goodbye: %q, recorded %v\n%s", why, shown, cast.String())
		case !fail && (why != "" || !shown || !bytes.Contains(conn.got.Bytes(), []byte("[airlock]"))):
			t.Fatalf("a sent goodbye: %q, recorded %v, sent %q", why, shown, conn.got.String())
		}
		if bytes.Contains(cast.Bytes(), []byte("after")) || bytes.Contains(conn.got.Bytes(), []byte("after")) {
			t.Fatalf("fail=%v: output after the goodbye went on:\n%s", fail, cast.String())
		}
	}
}

// blockingCloseConn stands for a TLS connection whose close_notify waits
// on a client that does not read: its Close returns only once the
// connection under it is closed.
type blockingCloseConn struct {
	net.Conn
	raw *rawConn
}

type rawConn struct {
	net.Conn
	closed chan struct{}
}

func (r *rawConn) Close() error                { close(r.closed); return nil }
func (c *blockingCloseConn) NetConn() net.Conn { return c.raw }
func (c *blockingCloseConn) Close() error      { <-c.raw.closed; return nil }

// closeBounded closes what is under TLS when TLS's close hangs.
func TestCloseBoundedClosesUnderneath(t *testing.T) {
	c := &blockingCloseConn{raw: &rawConn{closed: make(chan struct{})}}
	done := make(chan struct{})
	go func() { closeBounded(c, 10*time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("closeBounded waited on a close that waits on the connection under it")
	}
}
