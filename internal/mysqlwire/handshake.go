package mysqlwire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// Authentication plugin names.
const (
	NativePassword     = "mysql_native_password"
	CachingSHA2        = "caching_sha2_password"
	ClearPassword      = "mysql_clear_password"
	SHA256Password     = "sha256_password"
	MariaDBEd25519     = "client_ed25519"
	DefaultCharset     = 45 // utf8mb4_general_ci, known to MySQL 5.5+ and MariaDB
	ScrambleLen        = 20
	maxAttrs           = 64   // connect attributes kept by ParseHandshakeResponse
	maxAttrLen         = 1024 // bytes of one attribute key or value kept
	sslRequestLen      = 32
	handshakeV10Prefix = 0x0a
)

// ServerHandshake is the HandshakeV10 packet: what the gateway presents
// to its clients (Append) and what it reads from an upstream server
// (ParseHandshakeV10).
type ServerHandshake struct {
	ServerVersion string
	ConnectionID  uint32
	Scramble      []byte // 20 bytes of auth-plugin data (nonce)
	Capabilities  Capability
	Charset       uint8
	Status        uint16
	AuthPlugin    string // the method whose data Scramble is
}

// NewScramble returns 20 random bytes for a handshake: printable ASCII
// without '\0' (clients read part 2 up to a NUL) nor '$'.
func NewScramble() ([]byte, error) {
	const alphabet = "!\"#%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	s := make([]byte, ScrambleLen)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	for i := range s {
		s[i] = alphabet[int(s[i])%len(alphabet)]
	}
	return s, nil
}

// Append appends the HandshakeV10 payload. Scramble must be 20 bytes
// without NUL.
func (h *ServerHandshake) Append(b []byte) []byte {
	b = append(b, handshakeV10Prefix)
	b = append(b, h.ServerVersion...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, h.ConnectionID)
	b = append(b, h.Scramble[:8]...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Capabilities))
	b = append(b, h.Charset)
	b = binary.LittleEndian.AppendUint16(b, h.Status)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Capabilities>>16))
	if h.Capabilities.Has(CapPluginAuth) {
		b = append(b, byte(len(h.Scramble)+1))
	} else {
		b = append(b, 0)
	}
	b = append(b, make([]byte, 10)...)
	b = append(b, h.Scramble[8:]...)
	b = append(b, 0)
	if h.Capabilities.Has(CapPluginAuth) {
		b = append(b, h.AuthPlugin...)
		b = append(b, 0)
	}
	return b
}

// ParseHandshakeV10 decodes a server's initial handshake. A server that
// refuses the connection at once (too many connections, host blocked)
// sends an ERR instead: that is returned as a *ServerError.
func ParseHandshakeV10(p []byte) (*ServerHandshake, error) {
	if len(p) > 0 && p[0] == 0xff {
		e, err := ParseErr(p)
		if err != nil {
			return nil, err
		}
		return nil, e
	}
	r := reader{b: p}
	if v := r.byte1(); v != handshakeV10Prefix {
		return nil, fmt.Errorf("%w: handshake protocol version %d, want 10", ErrMalformed, v)
	}
	h := &ServerHandshake{ServerVersion: string(r.nul()), ConnectionID: r.uint32()}
	s1 := r.bytes(8)
	r.byte1()
	caps := Capability(r.uint16())
	if r.bad {
		return nil, r.err("HandshakeV10")
	}
	h.Scramble = append([]byte(nil), s1...)
	if len(r.b) == 0 { // a pre-4.1 server stops here
		h.Capabilities = caps
		return h, nil
	}
	h.Charset = r.byte1()
	h.Status = r.uint16()
	caps |= Capability(r.uint16()) << 16
	h.Capabilities = caps
	dataLen := int(r.byte1())
	r.bytes(10)
	if caps.Has(CapSecureConnection) {
		n := max(13, dataLen-8)
		s2 := r.bytes(n)
		// Part 2 is NUL-terminated within its length (12 bytes + NUL).
		if i := bytes.IndexByte(s2, 0); i >= 0 {
			s2 = s2[:i]
		}
		h.Scramble = append(h.Scramble, s2...)
	}
	if caps.Has(CapPluginAuth) {
		h.AuthPlugin = string(r.nulOrEOF())
	}
	if err := r.err("HandshakeV10"); err != nil {
		return nil, err
	}
	return h, nil
}

// Attr is one connect attribute (program_name, _client_version, …).
type Attr struct{ Key, Value string }

// HandshakeResponse is a HandshakeResponse41 (or, with only the fixed
// part and CapSSL set, an SSLRequest).
type HandshakeResponse struct {
	Capabilities Capability
	MaxPacket    uint32
	Charset      uint8
	User         string
	AuthResponse []byte
	Database     string // with CapConnectWithDB
	AuthPlugin   string // with CapPluginAuth; may be empty
	// Attrs are the connect attributes, at most 64 kept, each key and
	// value cut at 1 KiB; AttrsTruncated reports that some were dropped
	// or cut.
	Attrs          []Attr
	AttrsTruncated bool
}

// IsSSLRequest reports whether p, the client's first packet, is an
// SSLRequest: the 32-byte fixed part of a HandshakeResponse41 with CapSSL.
// The server then starts TLS (Conn.StartTLS) and reads the real response.
func IsSSLRequest(p []byte) bool {
	return len(p) == sslRequestLen && Capability(binary.LittleEndian.Uint32(p)).Has(CapSSL)
}

// ParseHandshakeResponse decodes a HandshakeResponse41. A 4.0-style
// HandshakeResponse320 (no CapProtocol41) is refused with ErrMalformed;
// Negotiate explains that to the client.
func ParseHandshakeResponse(p []byte) (*HandshakeResponse, error) {
	r := reader{b: p}
	h := &HandshakeResponse{Capabilities: Capability(r.uint32())}
	if r.bad {
		return nil, r.err("HandshakeResponse41")
	}
	if !h.Capabilities.Has(CapProtocol41) {
		return nil, fmt.Errorf("%w: HandshakeResponse320 (pre-4.1 client)", ErrMalformed)
	}
	h.MaxPacket = r.uint32()
	h.Charset = r.byte1()
	r.bytes(23)
	if r.bad {
		return nil, r.err("HandshakeResponse41")
	}
	if len(r.b) == 0 { // SSLRequest
		return h, nil
	}
	h.User = string(r.nul())
	switch {
	case h.Capabilities.Has(CapPluginAuthLenencData):
		h.AuthResponse = r.lenencBytes()
	case h.Capabilities.Has(CapSecureConnection):
		n := int(r.byte1())
		h.AuthResponse = r.bytes(n)
	default:
		h.AuthResponse = r.nul()
	}
	if h.Capabilities.Has(CapConnectWithDB) && len(r.b) > 0 {
		h.Database = string(r.nulOrEOF())
	}
	if h.Capabilities.Has(CapPluginAuth) && len(r.b) > 0 {
		h.AuthPlugin = string(r.nulOrEOF())
	}
	if h.Capabilities.Has(CapConnectAttrs) && len(r.b) > 0 {
		n, _ := r.lenenc()
		if n > uint64(len(r.b)) {
			r.fail()
		}
		ar := reader{b: r.bytes(int(n))}
		for len(ar.b) > 0 && !ar.bad {
			k, v := ar.lenencBytes(), ar.lenencBytes()
			if ar.bad {
				break
			}
			if len(h.Attrs) >= maxAttrs {
				h.AttrsTruncated = true
				continue
			}
			if len(k) > maxAttrLen || len(v) > maxAttrLen {
				h.AttrsTruncated = true
				k, v = k[:min(len(k), maxAttrLen)], v[:min(len(v), maxAttrLen)]
			}
			h.Attrs = append(h.Attrs, Attr{string(k), string(v)})
		}
		if ar.bad {
			r.fail()
		}
	}
	if err := r.err("HandshakeResponse41"); err != nil {
		return nil, err
	}
	h.AuthResponse = bytes.Clone(h.AuthResponse)
	return h, nil
}

// Append appends the HandshakeResponse41 payload. With only
// Capabilities, MaxPacket and Charset meaningful and CapSSL set, use
// AppendSSLRequest instead.
func (h *HandshakeResponse) Append(b []byte) []byte {
	b = h.appendFixed(b)
	b = append(b, h.User...)
	b = append(b, 0)
	switch {
	case h.Capabilities.Has(CapPluginAuthLenencData):
		b = AppendLenencBytes(b, h.AuthResponse)
	default:
		b = append(b, byte(len(h.AuthResponse)))
		b = append(b, h.AuthResponse...)
	}
	if h.Capabilities.Has(CapConnectWithDB) {
		b = append(b, h.Database...)
		b = append(b, 0)
	}
	if h.Capabilities.Has(CapPluginAuth) {
		b = append(b, h.AuthPlugin...)
		b = append(b, 0)
	}
	if h.Capabilities.Has(CapConnectAttrs) {
		var a []byte
		for _, kv := range h.Attrs {
			a = AppendLenencBytes(a, []byte(kv.Key))
			a = AppendLenencBytes(a, []byte(kv.Value))
		}
		b = AppendLenencBytes(b, a)
	}
	return b
}

func (h *HandshakeResponse) appendFixed(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Capabilities))
	b = binary.LittleEndian.AppendUint32(b, h.MaxPacket)
	b = append(b, h.Charset)
	return append(b, make([]byte, 23)...)
}

// AppendSSLRequest appends the SSLRequest payload for h's capabilities
// (CapSSL is added), max packet and charset.
func (h *HandshakeResponse) AppendSSLRequest(b []byte) []byte {
	c := *h
	c.Capabilities |= CapSSL
	return c.appendFixed(b)
}

// AppendAuthSwitchRequest appends an AuthSwitchRequest: 0xFE, the method
// and its data. For mysql_native_password and caching_sha2_password data
// is the 20-byte scramble and a NUL is added after it, as servers do.
func AppendAuthSwitchRequest(b []byte, plugin string, data []byte) []byte {
	b = append(b, 0xfe)
	b = append(b, plugin...)
	b = append(b, 0)
	b = append(b, data...)
	if plugin == NativePassword || plugin == CachingSHA2 {
		b = append(b, 0)
	}
	return b
}

// ParseAuthSwitchRequest decodes an AuthSwitchRequest (0xFE, plugin
// name, data). A trailing NUL after a 20-byte scramble is dropped.
func ParseAuthSwitchRequest(p []byte) (plugin string, data []byte, err error) {
	r := reader{b: p}
	if r.byte1() != 0xfe {
		return "", nil, fmt.Errorf("%w: not an AuthSwitchRequest", ErrMalformed)
	}
	plugin = string(r.nul())
	data = r.rest()
	if err := r.err("AuthSwitchRequest"); err != nil {
		return "", nil, err
	}
	if len(data) == ScrambleLen+1 && data[ScrambleLen] == 0 {
		data = data[:ScrambleLen]
	}
	return plugin, bytes.Clone(data), nil
}

// AppendAuthMoreData appends an AuthMoreData packet: 0x01 and data
// (caching_sha2_password's 0x03 fast-auth-success, 0x04 perform-full-auth,
// or a PEM public key).
func AppendAuthMoreData(b []byte, data ...byte) []byte {
	return append(append(b, 0x01), data...)
}

// caching_sha2_password AuthMoreData statuses.
const (
	CachingSHA2FastAuthOK  = 0x03
	CachingSHA2PerformFull = 0x04
)
