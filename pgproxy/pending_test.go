package pgproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/netguard"
	"github.com/airlockhq/airlock/internal/testenv"
)

// dialFrom opens a TCP connection to addr from the loopback address src
// (all of 127/8 is loopback on Linux).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads what the gateway sends until it closes the connection
// (failing the test if it does not within 10 s).
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("gateway kept the connection open; read %q", b)
	}
	return string(b)
}

// connectFrom opens a session through the gateway from source src.
func (e *env) connectFrom(t *testing.T, src, token string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(e.dsn(token, "disable"))
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	cfg.DialFunc = d.DialContext
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func loopbackAliases(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not a loopback address here: %v", err)
	}
	ln.Close()
}

// TestPendingHandshakeBounds: unauthenticated connections are bounded per
// source and per listener; the ones over a bound get FATAL 53300 at once;
// a slot is freed when its client authenticates (sessions are not
// pending), and other sources are not affected by one source's flood.
func TestPendingHandshakeBounds(t *testing.T) {
	loopbackAliases(t)
	e := newEnv(t, func(c *Config) {
		c.Pending = netguard.Limits{MaxPending: 4, MaxPendingPerSource: 2}
		c.HandshakeTimeout = time.Minute // slots are held for the whole test
	})

	// Authenticated sessions do not hold slots: more sessions from one
	// source than the per-source bound.
	for i := range 3 {
		if _, err := e.connectFrom(t, "127.0.0.1", "read-token"); err != nil {
			t.Fatalf("session %d from one source: %v", i+1, err)
		}
	}

	// Two idle connections from 127.0.0.2 fill its share; the third is
	// refused before anything is read.
	dialFrom(t, "127.0.0.2", e.addr)
	dialFrom(t, "127.0.0.2", e.addr)
	got := readAll(t, dialFrom(t, "127.0.0.2", e.addr))
	if !strings.Contains(got, msgTooManyPending) || !strings.Contains(got, codeTooManyConns) {
		t.Fatalf("third pending connection from one source got %q, want FATAL 53300 %q", got, msgTooManyPending)
	}
	// Another source still gets in.
	if _, err := e.connectFrom(t, "127.0.0.3", "read-token"); err != nil {
		t.Fatalf("session from another source during one source's flood: %v", err)
	}

	// Two more idle connections from 127.0.0.3 reach the listener bound
	// (4): a fifth source is refused too.
	dialFrom(t, "127.0.0.3", e.addr)
	dialFrom(t, "127.0.0.3", e.addr)
	if got := readAll(t, dialFrom(t, "127.0.0.4", e.addr)); !strings.Contains(got, msgTooManyPending) {
		t.Fatalf("connection over the listener bound got %q", got)
	}
	if _, err := e.connectFrom(t, "127.0.0.4", "read-token"); err == nil || !strings.Contains(err.Error(), "too many pending") {
		t.Fatalf("client over the listener bound: %v", err)
	}
}

// TestHandshakeDeadlineFreesSlots: a client that connects and sends
// nothing is dropped at the handshake deadline, and its slot serves the
// next client.
func TestHandshakeDeadlineFreesSlots(t *testing.T) {
	loopbackAliases(t)
	e := newEnv(t, func(c *Config) {
		c.Pending = netguard.Limits{MaxPending: 8, MaxPendingPerSource: 1}
		c.HandshakeTimeout = 300 * time.Millisecond
	})
	idle := dialFrom(t, "127.0.0.2", e.addr)
	if got := readAll(t, idle); got != "" {
		t.Fatalf("idle client got %q before being dropped", got)
	}
	// The slot is back: a real client from the same source connects.
	var err error
	connected := testenv.Poll(time.Second, func() bool { // the release follows the close by a moment
		_, err = e.connectFrom(t, "127.0.0.2", "read-token")
		return err == nil
	})
	if !connected {
		t.Fatalf("client after the idle one was dropped: %v", err)
	}
}
