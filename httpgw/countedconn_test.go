package httpgw

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestCountedConnCopies: the reverse proxy's io.Copy after an upgrade goes
// through countedConn's ReadFrom and WriteTo (its own small buffers), and
// every byte is still counted in both the stream's and the session's
// totals.
func TestCountedConnCopies(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*upgradeBufferSize/16+5) // several buffers' worth
	s := &session{}
	local, peer := net.Pipe()
	t.Cleanup(func() { local.Close(); peer.Close() })
	c := &countedConn{Conn: local, s: s}

	t.Run("to-client", func(t *testing.T) {
		got := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(io.LimitReader(peer, int64(len(data)))); got <- b }()
		// Like the app's side of an upgrade, the source has no WriteTo, so
		// io.Copy takes c's ReadFrom.
		n, err := io.Copy(c, struct{ io.Reader }{bytes.NewReader(data)})
		if err != nil || n != int64(len(data)) {
			t.Fatalf("copy to client: %d, %v", n, err)
		}
		if b := <-got; !bytes.Equal(b, data) {
			t.Fatalf("the client got %d bytes, not the %d sent", len(b), len(data))
		}
		if c.out.Load() != int64(len(data)) || s.bytesOut.Load() != int64(len(data)) {
			t.Fatalf("counted out %d (session %d), want %d", c.out.Load(), s.bytesOut.Load(), len(data))
		}
	})
	t.Run("from-client", func(t *testing.T) {
		go func() { peer.Write(data); peer.Close() }()
		var app bytes.Buffer
		n, err := io.Copy(&app, c) // c's WriteTo
		if n != int64(len(data)) || !bytes.Equal(app.Bytes(), data) {
			t.Fatalf("copy from client: %d, %v", n, err)
		}
		if c.in.Load() != int64(len(data)) || s.bytesIn.Load() != int64(len(data)) {
			t.Fatalf("counted in %d (session %d), want %d", c.in.Load(), s.bytesIn.Load(), len(data))
		}
	})
}
