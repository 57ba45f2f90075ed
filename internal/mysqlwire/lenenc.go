package mysqlwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// reader is a bounds-checked cursor over a payload: every read that would
// run past the end sets bad and returns zero values, so parsers check
// once at the end (or where a value steers what follows).
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) fail() { r.bad = true; r.b = nil }

func (r *reader) byte1() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uint16() uint16 {
	if len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) uint32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) uint64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// nul reads a NUL-terminated string; a missing NUL is malformed.
func (r *reader) nul() []byte {
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.fail()
		return nil
	}
	v := r.b[:i:i]
	r.b = r.b[i+1:]
	return v
}

// nulOrEOF reads a string ended by NUL or by the end of the payload.
func (r *reader) nulOrEOF() []byte {
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		v := r.b
		r.b = nil
		return v
	}
	v := r.b[:i:i]
	r.b = r.b[i+1:]
	return v
}

func (r *reader) rest() []byte { v := r.b; r.b = nil; return v }

// lenenc reads a length-encoded integer. null reports 0xFB (NULL in a
// text row).
func (r *reader) lenenc() (v uint64, null bool) {
	if len(r.b) < 1 {
		r.fail()
		return 0, false
	}
	switch f := r.b[0]; {
	case f < 0xfb:
		r.b = r.b[1:]
		return uint64(f), false
	case f == 0xfb:
		r.b = r.b[1:]
		return 0, true
	case f == 0xfc:
		if len(r.b) < 3 {
			r.fail()
			return 0, false
		}
		v = uint64(binary.LittleEndian.Uint16(r.b[1:]))
		r.b = r.b[3:]
	case f == 0xfd:
		if len(r.b) < 4 {
			r.fail()
			return 0, false
		}
		v = uint64(r.b[1]) | uint64(r.b[2])<<8 | uint64(r.b[3])<<16
		r.b = r.b[4:]
	case f == 0xfe:
		if len(r.b) < 9 {
			r.fail()
			return 0, false
		}
		v = binary.LittleEndian.Uint64(r.b[1:])
		r.b = r.b[9:]
	default: // 0xff is not a length
		r.fail()
	}
	return v, false
}

// lenencBytes reads a length-encoded string.
func (r *reader) lenencBytes() []byte {
	n, null := r.lenenc()
	if null || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	return r.bytes(int(n))
}

func (r *reader) err(what string) error {
	if r.bad {
		return fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	return nil
}

// AppendLenenc appends v as a length-encoded integer.
func AppendLenenc(b []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		b = append(b, 0xfe)
		return binary.LittleEndian.AppendUint64(b, v)
	}
}

// AppendLenencBytes appends s as a length-encoded string.
func AppendLenencBytes(b, s []byte) []byte {
	return append(AppendLenenc(b, uint64(len(s))), s...)
}
