package mysqlwire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPayload is the largest payload one physical packet carries
// (2^24-1). A logical packet of this length or more is split: a physical
// packet of exactly MaxPayload bytes is followed by another, the last one
// shorter (possibly empty).
const MaxPayload = 1<<24 - 1

// PreAuthMaxPacket is the bound a gateway puts on a logical packet before
// the client has authenticated (see Conn.MaxPacket): a HandshakeResponse41
// with connect attributes fits well within it.
const PreAuthMaxPacket = 64 << 10

// PeekSize is how many payload bytes Conn.Next returns as a packet's
// prefix at most, and what a ResponseTracker needs to classify any
// packet: enough for an OK or EOF and for an ERR with its longest message
// (MySQL bounds error messages at 512 bytes).
const PeekSize = 600

// Errors returned by the packet layer. Each is wrapped with detail; test
// with errors.Is.
var (
	// ErrPacketTooLarge reports a logical packet over the Conn's MaxPacket.
	ErrPacketTooLarge = errors.New("mysqlwire: packet too large")
	// ErrSequence reports a packet whose sequence id is not the expected one.
	ErrSequence = errors.New("mysqlwire: packet out of sequence")
	// ErrMalformed reports a packet whose payload does not parse.
	ErrMalformed = errors.New("mysqlwire: malformed packet")
)

// Header is the 4-byte header of a physical packet: 3-byte little-endian
// payload length and a sequence id.
type Header struct {
	Length int   // payload length, 0..MaxPayload
	Seq    uint8 // sequence id
}

// ParseHeader decodes a 4-byte packet header; b must hold at least 4 bytes.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 4 {
		return Header{}, fmt.Errorf("%w: header of %d bytes", ErrMalformed, len(b))
	}
	return Header{Length: int(b[0]) | int(b[1])<<8 | int(b[2])<<16, Seq: b[3]}, nil
}

// Append appends the 4 header bytes to b.
func (h Header) Append(b []byte) []byte {
	return append(b, byte(h.Length), byte(h.Length>>8), byte(h.Length>>16), h.Seq)
}

// Continued reports whether another physical packet of the same logical
// packet follows this one.
func (h Header) Continued() bool { return h.Length == MaxPayload }

// Conn frames packets on one connection. Reads go through a bufio.Reader
// it owns, so after NewConn all reads must go through the Conn (or
// Reader). It keeps the sequence id of the exchange under way: shared by
// both directions, reset to 0 by ResetSeq at each new command.
//
// ReadPacket and WritePacket check and advance the sequence; Next and
// CopyTo (the raw relay) do not — a ResponseTracker checks those.
//
// A Conn is not safe for concurrent use, except that one goroutine may
// read (ReadPacket, Next, CopyTo, Discard) while another writes raw
// bytes to the underlying writer.
type Conn struct {
	rw  io.ReadWriter
	br  *bufio.Reader
	seq uint8

	// MaxPacket bounds the logical packets ReadPacket returns; 0 means
	// MaxPayload*4 (64 MiB). Set it to PreAuthMaxPacket until the peer
	// has authenticated.
	MaxPacket int

	// cur is the remaining payload of the physical packet Next returned.
	cur    int
	curHdr [4]byte
	inPkt  bool
}

// NewConn returns a Conn over rw, with a read buffer of 64 KiB.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{rw: rw, br: bufio.NewReaderSize(rw, 64<<10)}
}

// Seq returns the sequence id the next packet must carry.
func (c *Conn) Seq() uint8 { return c.seq }

// SetSeq sets the sequence id the next packet must carry.
func (c *Conn) SetSeq(s uint8) { c.seq = s }

// ResetSeq starts a new command exchange: the next packet carries 0.
func (c *Conn) ResetSeq() { c.seq = 0 }

// StartTLS runs a TLS handshake on nc, the connection under c, and
// from then on c reads and writes through TLS; the sequence id is kept.
// As server (after an SSLRequest) the bytes c has already buffered are
// the start of the client's TLS handshake — clients send their
// ClientHello right behind the SSLRequest — and go to TLS, which parses
// them as TLS records: nothing that arrived in plaintext after the
// SSLRequest is ever read as a packet (a client that injects plaintext
// there fails the handshake). The context bounds the handshake.
func (c *Conn) StartTLS(ctx context.Context, nc net.Conn, cfg *tls.Config, server bool) (*tls.Conn, error) {
	if c.inPkt {
		return nil, errors.New("mysqlwire: StartTLS inside a packet")
	}
	var prefix []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		prefix = bytes.Clone(b)
		_, _ = c.br.Discard(n)
	}
	raw := net.Conn(&prefixConn{Conn: nc, prefix: prefix})
	var tc *tls.Conn
	if server {
		tc = tls.Server(raw, cfg)
	} else {
		tc = tls.Client(raw, cfg)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	c.rw = tc
	c.br.Reset(tc)
	return tc, nil
}

// prefixConn reads prefix before the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// Underlying returns the connection the Conn reads and writes.
func (c *Conn) Underlying() io.ReadWriter { return c.rw }

func (c *Conn) maxPacket() int {
	if c.MaxPacket > 0 {
		return c.MaxPacket
	}
	return 4 * MaxPayload
}

// ReadPacket reads one logical packet (joining split physical packets),
// checks that each physical packet carries the expected sequence id and
// advances it. It returns ErrPacketTooLarge, before reading the payload,
// when the length is over MaxPacket; ErrSequence on a sequence id out of
// order; io.ErrUnexpectedEOF on a truncated packet. The returned slice is
// the caller's.
func (c *Conn) ReadPacket() ([]byte, error) {
	if c.inPkt {
		return nil, errors.New("mysqlwire: ReadPacket inside a packet returned by Next")
	}
	var out []byte
	for {
		var hb [4]byte
		if _, err := io.ReadFull(c.br, hb[:]); err != nil {
			if len(out) > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		h, _ := ParseHeader(hb[:])
		if h.Seq != c.seq {
			return nil, fmt.Errorf("%w: got %d, want %d", ErrSequence, h.Seq, c.seq)
		}
		c.seq++
		if len(out)+h.Length > c.maxPacket() {
			return nil, fmt.Errorf("%w: over %d bytes", ErrPacketTooLarge, c.maxPacket())
		}
		start := len(out)
		out = append(out, make([]byte, h.Length)...)
		if _, err := io.ReadFull(c.br, out[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if !h.Continued() {
			if out == nil {
				out = []byte{}
			}
			return out, nil
		}
	}
}

// WritePacket writes payload as one logical packet, split into physical
// packets of MaxPayload bytes as the protocol requires, with the current
// sequence id, which it advances.
func (c *Conn) WritePacket(payload []byte) error {
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		buf := make([]byte, 0, 4+n)
		buf = Header{Length: n, Seq: c.seq}.Append(buf)
		buf = append(buf, payload[:n]...)
		c.seq++
		if _, err := c.rw.Write(buf); err != nil {
			return err
		}
		payload = payload[n:]
		if n < MaxPayload {
			return nil
		}
	}
}

// Next reads the header of the next physical packet and returns it with
// a prefix of its payload: min(Length, PeekSize) bytes, valid until the
// next call on the Conn. The packet is then relayed with CopyTo or
// skipped with Discard; Next must not be called before one of them.
// Next neither checks nor advances the sequence id.
func (c *Conn) Next() (Header, []byte, error) {
	if c.inPkt {
		return Header{}, nil, errors.New("mysqlwire: Next before CopyTo or Discard")
	}
	if _, err := io.ReadFull(c.br, c.curHdr[:]); err != nil {
		return Header{}, nil, err
	}
	h, _ := ParseHeader(c.curHdr[:])
	n := min(h.Length, PeekSize)
	prefix, err := c.br.Peek(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, err
	}
	c.cur, c.inPkt = h.Length, true
	return h, prefix, nil
}

// CopyTo writes the packet Next returned — header and whole payload,
// unchanged — to w, streaming it through the read buffer.
func (c *Conn) CopyTo(w io.Writer) (int64, error) {
	if !c.inPkt {
		return 0, errors.New("mysqlwire: CopyTo without Next")
	}
	c.inPkt = false
	if _, err := w.Write(c.curHdr[:]); err != nil {
		return 0, err
	}
	n, err := io.CopyN(w, c.br, int64(c.cur))
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n + 4, err
}

// Discard skips the payload of the packet Next returned.
func (c *Conn) Discard() error {
	if !c.inPkt {
		return errors.New("mysqlwire: Discard without Next")
	}
	c.inPkt = false
	_, err := c.br.Discard(c.cur)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Buffered returns how many bytes the Conn has read ahead and not yet
// handed out: a relay flushes its writer when the next packet would block.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// Reader returns the Conn's buffered reader: what a raw relay reads from
// once the Conn's own exchange (a handshake) is over, so that bytes it
// has read ahead are not lost.
func (c *Conn) Reader() io.Reader { return c.br }
