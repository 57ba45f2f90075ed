package pgproxy

import (
	"net"
)

// strictState is where a StrictAudit session's client stream stands:
// bytes strictWriter delivered to the client, the stream position
// (delivered + buffered) of the last message boundary s2c passed, and
// whether the client holds part of a message.
type strictState struct {
	sent, edge int64
	mid        bool
}

// strictWriter holds output to the client until the receipts of all
// events submitted before it are durable.
type strictWriter struct {
	s *session
	c net.Conn
}

func (w strictWriter) Write(b []byte) (int, error) {
	if err := w.s.waitDurable(); err != nil {
		return 0, err
	}
	n, err := w.c.Write(b)
	w.s.strict.sent += int64(n)
	w.s.strict.mid = w.s.strict.sent != w.s.strict.edge
	return n, err
}

// strictBoundary records that the client stream is at a message boundary
// (s2c, before each message; strict sessions only).
func (s *session) strictBoundary() {
	s.strict.edge = s.strict.sent + int64(s.cw.Buffered())
	if s.strict.sent == s.strict.edge {
		s.strict.mid = false
	}
}
