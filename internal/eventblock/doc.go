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
// Block layout (integers are Go's encoding/binary varints):
//
//	block = "alb1" uvarint(count) event*count
//	event = flags(1 byte: bit0 time set, bit1 details present)
//	        varint(seq) [varint(time in unix µs)]
//	        str(actor id) str(actor name) str(action) str(resource)
//	        str(request id) str(grant id) str(session id) str(source addr)
//	        str(outcome) [str(details)] str(prev hash) str(hash)
//	str   = uvarint(len) bytes
package eventblock
