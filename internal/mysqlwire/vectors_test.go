package mysqlwire

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// unhex decodes a hex dump written as in MySQL's protocol documentation
// ("36 00 00 00 0a 35 …"); it fails the test on a typo.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rw is an in-memory connection: reads from in, writes to out.
type rw struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *rw) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.out.Write(p) }

func newRW(b []byte) *rw { return &rw{in: bytes.NewReader(b)} }

// The HandshakeV10 example of MySQL's protocol documentation (a 5.5.2
// server, no CLIENT_PLUGIN_AUTH).
const docHandshakeV10 = `36 00 00 00 0a 35 2e 35 2e 32 2d 6d 32 00 0b 00
00 00 64 76 48 40 49 2d 43 4a 00 ff f7 08 02 00
00 00 00 00 00 00 00 00 00 00 00 00 00 2a 34 64
7c 63 5a 77 6b 34 5e 5d 3a 00`

// The HandshakeResponse41 example of the same documentation: user "pam",
// database "test", mysql_native_password.
const docHandshakeResponse41 = `54 00 00 01 8d a6 0f 00 00 00 00 01 08 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 70 61 6d 00 14 ab 09 ee f6 bc b1 32
3e 61 14 38 65 c0 99 1d 95 7d 75 d4 47 74
65 73 74 00 6d 79 73 71 6c 5f 6e 61 74 69 76 65
5f 70 61 73 73 77 6f 72 64 00`

func TestHandshakeV10DocVector(t *testing.T) {
	c := NewConn(newRW(unhex(t, docHandshakeV10)))
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHandshakeV10(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerVersion != "5.5.2-m2" || h.ConnectionID != 11 || h.Charset != 8 || h.Status != 2 {
		t.Errorf("got %+v", h)
	}
	if h.Capabilities != 0xf7ff {
		t.Errorf("capabilities %#x, want 0xf7ff", uint32(h.Capabilities))
	}
	if want := "dvH@I-CJ*4d|cZwk4^]:"; string(h.Scramble) != want {
		t.Errorf("scramble %q, want %q", h.Scramble, want)
	}
	if h.AuthPlugin != "" {
		t.Errorf("plugin %q without CLIENT_PLUGIN_AUTH", h.AuthPlugin)
	}
}

func TestHandshakeResponse41DocVector(t *testing.T) {
	c := NewConn(newRW(unhex(t, docHandshakeResponse41)))
	c.SetSeq(1)
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if IsSSLRequest(p) {
		t.Fatal("a full response taken for an SSLRequest")
	}
	h, err := ParseHandshakeResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Capabilities != 0x000fa68d || h.MaxPacket != 16777216 || h.Charset != 8 {
		t.Errorf("fixed part %#x %d %d", uint32(h.Capabilities), h.MaxPacket, h.Charset)
	}
	if h.User != "pam" || h.Database != "test" || h.AuthPlugin != NativePassword {
		t.Errorf("got user %q db %q plugin %q", h.User, h.Database, h.AuthPlugin)
	}
	if want := unhex(t, "ab 09 ee f6 bc b1 32 3e 61 14 38 65 c0 99 1d 95 7d 75 d4 47"); !bytes.Equal(h.AuthResponse, want) {
		t.Errorf("auth response %x", h.AuthResponse)
	}
	// Re-encoding gives the same bytes (the example has no attributes).
	if got := h.Append(nil); !bytes.Equal(got, p) {
		t.Errorf("re-encoded\n%x\nwant\n%x", got, p)
	}
	if _, err := Negotiate(ServerCapabilities, h.Capabilities); err != nil {
		t.Errorf("negotiate: %v", err)
	}
}

func TestHandshakeV10RoundTrip(t *testing.T) {
	s, err := NewScramble()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(s, 0) >= 0 || len(s) != 20 {
		t.Fatalf("scramble %q", s)
	}
	in := &ServerHandshake{ServerVersion: "11.0.0-airlock", ConnectionID: 7, Scramble: s,
		Capabilities: ServerCapabilities | CapSSL, Charset: DefaultCharset, Status: StatusAutocommit,
		AuthPlugin: NativePassword}
	out, err := ParseHandshakeV10(in.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if out.ServerVersion != in.ServerVersion || out.ConnectionID != 7 || !bytes.Equal(out.Scramble, s) ||
		out.Capabilities != in.Capabilities || out.AuthPlugin != NativePassword || out.Status != StatusAutocommit {
		t.Errorf("round trip: %+v", out)
	}
	if in.Capabilities&(CapCompress|CapLocalFiles) != 0 {
		t.Error("ServerCapabilities offers compression or LOCAL INFILE")
	}
}

func TestSSLRequest(t *testing.T) {
	h := &HandshakeResponse{Capabilities: CapProtocol41 | CapSecureConnection | CapPluginAuth, MaxPacket: 1 << 24, Charset: 45}
	p := h.AppendSSLRequest(nil)
	if len(p) != 32 || !IsSSLRequest(p) {
		t.Fatalf("SSLRequest %x", p)
	}
	got, err := ParseHandshakeResponse(p)
	if err != nil || !got.Capabilities.Has(CapSSL) || got.User != "" {
		t.Fatalf("parse SSLRequest: %+v %v", got, err)
	}
	// A 32-byte packet without CapSSL is not one.
	h2 := *h
	if IsSSLRequest(h2.appendFixed(nil)) {
		t.Error("no CapSSL but taken for an SSLRequest")
	}
}

func TestHandshakeResponseAttrs(t *testing.T) {
	h := &HandshakeResponse{Capabilities: CapProtocol41 | CapSecureConnection | CapPluginAuth |
		CapPluginAuthLenencData | CapConnectAttrs | CapConnectWithDB,
		User: "alice", AuthResponse: []byte("tok"), Database: "prod/app", AuthPlugin: ClearPassword,
		Attrs: []Attr{{"_client_name", "libmariadb"}, {"program_name", strings.Repeat("x", 2000)}}}
	got, err := ParseHandshakeResponse(h.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || string(got.AuthResponse) != "tok" || got.Database != "prod/app" || got.AuthPlugin != ClearPassword {
		t.Errorf("got %+v", got)
	}
	if len(got.Attrs) != 2 || got.Attrs[0] != (Attr{"_client_name", "libmariadb"}) || len(got.Attrs[1].Value) != maxAttrLen || !got.AttrsTruncated {
		t.Errorf("attrs %d, truncated %v", len(got.Attrs), got.AttrsTruncated)
	}
	// Attribute block longer than the packet.
	p := h.Append(nil)
	if _, err := ParseHandshakeResponse(p[:len(p)-5]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated attrs: %v", err)
	}
}

func TestNegotiate(t *testing.T) {
	base := CapProtocol41 | CapSecureConnection | CapPluginAuth
	for _, tc := range []struct {
		name   string
		client Capability
		code   uint16
	}{
		{"fail/compress", base | CapCompress, ErHandshakeError},
		{"fail/zstd", base | CapZstdCompression, ErHandshakeError},
		{"fail/pre41", CapSecureConnection, ErNotSupportedAuthMode},
		{"fail/insecure-auth", CapProtocol41, ErNotSupportedAuthMode},
		{"ok/local-files-dropped", base | CapLocalFiles | CapQueryAttributes, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(ServerCapabilities, tc.client)
			if tc.code == 0 {
				if err != nil || got.Has(CapLocalFiles) || got.Has(CapQueryAttributes) || !got.Has(base) {
					t.Fatalf("got %s, %v", got, err)
				}
				return
			}
			var se *ServerError
			if !errors.As(err, &se) || se.Code != tc.code {
				t.Fatalf("got %v, want code %d", err, tc.code)
			}
		})
	}
}

// OK, ERR and EOF examples of MySQL's protocol documentation.
func TestOKErrEOFDocVectors(t *testing.T) {
	ok, err := ParseOK(unhex(t, "00 00 00 02 00 00 00"))
	if err != nil || ok != (OK{Status: StatusAutocommit}) {
		t.Errorf("OK: %+v %v", ok, err)
	}
	if got := AppendOK(nil, ok); !bytes.Equal(got, unhex(t, "00 00 00 02 00 00 00")) {
		t.Errorf("AppendOK %x", got)
	}
	errp := unhex(t, "ff 48 04 23 48 59 30 30 30 4e 6f 20 74 61 62 6c 65 73 20 75 73 65 64")
	e, err := ParseErr(errp)
	if err != nil || e.Code != 1096 || e.State != "HY000" || e.Message != "No tables used" {
		t.Errorf("ERR: %+v %v", e, err)
	}
	if got := e.Append(nil); !bytes.Equal(got, errp) {
		t.Errorf("ERR re-encoded %x", got)
	}
	if e.Error() != "ERROR 1096 (HY000): No tables used" {
		t.Errorf("Error() = %q", e.Error())
	}
	w, s, err := ParseEOF(unhex(t, "fe 00 00 02 00"))
	if err != nil || w != 0 || s != 2 {
		t.Errorf("EOF: %d %d %v", w, s, err)
	}
	// A pre-handshake ERR has no SQL state.
	e, err = ParseErr(append([]byte{0xff, 0x10, 0x04}, "Too many connections"...))
	if err != nil || e.Code != 1040 || e.State != "" || e.Message != "Too many connections" {
		t.Errorf("ERR without state: %+v %v", e, err)
	}
	if _, err := ParseHandshakeV10(e.Append(nil)); !errors.As(err, new(*ServerError)) {
		t.Errorf("ERR in place of a handshake: %v", err)
	}
}

func TestPacketFraming(t *testing.T) {
	t.Run("ok/split-16MiB", func(t *testing.T) {
		payload := bytes.Repeat([]byte{'x'}, MaxPayload+10)
		var buf rw
		w := NewConn(&buf)
		if err := w.WritePacket(payload); err != nil {
			t.Fatal(err)
		}
		raw := buf.out.Bytes()
		if h, _ := ParseHeader(raw); h.Length != MaxPayload || h.Seq != 0 {
			t.Fatalf("first header %+v", h)
		}
		if h, _ := ParseHeader(raw[4+MaxPayload:]); h.Length != 10 || h.Seq != 1 {
			t.Fatalf("second header %+v", h)
		}
		r := NewConn(newRW(raw))
		got, err := r.ReadPacket()
		if err != nil || !bytes.Equal(got, payload) || r.Seq() != 2 {
			t.Fatalf("read back %d bytes, seq %d, %v", len(got), r.Seq(), err)
		}
	})
	t.Run("ok/exact-16MiB-needs-empty-trailer", func(t *testing.T) {
		var buf rw
		if err := NewConn(&buf).WritePacket(make([]byte, MaxPayload)); err != nil {
			t.Fatal(err)
		}
		raw := buf.out.Bytes()
		if len(raw) != 4+MaxPayload+4 || !bytes.Equal(raw[len(raw)-4:], []byte{0, 0, 0, 1}) {
			t.Fatalf("no empty trailer: %d bytes", len(raw))
		}
	})
	t.Run("fail/sequence", func(t *testing.T) {
		c := NewConn(newRW(unhex(t, "01 00 00 05 0e")))
		if _, err := c.ReadPacket(); !errors.Is(err, ErrSequence) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/too-large-before-auth", func(t *testing.T) {
		c := NewConn(newRW(unhex(t, "ff ff ff 00")))
		c.MaxPacket = PreAuthMaxPacket
		if _, err := c.ReadPacket(); !errors.Is(err, ErrPacketTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/split-grows-past-limit", func(t *testing.T) {
		// A small limit and a "continued" first packet: refused on the
		// header of the second before reading its payload.
		c := NewConn(newRW(append(Header{Length: MaxPayload}.Append(nil), make([]byte, MaxPayload)...)))
		c.MaxPacket = MaxPayload
		if _, err := c.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/truncated", func(t *testing.T) {
		c := NewConn(newRW(unhex(t, "05 00 00 00 03 61")))
		if _, err := c.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ok/next-copy-raw", func(t *testing.T) {
		raw := unhex(t, "01 00 00 01 01 05 00 00 02 fe 00 00 02 00")
		c := NewConn(newRW(raw))
		var out bytes.Buffer
		for range 2 {
			h, prefix, err := c.Next()
			if err != nil || len(prefix) != h.Length {
				t.Fatalf("next: %+v %x %v", h, prefix, err)
			}
			if _, err := c.CopyTo(&out); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), raw) {
			t.Fatalf("relayed %x", out.Bytes())
		}
	})
}

// TestStartTLSInjection: plaintext a client sends right behind its
// SSLRequest is handed to TLS, which refuses it; it never becomes a
// packet.
func TestStartTLSInjection(t *testing.T) {
	cert, _ := serverCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer nc.Close()
		ssl := (&HandshakeResponse{Capabilities: CapProtocol41}).AppendSSLRequest(nil)
		query := AppendCommand(nil, ComQuery, "DROP TABLE t")
		raw := append(Header{Length: len(ssl), Seq: 1}.Append(nil), ssl...)
		raw = append(Header{Length: len(query), Seq: 2}.Append(raw), query...)
		nc.Write(raw)
		io.Copy(io.Discard, nc)
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := NewConn(nc)
	c.SetSeq(1)
	p, err := c.ReadPacket()
	if err != nil || !IsSSLRequest(p) {
		t.Fatalf("%x %v", p, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.StartTLS(ctx, nc, &tls.Config{Certificates: []tls.Certificate{*cert}}, true); err == nil {
		t.Fatal("TLS handshake accepted plaintext")
	}
}

func TestLenenc(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1<<64 - 1} {
		b := AppendLenenc(nil, v)
		r := reader{b: b}
		got, null := r.lenenc()
		if r.bad || null || got != v || len(r.b) != 0 {
			t.Errorf("%d: encoded %x decoded %d", v, b, got)
		}
	}
	r := reader{b: []byte{0xff}}
	if r.lenenc(); !r.bad {
		t.Error("0xff accepted as a length")
	}
}
