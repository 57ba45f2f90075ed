package mysqlwire

import (
	"encoding/binary"
	"fmt"
)

// Error codes the gateway itself sends (MySQL's numbers, which clients
// know).
const (
	ErConCount             = 1040 // too many connections
	ErHandshakeError       = 1043 // bad handshake
	ErDBAccessDenied       = 1044 // access denied to database
	ErAccessDenied         = 1045 // access denied for user
	ErUnknownCom           = 1047 // unknown command
	ErNotSupportedAuthMode = 1251 // client does not support authentication protocol
	ErSpecificAccessDenied = 1227 // access denied; you need the … privilege
	ErQueryInterrupted     = 1317
	ErNotAllowedCommand    = 1148 // the used command is not allowed with this version
	ErServerShutdown       = 1053
	ErUnknownError         = 1105
)

// ServerError is an ERR packet: error code, SQL state and message. It is
// both what a gateway sends for its own refusals (Append) and what
// ParseErr and the ResponseTracker return for a server's errors.
type ServerError struct {
	Code    uint16
	State   string // five characters; "HY000" when empty
	Message string
}

// Error returns "ERROR code (state): message", as the mysql client prints it.
func (e *ServerError) Error() string {
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.state(), e.Message)
}

func (e *ServerError) state() string {
	if len(e.State) != 5 {
		return "HY000"
	}
	return e.State
}

// Append appends the ERR payload (4.1 format, with SQL state).
func (e *ServerError) Append(b []byte) []byte {
	b = append(b, 0xff)
	b = binary.LittleEndian.AppendUint16(b, e.Code)
	b = append(b, '#')
	b = append(b, e.state()...)
	return append(b, e.Message...)
}

// ParseErr decodes an ERR payload (starting with 0xFF). Before the
// handshake completes a server may send an ERR without the SQL state
// marker; State is then empty.
func ParseErr(p []byte) (*ServerError, error) {
	r := reader{b: p}
	if r.byte1() != 0xff {
		return nil, fmt.Errorf("%w: not an ERR packet", ErrMalformed)
	}
	e := &ServerError{Code: r.uint16()}
	if len(r.b) >= 6 && r.b[0] == '#' {
		e.State = string(r.b[1:6])
		r.b = r.b[6:]
	}
	e.Message = string(r.rest())
	if err := r.err("ERR packet"); err != nil {
		return nil, err
	}
	return e, nil
}

// Server status flags (OK and EOF packets).
const (
	StatusInTrans            uint16 = 0x0001
	StatusAutocommit         uint16 = 0x0002
	StatusMoreResultsExist   uint16 = 0x0008
	StatusCursorExists       uint16 = 0x0040
	StatusLastRowSent        uint16 = 0x0080
	StatusInTransReadonly    uint16 = 0x2000
	StatusSessionStateChange uint16 = 0x4000
)

// OK is the part of an OK packet (or of the OK that ends a result set
// under DEPRECATE_EOF) that a gateway uses.
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
}

// ParseOK decodes an OK payload that starts with 0x00 or 0xFE (4.1
// format); bytes after the warnings (info, session state) are ignored,
// so a prefix of the payload is enough.
func ParseOK(p []byte) (OK, error) {
	r := reader{b: p}
	if h := r.byte1(); h != 0x00 && h != 0xfe {
		return OK{}, fmt.Errorf("%w: not an OK packet", ErrMalformed)
	}
	var ok OK
	ok.AffectedRows, _ = r.lenenc()
	ok.LastInsertID, _ = r.lenenc()
	ok.Status = r.uint16()
	ok.Warnings = r.uint16()
	return ok, r.err("OK packet")
}

// AppendOK appends an OK payload (4.1 format, header 0x00).
func AppendOK(b []byte, ok OK) []byte {
	b = append(b, 0x00)
	b = AppendLenenc(b, ok.AffectedRows)
	b = AppendLenenc(b, ok.LastInsertID)
	b = binary.LittleEndian.AppendUint16(b, ok.Status)
	return binary.LittleEndian.AppendUint16(b, ok.Warnings)
}

// ParseEOF decodes a (pre-DEPRECATE_EOF) EOF payload: 0xFE, warnings,
// status.
func ParseEOF(p []byte) (warnings, status uint16, err error) {
	r := reader{b: p}
	if r.byte1() != 0xfe || len(p) > 5 {
		return 0, 0, fmt.Errorf("%w: not an EOF packet", ErrMalformed)
	}
	warnings, status = r.uint16(), r.uint16()
	return warnings, status, r.err("EOF packet")
}
