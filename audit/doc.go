// Package audit is Airlock's tamper-evident audit log: a hash chain of
// events appended by group commit, signed checkpoints of its head, a
// streaming JSON Lines export, and verification online (against the store)
// and offline (against an export file). docs/audit.md is the reference for
// auditors; this comment is the same contract in brief.
//
// # Hash chain
//
// Every event carries PrevHash (the Hash of the event before it; "" for
// seq 1, the genesis) and Hash = lower-case hex SHA-256 of the canonical
// encoding of every other field. The canonical encoding is the
// concatenation of these fields in this order, each as a 4-byte big-endian
// length followed by its bytes:
//
//	"airlock-audit-event-v1", seq (decimal ASCII),
//	time (UTC, truncated to microseconds, RFC 3339 with fractional seconds,
//	      trailing zeros dropped: time.RFC3339Nano),
//	actor.id, actor.name, action, resource, request_id, grant_id,
//	session_id, source_addr, outcome,
//	details (the stored JSON bytes, verbatim; empty when absent), prev_hash
//
// Length prefixes make the encoding unambiguous ("ab"+"c" ≠ "a"+"bc").
// Details are hashed as raw bytes, so Append stores them compacted (no
// insignificant whitespace) and exports carry them byte for byte; stores
// keep them as text exactly as given.
//
// # Appending
//
// Open starts one writer goroutine. Submit validates an event (dotted
// lower-case Action, Outcome success/failure/denied, Details empty or a JSON
// object), stamps it with the server clock, and queues it; Append is Submit
// plus Wait. The writer takes everything queued (up to MaxBatch) and calls
// AppendEvents once: seq, prev_hash and hash are computed inside the
// store's write lock from the head it hands over, so several processes on
// one PostgreSQL form one chain. If the write fails every event in the batch
// fails and Healthy reports the error until a later write succeeds; callers
// must refuse their action (fail closed).
//
// # Checkpoints
//
// Every CheckpointEvery events, after CheckpointInterval with new events,
// and on Close, the Log signs (ed25519) the head it last wrote and the
// root of the log's Merkle tree of the same events (version 2):
//
//	"airlock-checkpoint-v2\n" + seq + "\n" + hash + "\n" + root + "\n" + time (RFC3339Nano, UTC, µs)
//
// Version 1 checkpoints (no root; "airlock-checkpoint-v1\n" + seq + "\n" +
// hash + "\n" + time), written before the tree, still verify. A checkpoint
// makes truncation detectable: a log that ends before a checkpoint's seq
// has lost its tail. Witnesses (witness.go) keep copies outside the store.
//
// # Merkle tree and proofs
//
// The log is also an RFC 9162 Merkle tree (leaf i: event i+1, leaf data
// its hash), kept by the stores as tiles (internal/tlog). Prove and
// ProveConsistency build inclusion and consistency proofs from the tiles;
// VerifyProof checks them with only the public key.
//
// # Export and verification
//
// Export writes JSON Lines ordered by seq: {"type":"event", …event
// fields…} per event and {"type":"checkpoint", seq, hash, time, key_id,
// signature, root} directly after the event it names. Verify (online) and
// VerifyExport (offline) run the same state machine and report the first
// problem as one of modified, missing, reordered, inserted, truncated or
// bad-checkpoint with the lowest affected seq. A partial export (made with
// --since) verifies from its first event, whose prev_hash is trusted.
//
// The chain, the canonical encoding and the verifier are written by hand
// on crypto/sha256 and crypto/ed25519; the tree's proof shapes and their
// verification come from github.com/transparency-dev/merkle.
package audit
