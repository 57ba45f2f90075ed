package sshproxy

import (
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf8"
)

// errMalformed is returned by the payload parsers for truncated or
// oversized input.
var errMalformed = errors.New("sshproxy: malformed request payload")

// maxStringLen bounds strings in channel-request payloads (commands, names).
const maxStringLen = 256 << 10

func readUint32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, b, false
	}
	return binary.BigEndian.Uint32(b), b[4:], true
}

func readString(b []byte) ([]byte, []byte, bool) {
	n, rest, ok := readUint32(b)
	if !ok || n > maxStringLen || uint64(n) > uint64(len(rest)) {
		return nil, b, false
	}
	return rest[:n], rest[n:], true
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// ptyRequest is the payload of a "pty-req" channel request (RFC 4254 6.2).
type ptyRequest struct {
	Term       string
	Cols, Rows uint32
}

func parsePtyReq(b []byte) (ptyRequest, error) {
	var p ptyRequest
	term, b, ok := readString(b)
	if !ok || len(term) > 256 {
		return p, errMalformed
	}
	var cols, rows uint32
	if cols, b, ok = readUint32(b); !ok {
		return p, errMalformed
	}
	if rows, b, ok = readUint32(b); !ok {
		return p, errMalformed
	}
	if _, b, ok = readUint32(b); !ok { // width in pixels
		return p, errMalformed
	}
	if _, b, ok = readUint32(b); !ok { // height in pixels
		return p, errMalformed
	}
	if _, _, ok = readString(b); !ok { // encoded terminal modes
		return p, errMalformed
	}
	p.Term, p.Cols, p.Rows = printable(string(term)), clampDim(cols), clampDim(rows)
	return p, nil
}

// parseWindowChange parses a "window-change" payload (RFC 4254 6.7).
func parseWindowChange(b []byte) (cols, rows uint32, err error) {
	c, b, ok := readUint32(b)
	if !ok {
		return 0, 0, errMalformed
	}
	r, b, ok := readUint32(b)
	if !ok {
		return 0, 0, errMalformed
	}
	if len(b) != 8 {
		return 0, 0, errMalformed
	}
	return clampDim(c), clampDim(r), nil
}

func clampDim(v uint32) uint32 {
	if v > 10000 {
		return 10000
	}
	return v
}

// parseSingleString parses a payload made of one string: "exec" (command),
// "subsystem" (name), "signal" (name without SIG).
func parseSingleString(b []byte) (string, error) {
	s, rest, ok := readString(b)
	if !ok || len(rest) != 0 {
		return "", errMalformed
	}
	return string(s), nil
}

// parseEnv parses an "env" payload (RFC 4254 6.4).
func parseEnv(b []byte) (name, value string, err error) {
	n, b, ok := readString(b)
	if !ok {
		return "", "", errMalformed
	}
	v, b, ok := readString(b)
	if !ok || len(b) != 0 {
		return "", "", errMalformed
	}
	return string(n), string(v), nil
}

// parseExitStatus parses an "exit-status" payload.
func parseExitStatus(b []byte) (uint32, error) {
	v, rest, ok := readUint32(b)
	if !ok || len(rest) != 0 {
		return 0, errMalformed
	}
	return v, nil
}

// parseExitSignal parses the signal name of an "exit-signal" payload.
func parseExitSignal(b []byte) (string, error) {
	s, _, ok := readString(b)
	if !ok {
		return "", errMalformed
	}
	return printable(string(s)), nil
}

// parseDirectTCPIP parses the extra data of a "direct-tcpip" or
// "forwarded-tcpip" channel open: the host and port being connected to.
func parseDirectTCPIP(b []byte) (host string, port uint32, err error) {
	h, b, ok := readString(b)
	if !ok {
		return "", 0, errMalformed
	}
	p, _, ok := readUint32(b)
	if !ok {
		return "", 0, errMalformed
	}
	return printable(string(h)), p, nil
}

// printable makes s safe for logs and audit details: valid UTF-8 without
// control characters.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if isControl(r) {
			b.WriteRune('\uFFFD')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// parseRequest parses the payload of a channel request of the given type
// and reports what the gateway needs from it. It is the single entry point
// fuzzed by FuzzChannelRequest.
func parseRequest(typ string, payload []byte) (any, error) {
	switch typ {
	case "pty-req":
		return parsePtyReq(payload)
	case "window-change":
		c, r, err := parseWindowChange(payload)
		return [2]uint32{c, r}, err
	case "exec", "subsystem", "signal":
		return parseSingleString(payload)
	case "env":
		n, v, err := parseEnv(payload)
		return [2]string{n, v}, err
	case "exit-status":
		return parseExitStatus(payload)
	case "exit-signal":
		return parseExitSignal(payload)
	case "shell":
		if len(payload) != 0 {
			return nil, errMalformed
		}
		return nil, nil
	}
	return nil, errMalformed
}
