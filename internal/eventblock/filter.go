package eventblock

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unsafe"

	"github.com/airlockhq/airlock"
)

// field is where one stored value of an event is in a block: bytes
// [from, to) of it, 32 raw bytes to be shown as hex when raw.
type field struct {
	from, to int
	raw      bool
}

// DecodeFilter appends to out the events of block data that f matches, in
// stored order (f.Desc is not looked at), and stops reading the block as
// soon as out holds f.Limit events (when positive); it reports whether
// that happened. It is Filter(out, Decode(data), f) for the ascending
// case, without decoding what the read does not need: events with Seq <=
// f.AfterSeq are stepped over (their fields are located but not copied),
// the others are matched against f in place, and only the events returned
// get their own copy of their values (one allocation each; data is not
// retained).
//
// Every event it reads is checked as Decode checks it; the bytes after the
// last event are checked only when it reads to the end of the block (a
// block damaged only past the events a read needs is not noticed by that
// read). On error it returns out unchanged and an error wrapping
// ErrCorrupt.
func DecodeFilter(out []airlock.Event, data []byte, f *airlock.EventFilter) ([]airlock.Event, bool, error) {
	n0 := len(out)
	fail := func(err error) ([]airlock.Event, bool, error) {
		clear(out[n0:])
		return out[:n0], false, err
	}
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return fail(fmt.Errorf("%w: no block header", ErrCorrupt))
	}
	// A read-only view of data, valid for this call only: nothing derived
	// from it is kept except through own, which copies.
	d := decoder{s: unsafe.String(unsafe.SliceData(data), len(data)), p: len(magic)}
	count := d.uvarint()
	if d.err != nil || count > uint64(len(data)-d.p)/minEventLen {
		return fail(fmt.Errorf("%w: bad event count", ErrCorrupt))
	}
	var strs [numStrings]field
	var details, prevHash, hash field
	var seq, micro int64
	for i := range count {
		flags := d.uvarint()
		if flags&^flagsKnown != 0 || (flags&flagPrevLinked != 0 && flags&flagPrevRaw != 0) {
			d.fail("unknown flags")
		}
		seq += d.varint()
		if flags&flagTime != 0 {
			micro += d.varint()
		}
		for k := range strs {
			if flags&(flagSame<<k) == 0 {
				strs[k] = d.field(false)
			}
			// else: the previous event's, still in strs[k]. The first
			// event's "previous" is the zero event: empty strings, which
			// the zero field already is.
		}
		details = field{}
		if flags&flagDetails != 0 {
			details = d.field(false)
		}
		switch {
		case flags&flagPrevLinked != 0:
			// The previous event's hash; before the first event, "".
			prevHash = hash
		case flags&flagPrevRaw != 0:
			prevHash = d.field(true)
		default:
			prevHash = d.field(false)
		}
		hash = d.field(flags&flagHashRaw != 0)
		if d.err != nil {
			return fail(fmt.Errorf("%w: event %d: %s", ErrCorrupt, i, d.err))
		}
		if f.AfterSeq > 0 && seq <= f.AfterSeq {
			continue
		}
		// Match in place: the fields Match reads, as views of data.
		var e airlock.Event
		e.Seq = seq
		if flags&flagTime != 0 {
			e.Time = time.UnixMicro(micro).UTC()
		}
		sf := stringFields(&e)
		for k := range strs {
			*sf[k] = d.s[strs[k].from:strs[k].to]
		}
		if !Match(&e, f) {
			continue
		}
		out = append(out, own(e, d.s, &strs, flags&flagDetails != 0, details, prevHash, hash))
		if f.Limit > 0 && len(out) >= f.Limit {
			return out, true, nil
		}
	}
	if d.p != len(d.s) {
		return fail(fmt.Errorf("%w: %d bytes after the last event", ErrCorrupt, len(d.s)-d.p))
	}
	return out, false, nil
}

// field reads a length-prefixed value, or 32 raw hash bytes when raw.
func (d *decoder) field(raw bool) field {
	if !raw {
		from, to := d.span()
		return field{from: from, to: to}
	}
	if d.err != nil || len(d.s)-d.p < hashLen/2 {
		d.fail("truncated hash")
		return field{from: d.p, to: d.p}
	}
	d.p += hashLen / 2
	return field{from: d.p - hashLen/2, to: d.p, raw: true}
}

// size is how many bytes v takes once expanded.
func (v field) size() int {
	if v.raw {
		return hashLen
	}
	return v.to - v.from
}

// own returns e (its seq and time set) with every value copied out of s
// into one new buffer: the strings are read-only views of it, the details
// a capacity-capped region, as Decode makes them.
func own(e airlock.Event, s string, strs *[numStrings]field, hasDetails bool, details, prevHash, hash field) airlock.Event {
	n := details.size() + prevHash.size() + hash.size()
	for k := range strs {
		n += strs[k].size()
	}
	buf := make([]byte, 0, n)
	put := func(v field) (from, to int) {
		from = len(buf)
		if v.raw {
			buf = hex.AppendEncode(buf, []byte(s[v.from:v.to]))
		} else {
			buf = append(buf, s[v.from:v.to]...)
		}
		return from, len(buf)
	}
	str := func(v field) string {
		from, to := put(v)
		if from == to {
			return ""
		}
		return unsafe.String(&buf[from], to-from)
	}
	sf := stringFields(&e)
	for k := range strs {
		*sf[k] = str(strs[k])
	}
	if hasDetails {
		from, to := put(details)
		e.Details = json.RawMessage(buf[from:to:to])
	}
	e.PrevHash = str(prevHash)
	e.Hash = str(hash)
	return e
}

// FilterStored is DecodeFilter on the block a store keeps under firstSeq;
// a block that does not decode is reported as an
// *airlock.CorruptEventsError (out is then returned unchanged).
func FilterStored(out []airlock.Event, firstSeq int64, data []byte, f *airlock.EventFilter) ([]airlock.Event, bool, error) {
	res, full, err := DecodeFilter(out, data, f)
	if err != nil {
		return out, false, &airlock.CorruptEventsError{After: firstSeq - 1, Err: err}
	}
	return res, full, nil
}
