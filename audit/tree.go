package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// The log's Merkle tree (RFC 9162, as in Certificate Transparency): leaf i
// is event i+1, and the leaf data is the event's chain hash (Event.Hash,
// its 64 hex digits as ASCII), so a leaf commits to the whole event
// through the canonical encoding. The stores keep the tree as tiles
// (internal/tlog); version 2 checkpoints sign its root.

// Proof types (Proof.Type).
const (
	ProofInclusion   = "airlock-inclusion-proof-v1"
	ProofConsistency = "airlock-consistency-proof-v1"
)

// MaxProofSize bounds a proof file ParseProof reads: an event's details
// are at most MaxDetailsLen (1 MiB) and may grow sixfold when escaped in a
// JSON string; a checkpoint and 64 hashes are small.
const MaxProofSize = 8 << 20

// maxProofHashes bounds a proof's hashes: a tree of 2^63 leaves needs 63.
const maxProofHashes = 64

// Proof is an inclusion or a consistency proof with everything needed to
// check it offline with only the checkpoint public key (VerifyProof).
type Proof struct {
	Type string `json:"type"`
	// Inclusion: Event is leaf Event.Seq-1 of the tree of Checkpoint.Seq
	// events whose root Checkpoint signs.
	Event      *ProofEvent         `json:"event,omitempty"`
	Checkpoint *airlock.Checkpoint `json:"checkpoint,omitempty"`
	// Consistency: the tree Old signs is a prefix of the tree New signs.
	Old *airlock.Checkpoint `json:"old,omitempty"`
	New *airlock.Checkpoint `json:"new,omitempty"`
	// Hashes are the proof's node hashes (hex), in RFC 9162 order.
	Hashes []string `json:"hashes"`
}

// ProofEvent is an audit event in a proof: airlock.Event with its details
// as a JSON string holding the exact bytes the event's hash covers, so the
// proof survives any re-encoding of its JSON (indentation, escaping).
type ProofEvent struct {
	Seq        int64         `json:"seq"`
	Time       time.Time     `json:"time"`
	Actor      airlock.Actor `json:"actor"`
	Action     string        `json:"action"`
	Resource   string        `json:"resource,omitempty"`
	RequestID  string        `json:"request_id,omitempty"`
	GrantID    string        `json:"grant_id,omitempty"`
	SessionID  string        `json:"session_id,omitempty"`
	SourceAddr string        `json:"source_addr,omitempty"`
	Outcome    string        `json:"outcome"`
	Details    string        `json:"details,omitempty"`
	PrevHash   string        `json:"prev_hash"`
	Hash       string        `json:"hash"`
}

// NewProofEvent returns e as a ProofEvent.
func NewProofEvent(e airlock.Event) *ProofEvent {
	return &ProofEvent{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Resource: e.Resource, RequestID: e.RequestID,
		GrantID: e.GrantID, SessionID: e.SessionID, SourceAddr: e.SourceAddr, Outcome: e.Outcome, Details: string(e.Details),
		PrevHash: e.PrevHash, Hash: e.Hash}
}

// AuditEvent returns the event p carries.
func (p *ProofEvent) AuditEvent() airlock.Event {
	e := airlock.Event{Seq: p.Seq, Time: p.Time, Actor: p.Actor, Action: p.Action, Resource: p.Resource, RequestID: p.RequestID,
		GrantID: p.GrantID, SessionID: p.SessionID, SourceAddr: p.SourceAddr, Outcome: p.Outcome, PrevHash: p.PrevHash, Hash: p.Hash}
	if p.Details != "" {
		e.Details = json.RawMessage(p.Details)
	}
	return e
}

// TreeReader reads the log's Merkle tree from store's tiles. Use one per
// request: it caches the tiles it reads.
func TreeReader(ctx context.Context, store airlock.AuditStore) *tlog.Reader {
	return tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return store.MerkleTile(ctx, id.Level, id.Index) })
}

// InclusionHashes returns the inclusion proof of leaf index in the tree
// of size leaves, from r's tiles.
func InclusionHashes(r *tlog.Reader, index, size uint64) ([][]byte, error) {
	ns, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hs, err := nodeHashes(r, ns)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hs, tlog.NodeHash)
}

// ConsistencyHashes returns the consistency proof between the trees of
// size1 ≤ size2 leaves, from r's tiles.
func ConsistencyHashes(r *tlog.Reader, size1, size2 uint64) ([][]byte, error) {
	ns, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hs, err := nodeHashes(r, ns)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hs, tlog.NodeHash)
}

func nodeHashes(r *tlog.Reader, ns proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(ns.IDs))
	for i, id := range ns.IDs {
		h, err := r.Node(id.Level, id.Index)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return hs, nil
}

func hexHashes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// Prove returns the inclusion proof of event seq against the latest
// version 2 checkpoint. ENOTFOUND when there is no such event or no
// checkpoint covers it yet.
func Prove(ctx context.Context, store airlock.AuditStore, seq int64) (*Proof, error) {
	if seq < 1 {
		return nil, airlock.Errorf(airlock.EINVALID, "seq must be 1 or more")
	}
	cp, err := store.TreeCheckpoint(ctx, 0)
	if airlock.ErrorCode(err) == airlock.ENOTFOUND {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no signed tree head yet: the log writes one every %d events or %s by default; retry after the next", defaultCheckpointEvery, defaultCheckpointInterval)
	}
	if err != nil {
		return nil, err
	}
	if cp.Seq < seq {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "seq %d is after the latest signed tree head (size %d); retry after the next checkpoint", seq, cp.Seq)
	}
	return ProveAt(ctx, store, seq, cp)
}

// ProveAt returns the inclusion proof of event seq in the tree cp signs.
func ProveAt(ctx context.Context, store airlock.AuditStore, seq int64, cp airlock.Checkpoint) (*Proof, error) {
	evs, err := store.ListEvents(ctx, airlock.EventFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Seq != seq {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no event with seq %d", seq)
	}
	hs, err := InclusionHashes(TreeReader(ctx, store), uint64(seq-1), uint64(cp.Seq))
	if err != nil {
		return nil, airlock.WrapError(airlock.EINTERNAL, "the stored Merkle tree cannot prove this event", err)
	}
	return &Proof{Type: ProofInclusion, Event: NewProofEvent(evs[0]), Checkpoint: &cp, Hashes: hexHashes(hs)}, nil
}

// ProveConsistency returns the consistency proof between the version 2
// checkpoints at sizes old and new (old ≤ new). ENOTFOUND when either size
// has no such checkpoint.
func ProveConsistency(ctx context.Context, store airlock.AuditStore, old, new int64) (*Proof, error) {
	if old < 1 || new < old {
		return nil, airlock.Errorf(airlock.EINVALID, "want 1 ≤ OLD ≤ NEW, got %d and %d", old, new)
	}
	var cs [2]airlock.Checkpoint
	for i, size := range []int64{old, new} {
		c, err := store.TreeCheckpoint(ctx, size)
		if airlock.ErrorCode(err) == airlock.ENOTFOUND {
			return nil, airlock.Errorf(airlock.ENOTFOUND, "no signed tree head at size %d: both sizes must be checkpoints (airlock audit export lists them)", size)
		}
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	co, cn := &cs[0], &cs[1]
	hs, err := ConsistencyHashes(TreeReader(ctx, store), uint64(old), uint64(new))
	if err != nil {
		return nil, airlock.WrapError(airlock.EINTERNAL, "the stored Merkle tree cannot prove consistency", err)
	}
	return &Proof{Type: ProofConsistency, Old: co, New: cn, Hashes: hexHashes(hs)}, nil
}

// ParseProof decodes a proof file (JSON, at most MaxProofSize bytes, no
// unknown fields) and checks its shape; VerifyProof checks what it proves.
func ParseProof(r io.Reader) (*Proof, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxProofSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxProofSize {
		return nil, airlock.Errorf(airlock.ETOOLARGE, "proof is larger than %d bytes", MaxProofSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Proof
	if err := dec.Decode(&p); err != nil {
		return nil, airlock.Errorf(airlock.EINVALID, "proof is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, airlock.Errorf(airlock.EINVALID, "proof has data after its JSON object")
	}
	if len(p.Hashes) > maxProofHashes {
		return nil, airlock.Errorf(airlock.EINVALID, "proof has %d hashes; at most %d", len(p.Hashes), maxProofHashes)
	}
	for i, h := range p.Hashes {
		if !isHexHash(h) {
			return nil, airlock.Errorf(airlock.EINVALID, "proof hash %d is not 64 lower-case hex digits", i)
		}
	}
	switch p.Type {
	case ProofInclusion:
		if p.Event == nil || p.Checkpoint == nil || p.Old != nil || p.New != nil {
			return nil, airlock.Errorf(airlock.EINVALID, "an inclusion proof has an event and a checkpoint only")
		}
	case ProofConsistency:
		if p.Old == nil || p.New == nil || p.Event != nil || p.Checkpoint != nil {
			return nil, airlock.Errorf(airlock.EINVALID, "a consistency proof has an old and a new checkpoint only")
		}
	default:
		return nil, airlock.Errorf(airlock.EINVALID, "proof type %q is not %s or %s", p.Type, ProofInclusion, ProofConsistency)
	}
	return &p, nil
}

// verifiedRoot checks that c is a version 2 checkpoint signed by pub and
// returns its root.
func verifiedRoot(pub ed25519.PublicKey, c *airlock.Checkpoint, what string) ([]byte, error) {
	if c.Root == "" {
		return nil, fmt.Errorf("%s checkpoint (seq %d) is chain-only (version 1): it signs no tree root", what, c.Seq)
	}
	if !VerifyCheckpoint(pub, *c) {
		return nil, fmt.Errorf("%s checkpoint (seq %d) is not signed by this key", what, c.Seq)
	}
	root, _ := hex.DecodeString(c.Root) // VerifyCheckpoint checked the form
	return root, nil
}

func decodeHashes(hs []string) ([][]byte, error) {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		if !isHexHash(h) {
			return nil, fmt.Errorf("proof hash %d is not 64 lower-case hex digits", i)
		}
		out[i], _ = hex.DecodeString(h)
	}
	return out, nil
}

// VerifyProof checks p with only the checkpoint public key: the
// checkpoints' signatures, the event's hash against its content, and the
// proof's hashes against the signed roots. It returns one line saying
// what was proved.
func VerifyProof(pub ed25519.PublicKey, p *Proof) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", airlock.Errorf(airlock.EINVALID, "an ed25519 public key is required")
	}
	hs, err := decodeHashes(p.Hashes)
	if err != nil {
		return "", err
	}
	switch p.Type {
	case ProofInclusion:
		if p.Event == nil || p.Checkpoint == nil {
			return "", fmt.Errorf("an inclusion proof needs an event and a checkpoint")
		}
		root, err := verifiedRoot(pub, p.Checkpoint, "the")
		if err != nil {
			return "", err
		}
		e := p.Event.AuditEvent()
		if Hash(e) != e.Hash {
			return "", fmt.Errorf("event %d: its hash does not match its content", e.Seq)
		}
		if e.Seq < 1 || e.Seq > p.Checkpoint.Seq {
			return "", fmt.Errorf("event %d is not in a tree of %d events", e.Seq, p.Checkpoint.Seq)
		}
		leaf := tlog.EventLeaf(e.Hash)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Seq-1), uint64(p.Checkpoint.Seq), leaf[:], hs, root); err != nil {
			return "", fmt.Errorf("event %d is not proved in the tree of %d events: %v", e.Seq, p.Checkpoint.Seq, err)
		}
		return fmt.Sprintf("OK: event %d (%s) is in the log of %d events signed at %s by key %s",
			e.Seq, e.Action, p.Checkpoint.Seq, p.Checkpoint.Time.UTC().Format("2006-01-02T15:04:05Z"), p.Checkpoint.KeyID), nil
	case ProofConsistency:
		if p.Old == nil || p.New == nil {
			return "", fmt.Errorf("a consistency proof needs an old and a new checkpoint")
		}
		r1, err := verifiedRoot(pub, p.Old, "the old")
		if err != nil {
			return "", err
		}
		r2, err := verifiedRoot(pub, p.New, "the new")
		if err != nil {
			return "", err
		}
		if p.Old.Seq < 1 || p.New.Seq < p.Old.Seq {
			return "", fmt.Errorf("sizes %d and %d: want 1 ≤ old ≤ new", p.Old.Seq, p.New.Seq)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(p.Old.Seq), uint64(p.New.Seq), hs, r1, r2); err != nil {
			return "", fmt.Errorf("the log of %d events is not proved a prefix of the log of %d: %v", p.Old.Seq, p.New.Seq, err)
		}
		return fmt.Sprintf("OK: the log of %d events (signed %s) is a prefix of the log of %d events (signed %s): nothing was removed or changed in between",
			p.Old.Seq, p.Old.Time.UTC().Format("2006-01-02T15:04:05Z"), p.New.Seq, p.New.Time.UTC().Format("2006-01-02T15:04:05Z")), nil
	}
	return "", fmt.Errorf("proof type %q is not %s or %s", p.Type, ProofInclusion, ProofConsistency)
}
