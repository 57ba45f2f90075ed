// Package eventblock is the storage encoding of audit events: a run of
// consecutive events from one group commit is stored as one block, a
// single blob. Both stores write one row per block instead of one row per
// event, which makes a durable append cost a few hundred bytes of encoding
// rather than a dozen bound columns and an index update per event.
//
// The encoding is not what the chain hashes (that is the audit package's
// canonical encoding); it only has to give back every field exactly.
// Decode treats its input as untrusted: a block edited by someone with
// database access either decodes to the edited events (which the hash
// chain then rejects) or fails with ErrCorrupt.
//
// DecodeFilter is the read of a few events: it steps over the events
// before the first one wanted without copying their values, matches the
// rest in place and stops at the limit, so reading one event of a full
// block costs a scan of the events before it rather than a decode of the
// whole block. It checks what it reads as Decode does; damage after the
// events a read needs is left for the reads (and verify) that go past it.
//
// Block layout (integers are Go's encoding/binary varints):
//
//	block = "alb1" uvarint(count) event*count
//	event = uvarint(flags) varint(seq − previous seq) [varint(µs − previous µs)]
//	        str(field)… for each of actor id, actor name, action, resource,
//	                    request id, grant id, session id, source addr,
//	                    outcome whose "same as the previous event" flag is clear
//	        [str(details)] prev-hash hash
//	str   = uvarint(len) bytes
//
// Flags: bit 0 time set, bit 1 details present, bits 2–10 the nine string
// fields repeat the previous event's, bit 11 prev hash is the previous
// event's hash (omitted), bit 12 hash and bit 13 prev hash are stored as
// 32 raw bytes (they were 64 lower-case hex digits); otherwise a hash is
// a str. The first event's "previous" is the zero event (seq 0, time 0,
// empty strings). A gateway session's db.query events thus cost their
// details plus about 40 bytes each.
package eventblock
