package kubegw

import (
	"encoding/binary"
)

// Kubernetes streams exec and attach over WebSocket with the channel
// protocols (v4.channel.k8s.io, v5.channel.k8s.io): every binary message
// starts with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 the error
// channel (a v1 Status with the exit code), 4 terminal resizes (JSON
// {"Width","Height"}), and in v5 255 closes a channel. frameReader
// follows one direction of such a connection, byte for byte as it is
// relayed (it never changes or holds back data), and hands each message's
// payload to its callback by channel.

// Channel numbers of the Kubernetes remote command protocol.
const (
	chanStdin  = 0
	chanStdout = 1
	chanStderr = 2
	chanError  = 3
	chanResize = 4
)

// maxFrameHeader bounds a frame header (2 + 8 length + 4 mask bytes).
const maxFrameHeader = 14

// frameReader parses WebSocket frames (RFC 6455 5.2) incrementally.
type frameReader struct {
	// onData receives the payload bytes of data messages by channel (a
	// message's first payload byte names its channel).
	onData func(channel byte, p []byte)
	// err is set once the stream is not framing the reader can follow;
	// it then stops parsing.
	err string
	// oneFrameMessages reads the client's side as the API server does
	// (golang.org/x/net/websocket, behind every exec and attach): each
	// frame is a message of its own whose first byte names its channel,
	// whatever its opcode or FIN bit, and reserved bits and opcodes are
	// not checked. Where this reader's framing and the server's could
	// differ — a text, continuation, fragmented or reserved-opcode frame,
	// reserved bits — it stops (err) instead of guessing, and the stream
	// is closed before those bytes are relayed (execStream.Read).
	oneFrameMessages bool

	hdr       [maxFrameHeader]byte
	nhdr      int
	inPayload bool
	left      uint64 // payload bytes left in the current frame
	masked    bool
	mask      [4]byte
	maskPos   int
	control   bool // a control frame (close, ping, pong): ignored
	fin       bool
	inMsg     bool // a data message has started and not finished
	channel   int  // of the current message; -1 before its first byte
	buf       []byte
}

func newFrameReader(onData func(channel byte, p []byte)) *frameReader {
	return &frameReader{onData: onData, channel: -1}
}

// feed parses p, the next bytes of the stream.
func (f *frameReader) feed(p []byte) {
	for len(p) > 0 && f.err == "" {
		if !f.inPayload {
			f.hdr[f.nhdr] = p[0]
			f.nhdr++
			p = p[1:]
			if f.nhdr >= 2 && f.nhdr == f.headerLen() {
				f.start()
			}
			continue
		}
		n := uint64(len(p))
		if n > f.left {
			n = f.left
		}
		if !f.control {
			f.payload(p[:n])
		}
		p = p[n:]
		f.left -= n
		if f.left == 0 {
			f.endFrame()
		}
	}
}

// headerLen is the header's full length, known from its first two bytes.
func (f *frameReader) headerLen() int {
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// start begins a frame whose header is complete.
func (f *frameReader) start() {
	b0, b1 := f.hdr[0], f.hdr[1]
	if b0&0x70 != 0 {
		f.err = "websocket extensions are not followed"
		return
	}
	op := b0 & 0x0f
	f.fin, f.masked = b0&0x80 != 0, b1&0x80 != 0
	if f.oneFrameMessages && !(op == 2 && f.fin || op == 8 || op == 9 || op == 10) {
		f.err = "only unfragmented binary messages and close, ping and pong frames are followed from the client"
		return
	}
	l, off := uint64(b1&0x7f), 2
	switch l {
	case 126:
		l, off = uint64(binary.BigEndian.Uint16(f.hdr[2:4])), 4
	case 127:
		l, off = binary.BigEndian.Uint64(f.hdr[2:10]), 10
	}
	if f.masked {
		copy(f.mask[:], f.hdr[off:off+4])
	}
	f.maskPos, f.left, f.control = 0, l, op >= 8
	switch {
	case f.control:
	case op == 0: // continuation of the current message
		if !f.inMsg {
			f.err = "a continuation frame outside a message"
			return
		}
	case op == 2: // binary: a new message
		if f.inMsg {
			f.err = "a new message inside a fragmented one"
			return
		}
		f.inMsg, f.channel = true, -1
	default: // text frames belong to the base64 protocols, never negotiated here
		f.err = "only binary channel messages are followed"
		return
	}
	f.inPayload = true
	if f.left == 0 {
		f.endFrame()
	}
}

func (f *frameReader) endFrame() {
	if !f.control && f.fin {
		f.inMsg, f.channel = false, -1
	}
	f.inPayload, f.nhdr = false, 0
}

func (f *frameReader) payload(p []byte) {
	f.buf = append(f.buf[:0], p...)
	b := f.buf
	if f.masked {
		for i := range b {
			b[i] ^= f.mask[f.maskPos&3]
			f.maskPos++
		}
	}
	if f.channel < 0 && len(b) > 0 {
		f.channel = int(b[0])
		b = b[1:]
	}
	if len(b) > 0 {
		f.onData(byte(f.channel), b)
	}
}
