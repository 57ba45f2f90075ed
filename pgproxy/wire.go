package pgproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Buffer sizes of the relay. Reads are 32 KiB; writes coalesce up to
// 16 KiB before a flush (and flush whenever the reading side would block).
const (
	readBufSize  = 32 << 10
	writeBufSize = 16 << 10
)

// errProtocol marks a malformed or oversized message.
var errProtocol = errors.New("pgproxy: protocol violation")

// pipe moves messages from one side to the other without re-encoding:
// it parses the 5-byte header and, for the few types it inspects, the
// body, and copies everything else byte for byte.
type pipe struct {
	r    *bufio.Reader
	w    *bufio.Writer
	from net.Conn // the reading side, for deadline extension on kill

	// retryOnKill lets a read interrupted by a kill finish the message
	// in progress once (server→client only), so the FATAL that follows
	// lands on a message boundary.
	retryOnKill bool
	killed      func() bool
	retried     bool

	scratch []byte
	onBlock func() // called before a read that may block

	// wmu, when set, guards w: the pipe's own flushes between messages
	// take it (inMsg: the relay holds it already, inside a message).
	wmu   *sync.Mutex
	inMsg bool
}

// mayBlock flushes pending output when fewer than n bytes are buffered,
// that is before a read that may wait on the network.
func (p *pipe) mayBlock(n int) error {
	if p.r.Buffered() >= n {
		return nil
	}
	if p.onBlock != nil {
		p.onBlock()
	}
	if p.wmu != nil && !p.inMsg {
		p.wmu.Lock()
		defer p.wmu.Unlock()
	}
	if p.w.Buffered() > 0 {
		return p.w.Flush()
	}
	return nil
}

// retry reports whether a read error should be retried: a deadline set by
// a kill while a message is half read gets one short extension.
func (p *pipe) retry(err error, mid bool) bool {
	if !mid || !p.retryOnKill || p.retried || !errors.Is(err, os.ErrDeadlineExceeded) || !p.killed() {
		return false
	}
	p.retried = true
	_ = p.from.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	return true
}

// peek returns the next n bytes without consuming them (n <= buffer size).
func (p *pipe) peek(n int, mid bool) ([]byte, error) {
	if err := p.mayBlock(n); err != nil {
		return nil, err
	}
	for {
		b, err := p.r.Peek(n)
		if err == nil {
			return b, nil
		}
		if p.retry(err, mid || p.r.Buffered() > 0) {
			continue
		}
		return nil, err
	}
}

// header reads the next message header: type and body length.
func (p *pipe) header(max int) (typ byte, body int, err error) {
	h, err := p.peek(5, false)
	if err != nil {
		return 0, 0, err
	}
	n := int(binary.BigEndian.Uint32(h[1:5]))
	if n < 4 || n-4 > max {
		return h[0], 0, errProtocol
	}
	return h[0], n - 4, nil
}

// whole returns the complete message (header included) of total bytes,
// from the read buffer when it fits (no copy) or from scratch. The caller
// must call consume(total) after using it.
func (p *pipe) whole(total int) ([]byte, error) {
	if total <= p.r.Size() {
		return p.peek(total, true)
	}
	if cap(p.scratch) < total {
		p.scratch = make([]byte, total)
	}
	b := p.scratch[:total]
	if err := p.mayBlock(total); err != nil {
		return nil, err
	}
	got := 0
	for got < total {
		n, err := p.r.Read(b[got:])
		got += n
		if err != nil {
			if p.retry(err, true) {
				continue
			}
			return nil, err
		}
	}
	return b, nil
}

// consume drops a message returned by whole from the read buffer.
func (p *pipe) consume(total int) {
	if total <= p.r.Size() {
		_, _ = p.r.Discard(total)
		return
	}
	if cap(p.scratch) > 1<<20 {
		p.scratch = nil // do not keep a large buffer for an idle session
	}
}

// copyN copies n bytes from r to w without allocating.
func (p *pipe) copyN(n int) error { return p.relayN(n, true) }

// skipN drops the next n bytes of r.
func (p *pipe) skipN(n int) error { return p.relayN(n, false) }

func (p *pipe) relayN(n int, write bool) error {
	for n > 0 {
		if p.r.Buffered() == 0 {
			if _, err := p.peek(1, true); err != nil {
				return err
			}
		}
		k := min(p.r.Buffered(), n)
		if write {
			b, _ := p.r.Peek(k)
			if _, err := p.w.Write(b); err != nil {
				return err
			}
		}
		_, _ = p.r.Discard(k)
		n -= k
	}
	return nil
}

// forward copies the message whose header is next in the buffer.
func (p *pipe) forward(body int) error {
	return p.copyN(5 + body)
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// fatal encodes an ErrorResponse with severity FATAL.
func fatal(code, msg string) []byte {
	b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	return b
}

// writeFatal writes a FATAL ErrorResponse to w with a 1 s write deadline.
func writeFatal(c net.Conn, code, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(fatal(code, msg))
}

// errorFields extracts severity, SQLSTATE and message from an
// ErrorResponse body.
func errorFields(body []byte) (severity, code, message string) {
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			return
		}
		switch f {
		case 'V':
			severity = string(v)
		case 'S':
			if severity == "" {
				severity = string(v)
			}
		case 'C':
			code = string(v)
		case 'M':
			message = truncateUTF8(string(v), 1024)
		}
		body = rest
	}
	return
}

// readStartup reads one length-prefixed startup-phase packet (no type byte).
func readStartup(r *bufio.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if n < 8 || n > 10000 {
		return nil, errProtocol
	}
	b := make([]byte, n-4)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readTyped reads one typed message before the relay starts.
func readTyped(r *bufio.Reader, max int) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[1:]))
	if n < 4 || n-4 > max {
		return h[0], nil, errProtocol
	}
	b := make([]byte, n-4)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
