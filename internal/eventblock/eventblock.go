package eventblock

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/airlockhq/airlock"
)

// magic starts every block and names the encoding version.
const magic = "alb1"

// Event flags (a uvarint before each event).
const (
	flagTime    = 1 << 0 // the event has a time
	flagDetails = 1 << 1 // the event has details (possibly empty)
	// flagSame<<i: string field i is the previous event's (not stored).
	flagSame = 1 << 2
	// flagPrevLinked: PrevHash is the previous event's Hash (not stored).
	flagPrevLinked = 1 << 11
	flagHashRaw    = 1 << 12 // Hash is stored as 32 bytes, not hex text
	flagPrevRaw    = 1 << 13 // PrevHash is stored as 32 bytes
	flagsKnown     = 1<<14 - 1
)

// numStrings is the number of string fields covered by flagSame.
const numStrings = 9

// minEventLen is the fewest bytes one event takes (flags, seq delta, an
// empty hash); Decode uses it to refuse counts the data cannot hold.
const minEventLen = 3

// hashLen is the length of a hex SHA-256, the form hashes have in events.
const hashLen = 64

// ErrCorrupt is the cause of every Decode error: the block is not a valid
// encoding (edited, truncated or not a block at all).
var ErrCorrupt = errors.New("eventblock: corrupt block")

// stringFields returns the fields flagSame covers, in order.
func stringFields(e *airlock.Event) [numStrings]*string {
	return [numStrings]*string{&e.Actor.ID, &e.Actor.Name, &e.Action, &e.Resource, &e.RequestID, &e.GrantID, &e.SessionID, &e.SourceAddr, &e.Outcome}
}

// Append appends the block encoding of evs to b and returns it.
func Append(b []byte, evs []airlock.Event) []byte {
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	var prev airlock.Event
	var prevSeq, prevMicro int64
	for i := range evs {
		e := &evs[i]
		var flags uint64
		if !e.Time.IsZero() {
			flags |= flagTime
		}
		if e.Details != nil {
			flags |= flagDetails
		}
		cur, old := stringFields(e), stringFields(&prev)
		for k := range cur {
			if *cur[k] == *old[k] {
				flags |= flagSame << k
			}
		}
		switch {
		case i > 0 && e.PrevHash == prev.Hash:
			flags |= flagPrevLinked
		case isHexHash(e.PrevHash):
			flags |= flagPrevRaw
		}
		if isHexHash(e.Hash) {
			flags |= flagHashRaw
		}
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendVarint(b, e.Seq-prevSeq)
		prevSeq = e.Seq
		if flags&flagTime != 0 {
			m := e.Time.UnixMicro()
			b = binary.AppendVarint(b, m-prevMicro)
			prevMicro = m
		}
		for k := range cur {
			if flags&(flagSame<<k) == 0 {
				b = appendStr(b, *cur[k])
			}
		}
		if flags&flagDetails != 0 {
			b = binary.AppendUvarint(b, uint64(len(e.Details)))
			b = append(b, e.Details...)
		}
		switch {
		case flags&flagPrevLinked != 0:
		case flags&flagPrevRaw != 0:
			b = appendRawHash(b, e.PrevHash)
		default:
			b = appendStr(b, e.PrevHash)
		}
		if flags&flagHashRaw != 0 {
			b = appendRawHash(b, e.Hash)
		} else {
			b = appendStr(b, e.Hash)
		}
		prev = *e
	}
	return b
}

// isHexHash reports whether h is 64 lower-case hex digits.
func isHexHash(h string) bool {
	if len(h) != hashLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func appendRawHash(b []byte, h string) []byte {
	var raw [hashLen / 2]byte
	hex.Decode(raw[:], []byte(h))
	return append(b, raw[:]...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode appends the events of block data to dst. The strings and details
// of the events share one copy of data (data itself is not retained): the
// strings are read-only views of it and each Details is a separate,
// capacity-capped region, so no value of one event can change another. On
// error it returns dst unchanged and an error wrapping ErrCorrupt.
func Decode(dst []airlock.Event, data []byte) (out []airlock.Event, err error) {
	n0 := len(dst)
	defer func() {
		if err != nil {
			clear(out[n0:])
			out = out[:n0]
		}
	}()
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return dst, fmt.Errorf("%w: no block header", ErrCorrupt)
	}
	// One copy, viewed as a string for the fields and sliced for details;
	// nothing else holds it, and the string regions are never written.
	buf := bytes.Clone(data)
	d := decoder{s: unsafe.String(unsafe.SliceData(buf), len(buf)), p: len(magic)}
	count := d.uvarint()
	if d.err != nil || count > uint64(len(data)-d.p)/minEventLen {
		return dst, fmt.Errorf("%w: bad event count", ErrCorrupt)
	}
	// Hashes stored raw are expanded to hex into one arena; each hash is
	// its own region of it, written once before it is viewed as a string.
	var arena []byte
	var prev airlock.Event
	var prevSeq, prevMicro int64
	for range count {
		var e airlock.Event
		flags := d.uvarint()
		if flags&^flagsKnown != 0 || (flags&flagPrevLinked != 0 && flags&flagPrevRaw != 0) {
			d.fail("unknown flags")
		}
		prevSeq += d.varint()
		e.Seq = prevSeq
		if flags&flagTime != 0 {
			prevMicro += d.varint()
			e.Time = time.UnixMicro(prevMicro).UTC()
		}
		cur, old := stringFields(&e), stringFields(&prev)
		for k := range cur {
			if flags&(flagSame<<k) != 0 {
				*cur[k] = *old[k]
			} else {
				*cur[k] = d.str()
			}
		}
		if flags&flagDetails != 0 {
			from, to := d.span()
			if d.err == nil {
				e.Details = json.RawMessage(buf[from:to:to])
			}
		}
		switch {
		case flags&flagPrevLinked != 0:
			e.PrevHash = prev.Hash
		case flags&flagPrevRaw != 0:
			e.PrevHash, arena = d.rawHash(arena, int(count))
		default:
			e.PrevHash = d.str()
		}
		if flags&flagHashRaw != 0 {
			e.Hash, arena = d.rawHash(arena, int(count))
		} else {
			e.Hash = d.str()
		}
		if d.err != nil {
			return dst, fmt.Errorf("%w: event %d: %s", ErrCorrupt, len(dst)-n0, d.err)
		}
		dst = append(dst, e)
		prev = e
	}
	if d.p != len(d.s) {
		return dst, fmt.Errorf("%w: %d bytes after the last event", ErrCorrupt, len(d.s)-d.p)
	}
	return dst, nil
}

// rawHash reads a 32-byte hash and returns it as hex, expanded into arena
// (allocated for count events' hashes on first use).
func (d *decoder) rawHash(arena []byte, count int) (string, []byte) {
	if d.err != nil || len(d.s)-d.p < hashLen/2 {
		d.fail("truncated hash")
		return "", arena
	}
	if arena == nil {
		arena = make([]byte, 0, 2*hashLen*count)
	}
	if cap(arena)-len(arena) < hashLen {
		arena = make([]byte, 0, 2*hashLen*count) // regions already handed out stay valid
	}
	start := len(arena)
	arena = hex.AppendEncode(arena, []byte(d.s[d.p:d.p+hashLen/2]))
	d.p += hashLen / 2
	return unsafe.String(&arena[start], hashLen), arena
}

// decoder reads fields from a block; the first failure sticks in err and
// every later read returns zero values.
type decoder struct {
	s   string
	p   int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.p = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := uvarintString(d.s[d.p:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.p += n
	return v
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) str() string {
	from, to := d.span()
	return d.s[from:to]
}

// span reads a length-prefixed field and returns where its bytes are.
func (d *decoder) span() (from, to int) {
	n := d.uvarint()
	if d.err != nil {
		return d.p, d.p
	}
	if n > uint64(len(d.s)-d.p) {
		d.fail("field runs past the end")
		return d.p, d.p
	}
	from = d.p
	d.p += int(n)
	return from, d.p
}

// uvarintString is binary.Uvarint on a string (no copy).
func uvarintString(s string) (uint64, int) {
	var x uint64
	var sh uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1)
			}
			return x | uint64(c)<<sh, i + 1
		}
		x |= uint64(c&0x7f) << sh
		sh += 7
	}
	return 0, 0
}

// Runs calls fn for each maximal run of consecutive seqs in evs (sorted
// by seq), so that a gap — in a damaged log being moved into blocks — starts
// a new block and verify still sees it where it is.
func Runs(evs []airlock.Event, fn func(run []airlock.Event) error) error {
	for start := 0; start < len(evs); {
		end := start + 1
		for end < len(evs) && evs[end].Seq == evs[end-1].Seq+1 {
			end++
		}
		if err := fn(evs[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// Summary is what a store keeps beside a block to find it without
// decoding it.
type Summary struct {
	FirstSeq, LastSeq int64
	// MinTime and MaxTime bound the events' times, in unix µs.
	MinTime, MaxTime int64
	// Keys are "s:"+session id and "g:"+grant id of the block's events,
	// each once.
	Keys []string
}

// SessionKey and GrantKey are the Summary keys of a session and a grant.
func SessionKey(id string) string { return "s:" + id }

// GrantKey: see SessionKey.
func GrantKey(id string) string { return "g:" + id }

// Summarize returns the summary of a non-empty block of events, reusing
// keys' storage.
func Summarize(evs []airlock.Event, keys []string) Summary {
	s := Summary{FirstSeq: evs[0].Seq, LastSeq: evs[len(evs)-1].Seq, MinTime: evs[0].Time.UnixMicro(), MaxTime: evs[0].Time.UnixMicro(), Keys: keys[:0]}
	for i := range evs {
		t := evs[i].Time.UnixMicro()
		s.MinTime, s.MaxTime = min(s.MinTime, t), max(s.MaxTime, t)
		s.Keys = addKey(addKey(s.Keys, "s:", evs[i].SessionID), "g:", evs[i].GrantID)
	}
	return s
}

// addKey adds prefix+id to keys unless id is empty or it is already there
// (a block has few distinct sessions and grants).
func addKey(keys []string, prefix, id string) []string {
	if id == "" {
		return keys
	}
	for _, k := range keys {
		if len(k) == len(prefix)+len(id) && k[:len(prefix)] == prefix && k[len(prefix):] == id {
			return keys
		}
	}
	return append(keys, prefix+id)
}

// Match reports whether e passes every condition of f. Stores select
// candidate blocks by seq, time and keys, then filter their events with it.
func Match(e *airlock.Event, f *airlock.EventFilter) bool {
	switch {
	case f.AfterSeq > 0 && e.Seq <= f.AfterSeq,
		!f.Since.IsZero() && e.Time.UnixMicro() < f.Since.UnixMicro(),
		!f.Until.IsZero() && e.Time.UnixMicro() >= f.Until.UnixMicro(),
		f.ActorName != "" && e.Actor.Name != f.ActorName,
		f.Resource != "" && e.Resource != f.Resource,
		f.SessionID != "" && e.SessionID != f.SessionID,
		f.GrantID != "" && e.GrantID != f.GrantID:
		return false
	}
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		return strings.HasPrefix(e.Action, prefix)
	}
	return f.Action == "" || e.Action == f.Action
}

// Filter appends to out the events of blk that match f, newest first when
// f.Desc, stopping once out holds f.Limit events (when positive). It
// reports whether the limit was reached.
func Filter(out, blk []airlock.Event, f *airlock.EventFilter) ([]airlock.Event, bool) {
	for i := range blk {
		e := &blk[i]
		if f.Desc {
			e = &blk[len(blk)-1-i]
		}
		if Match(e, f) {
			out = append(out, *e)
			if f.Limit > 0 && len(out) >= f.Limit {
				return out, true
			}
		}
	}
	return out, false
}

// DecodeStored decodes the block a store keeps under firstSeq, appending
// its events to dst; a block that does not decode is reported as an
// *airlock.CorruptEventsError (dst is then returned unchanged).
func DecodeStored(dst []airlock.Event, firstSeq int64, data []byte) ([]airlock.Event, error) {
	out, err := Decode(dst, data)
	if err != nil {
		return dst, &airlock.CorruptEventsError{After: firstSeq - 1, Err: err}
	}
	return out, nil
}

// Deliver is the end of one page of a store's ScanEvents: it calls fn for
// each event of page with Seq > afterSeq, then returns readErr. A
// CorruptEventsError as readErr still lets the events decoded before the
// damaged block through, so a verifier sees exactly where the damage
// starts; any other readErr delivers nothing.
func Deliver(page []airlock.Event, afterSeq int64, readErr error, fn func(airlock.Event) error) error {
	var corrupt *airlock.CorruptEventsError
	if readErr != nil && !errors.As(readErr, &corrupt) {
		return readErr
	}
	for i := range page {
		if page[i].Seq <= afterSeq {
			continue
		}
		if err := fn(page[i]); err != nil {
			return err
		}
	}
	return readErr
}
