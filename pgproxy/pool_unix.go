//go:build unix && !aix

package pgproxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// quiet reports whether an idle connection is still open with nothing to
// read: a backend that exited meanwhile (idle_session_timeout,
// pg_terminate_backend, a restart) has closed it or left a FATAL message
// in it. It peeks without consuming and without waiting.
func quiet(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		// Peek under TLS: a record on the socket (an alert, a
		// close_notify, a FATAL) counts as not quiet. A record the TLS
		// layer already read is not seen here; the next session's first
		// read, or a reset, meets it instead.
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n <= 0 && (errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK))
		return true
	})
	return err == nil && alive
}
