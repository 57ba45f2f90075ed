package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// The batch forms of Prove and VerifyProof, for evidence packs: many
// events proved against one checkpoint, whose signature is checked once.

// LatestTreeCheckpoint returns the latest version 2 checkpoint (the
// newest signed tree head). EUNAVAILABLE when the log has none yet.
func LatestTreeCheckpoint(ctx context.Context, store airlock.AuditStore) (airlock.Checkpoint, error) {
	cp, err := store.TreeCheckpoint(ctx, 0)
	if airlock.ErrorCode(err) == airlock.ENOTFOUND {
		return airlock.Checkpoint{}, airlock.Errorf(airlock.EUNAVAILABLE, "no signed tree head yet: the log writes one every %d events or %s by default; retry after the next", defaultCheckpointEvery, defaultCheckpointInterval)
	}
	return cp, err
}

// BatchProof proves many events in one signed tree at once: the node
// hashes their inclusion proofs are made of, each once (the proofs of
// nearby events share most of their nodes). A verifier rebuilds each
// event's proof from its index and the tree size (RFC 9162's proof
// shape) and these nodes.
type BatchProof struct {
	Checkpoint airlock.Checkpoint `json:"checkpoint"`
	Nodes      []ProofNode        `json:"nodes"`
}

// ProofNode is one node of the tree: level 0 are leaf hashes.
type ProofNode struct {
	Level uint   `json:"level"`
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

type nodeID struct {
	level uint
	index uint64
}

// ProveEvents returns the batch proof of the events seqs (each ≤ cp.Seq)
// in the tree cp signs.
func ProveEvents(ctx context.Context, store airlock.AuditStore, seqs []int64, cp airlock.Checkpoint) (*BatchProof, error) {
	r := TreeReader(ctx, store)
	seen := map[nodeID]bool{}
	bp := &BatchProof{Checkpoint: cp, Nodes: []ProofNode{}}
	for _, seq := range seqs {
		if seq < 1 || seq > cp.Seq {
			return nil, airlock.Errorf(airlock.EINVALID, "event %d is not in the tree of %d events", seq, cp.Seq)
		}
		ns, err := proof.Inclusion(uint64(seq-1), uint64(cp.Seq))
		if err != nil {
			return nil, err
		}
		for _, id := range ns.IDs {
			k := nodeID{id.Level, id.Index}
			if seen[k] {
				continue
			}
			seen[k] = true
			h, err := r.Node(id.Level, id.Index)
			if err != nil {
				return nil, airlock.WrapError(airlock.EINTERNAL, fmt.Sprintf("the stored Merkle tree cannot prove event %d", seq), err)
			}
			bp.Nodes = append(bp.Nodes, ProofNode{Level: id.Level, Index: id.Index, Hash: hexHashes([][]byte{h})[0]})
		}
	}
	return bp, nil
}

// BatchVerifier checks events against a batch proof whose checkpoint
// signature it has checked once.
type BatchVerifier struct {
	root  []byte
	size  int64
	nodes map[nodeID][]byte
}

// Verifier checks bp's checkpoint with pub and returns the verifier of
// its events.
func (bp *BatchProof) Verifier(pub ed25519.PublicKey) (*BatchVerifier, error) {
	root, err := verifiedRoot(pub, &bp.Checkpoint, "the")
	if err != nil {
		return nil, err
	}
	v := &BatchVerifier{root: root, size: bp.Checkpoint.Seq, nodes: make(map[nodeID][]byte, len(bp.Nodes))}
	for i, n := range bp.Nodes {
		if !isHexHash(n.Hash) {
			return nil, fmt.Errorf("proof node %d is not 64 lower-case hex digits", i)
		}
		k := nodeID{n.Level, n.Index}
		if _, dup := v.nodes[k]; dup {
			return nil, fmt.Errorf("proof node %d/%d given twice", n.Level, n.Index)
		}
		v.nodes[k], _ = hex.DecodeString(n.Hash)
	}
	return v, nil
}

// Verify checks that e (whose hash the caller has checked against its
// content) is leaf e.Seq-1 of the signed tree.
func (v *BatchVerifier) Verify(e airlock.Event) error {
	if e.Seq < 1 || e.Seq > v.size {
		return fmt.Errorf("event %d is not in a tree of %d events", e.Seq, v.size)
	}
	ns, err := proof.Inclusion(uint64(e.Seq-1), uint64(v.size))
	if err != nil {
		return err
	}
	hs := make([][]byte, len(ns.IDs))
	for i, id := range ns.IDs {
		h, ok := v.nodes[nodeID{id.Level, id.Index}]
		if !ok {
			return fmt.Errorf("event %d has no inclusion proof: node %d/%d is missing", e.Seq, id.Level, id.Index)
		}
		hs[i] = h
	}
	if hs, err = ns.Rehash(hs, tlog.NodeHash); err != nil {
		return err
	}
	leaf := tlog.EventLeaf(e.Hash)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Seq-1), uint64(v.size), leaf[:], hs, v.root); err != nil {
		return fmt.Errorf("event %d is not proved in the tree of %d events: %v", e.Seq, v.size, err)
	}
	return nil
}
