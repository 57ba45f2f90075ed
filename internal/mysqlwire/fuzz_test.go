package mysqlwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadPacket feeds arbitrary bytes to the packet reader under the
// pre-auth bound: it never panics, never returns a packet over the bound,
// never returns more bytes than it was given, and stops at the first
// sequence-id game.
func FuzzReadPacket(f *testing.F) {
	f.Add(unhex(f, docHandshakeV10))
	f.Add([]byte{0xff, 0xff, 0xff, 0x00})
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 0x0e, 0x01, 0x00, 0x00, 0x00, 0x0e})
	f.Add([]byte{0x01, 0x00, 0x00, 0x07, 0x0e})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewConn(newRW(in))
		c.MaxPacket = 1 << 10
		total := 0
		for {
			p, err := c.ReadPacket()
			if err != nil {
				if errors.Is(err, ErrPacketTooLarge) || errors.Is(err, ErrSequence) || err == io.EOF || err == io.ErrUnexpectedEOF {
					return
				}
				t.Fatalf("unexpected error %v", err)
			}
			if len(p) > c.MaxPacket {
				t.Fatalf("packet of %d bytes over the bound", len(p))
			}
			total += len(p) + 4
			if total > len(in) {
				t.Fatalf("returned %d bytes from %d", total, len(in))
			}
		}
	})
}

// FuzzHandshakeResponse parses arbitrary client handshakes: no panic,
// attributes bounded, and what parses re-encodes to something that
// parses to the same fields.
func FuzzHandshakeResponse(f *testing.F) {
	f.Add(unhex(f, docHandshakeResponse41)[4:])
	f.Add((&HandshakeResponse{Capabilities: CapProtocol41}).AppendSSLRequest(nil))
	f.Add((&HandshakeResponse{Capabilities: CapProtocol41 | CapSecureConnection | CapPluginAuth | CapPluginAuthLenencData | CapConnectAttrs | CapConnectWithDB,
		User: "u", AuthResponse: []byte("x"), Database: "d", AuthPlugin: ClearPassword, Attrs: []Attr{{"k", "v"}}}).Append(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = IsSSLRequest(in)
		h, err := ParseHandshakeResponse(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(h.Attrs) > maxAttrs {
			t.Fatalf("%d attributes kept", len(h.Attrs))
		}
		for _, a := range h.Attrs {
			if len(a.Key) > maxAttrLen || len(a.Value) > maxAttrLen {
				t.Fatal("attribute over the bound")
			}
		}
		if len(in) == sslRequestLen || h.User == "" && len(h.AuthResponse) == 0 {
			return
		}
		if !h.Capabilities.Has(CapPluginAuthLenencData) && !h.Capabilities.Has(CapSecureConnection) {
			return // NUL-terminated auth data does not survive a NUL in it
		}
		if len(h.AuthResponse) > 250 && !h.Capabilities.Has(CapPluginAuthLenencData) {
			return
		}
		if bytes.IndexByte([]byte(h.Database+h.AuthPlugin), 0) >= 0 {
			return
		}
		h2, err := ParseHandshakeResponse(h.Append(nil))
		if err != nil {
			t.Fatalf("re-encoded response does not parse: %v", err)
		}
		if h2.User != h.User || !bytes.Equal(h2.AuthResponse, h.AuthResponse) ||
			(h.Capabilities.Has(CapConnectWithDB) && h2.Database != h.Database) {
			t.Fatalf("round trip: %+v vs %+v", h, h2)
		}
	})
}

// FuzzHandshakeV10 parses arbitrary server greetings.
func FuzzHandshakeV10(f *testing.F) {
	f.Add(unhex(f, docHandshakeV10)[4:])
	s := []byte("0123456789abcdefghij")
	f.Add((&ServerHandshake{ServerVersion: "x", Scramble: s, Capabilities: ServerCapabilities, AuthPlugin: NativePassword}).Append(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHandshakeV10(in)
		if err == nil && len(h.Scramble) > len(in) {
			t.Fatal("scramble longer than the packet")
		}
	})
}

// FuzzCommand parses arbitrary command packets, COM_STMT_EXECUTE with
// parameters decoded: no panic, bounded output.
func FuzzCommand(f *testing.F) {
	f.Add(unhex(f, "17 01 00 00 00 00 01 00 00 00 00 01 0f 00 03 66 6f 6f"), uint16(1))
	f.Add(AppendCommand(nil, ComQuery, "SELECT 1"), uint16(0))
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, byte(TypeDateTime), 0, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, n uint16) {
		if _, err := ParseCommand(in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		if len(in) == 0 || in[0] != byte(ComStmtExecute) {
			return
		}
		x, err := ParseStmtExecute(in, ExecuteOptions{NumParams: int(n), DecodeValues: true, MaxValueLen: 16, MaxParams: 32})
		if err != nil {
			return
		}
		if len(x.Params) > 32 {
			t.Fatalf("%d params decoded", len(x.Params))
		}
		for _, v := range x.Params {
			if len(v.Text) > 64 { // 16 bytes kept; dates and numbers are short
				t.Fatalf("value of %d bytes", len(v.Text))
			}
		}
	})
}

// FuzzResponseTracker drives the response state machine with arbitrary
// server streams after an arbitrary command: it never panics, never
// counts more rows than packets, never reads past what Conn.Next gave it,
// and after an error or StepDone it is idle.
func FuzzResponseTracker(f *testing.F) {
	var seed []byte
	for i, p := range [][]byte{{1}, colDef("a"), textRow("1"), okp(0, 0, 0xfe)} {
		seed = Header{Length: len(p), Seq: uint8(i + 1)}.Append(seed)
		seed = append(seed, p...)
	}
	f.Add([]byte{byte(ComQuery)}, seed, true)
	f.Add([]byte{byte(ComStmtPrepare)}, seed, false)
	f.Add([]byte{byte(ComQuery)}, append(Header{Length: 3, Seq: 1}.Append(nil), 0xfb, 'a', 'b'), true)
	f.Fuzz(func(t *testing.T, cmd, stream []byte, deprecateEOF bool) {
		caps := ServerCapabilities
		if !deprecateEOF {
			caps &^= CapDeprecateEOF
		}
		tr := NewResponseTracker(caps)
		ok, err := tr.Begin(cmd, 1)
		if err != nil || !ok {
			if tr.Busy() {
				t.Fatal("busy after a refused command")
			}
			return
		}
		c := NewConn(newRW(stream))
		packets := 0
		for {
			h, prefix, err := c.Next()
			if err != nil {
				return
			}
			packets++
			step, err := tr.Feed(h, prefix)
			if r := tr.Result(); r.Rows > int64(packets) {
				t.Fatalf("%d rows from %d packets", r.Rows, packets)
			}
			if err != nil {
				if errors.Is(err, ErrShortPrefix) {
					t.Fatal("Conn.Next gave a prefix the tracker calls short")
				}
				if tr.Busy() {
					t.Fatal("busy after an error")
				}
				return
			}
			switch step {
			case StepDone:
				if tr.Busy() {
					t.Fatal("busy after StepDone")
				}
				return
			case StepLocalInfile:
				if tr.InfileSent(1) != nil {
					t.Fatal("InfileSent refused after StepLocalInfile")
				}
				c.SetSeq(h.Seq + 2)
			}
			if err := c.Discard(); err != nil {
				return
			}
		}
	})
}
