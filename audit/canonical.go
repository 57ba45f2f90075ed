package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
)

// canonicalTag is the first field of every canonical encoding; it names the
// encoding version so that a future change cannot be confused with this one.
const canonicalTag = "airlock-audit-event-v1"

// Hash returns the hash of e as stored in e.Hash: the lower-case hex
// SHA-256 of the canonical encoding of every field of e except Hash (see the
// package documentation). e.Time is taken in UTC, truncated to microseconds.
func Hash(e airlock.Event) string {
	var h hasher
	return h.hexHash(&e)
}

// Canonical returns the canonical encoding of e that Hash hashes.
func Canonical(e airlock.Event) []byte {
	return appendCanonical(nil, &e, e.Seq)
}

// hasher hashes events with a reused buffer; it is not safe for concurrent use.
type hasher struct {
	buf []byte
}

// sum returns SHA-256 of the canonical encoding of e with its Seq replaced by seq.
func (h *hasher) sum(e *airlock.Event, seq int64) [sha256.Size]byte {
	h.buf = appendCanonical(h.buf[:0], e, seq)
	return sha256.Sum256(h.buf)
}

func (h *hasher) hexHash(e *airlock.Event) string {
	s := h.sum(e, e.Seq)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], s[:])
	return string(out[:])
}

// matches reports whether e.Hash is the hash of e with its Seq replaced by seq.
func (h *hasher) matches(e *airlock.Event, seq int64) bool {
	s := h.sum(e, seq)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], s[:])
	return string(out[:]) == e.Hash
}

// eventTime is the time as it is hashed, stored and exported.
func eventTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendFieldBytes(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendCanonical appends the canonical encoding of e (with Seq = seq) to b.
func appendCanonical(b []byte, e *airlock.Event, seq int64) []byte {
	var num [20]byte
	var ts [40]byte
	b = appendField(b, canonicalTag)
	b = appendFieldBytes(b, strconv.AppendInt(num[:0], seq, 10))
	b = appendFieldBytes(b, eventTime(e.Time).AppendFormat(ts[:0], time.RFC3339Nano))
	b = appendField(b, e.Actor.ID)
	b = appendField(b, e.Actor.Name)
	b = appendField(b, e.Action)
	b = appendField(b, e.Resource)
	b = appendField(b, e.RequestID)
	b = appendField(b, e.GrantID)
	b = appendField(b, e.SessionID)
	b = appendField(b, e.SourceAddr)
	b = appendField(b, e.Outcome)
	b = appendFieldBytes(b, e.Details)
	b = appendField(b, e.PrevHash)
	return b
}
