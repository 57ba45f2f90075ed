package sshproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/sshca"
)

// bareGateway serves a gateway with no reachable targets on a loopback
// port and returns its address.
func bareGateway(t *testing.T, lim netguard.Limits, handshake time.Duration) string {
	t.Helper()
	uk, _, _ := sshca.GenerateKey()
	hk, _, _ := sshca.GenerateKey()
	ca := sshca.New(uk, hk)
	gk, _, _ := sshca.GenerateKey()
	hs, err := ca.HostSigner(gk, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(Config{HostSigner: hs, CA: ca, Audit: newMemAuditor(), Pending: lim, HandshakeTimeout: handshake,
		Auth: AuthorizerFunc(func(context.Context, AuthRequest) (*Target, error) {
			return nil, airlock.Errorf(airlock.ENOTFOUND, "no grant")
		})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("dial %s from %s (is 127/8 loopback here?): %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// banner reads the server's SSH version line, or "" if the gateway closed
// the connection first.
func banner(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("gateway neither greeted nor closed the connection")
	}
	return line
}

// TestPendingHandshakeBounds: connections still in their SSH handshake
// are bounded per source and per listener; the ones over a bound are
// closed before the server's greeting, other sources still get in.
func TestPendingHandshakeBounds(t *testing.T) {
	addr := bareGateway(t, netguard.Limits{MaxPending: 3, MaxPendingPerSource: 2}, time.Minute)
	for i := range 2 {
		if b := banner(t, dialFrom(t, "127.0.0.2", addr)); !strings.HasPrefix(b, "SSH-2.0-") {
			t.Fatalf("pending connection %d got %q, want the SSH greeting", i+1, b)
		}
	}
	if b := banner(t, dialFrom(t, "127.0.0.2", addr)); b != "" {
		t.Fatalf("connection over the per-source bound got %q, want it closed", b)
	}
	if b := banner(t, dialFrom(t, "127.0.0.3", addr)); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("another source got %q, want the SSH greeting", b)
	}
	if b := banner(t, dialFrom(t, "127.0.0.4", addr)); b != "" {
		t.Fatalf("connection over the listener bound got %q, want it closed", b)
	}
}

// TestHandshakeDeadlineFreesSlots: a client that never finishes the
// handshake is dropped at the deadline, and its slot serves the next.
func TestHandshakeDeadlineFreesSlots(t *testing.T) {
	addr := bareGateway(t, netguard.Limits{MaxPending: 8, MaxPendingPerSource: 1}, 300*time.Millisecond)
	idle := dialFrom(t, "127.0.0.2", addr)
	if b := banner(t, idle); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("got %q", b)
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, idle); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("gateway kept a silent client past its handshake deadline")
	}
	freed := testenv.Poll(time.Second, func() bool { // the slot is released just after the close
		return strings.HasPrefix(banner(t, dialFrom(t, "127.0.0.2", addr)), "SSH-2.0-")
	})
	if !freed {
		t.Fatal("the source's slot was not freed after its client was dropped")
	}
}
