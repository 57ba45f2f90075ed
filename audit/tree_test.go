package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
	"github.com/airlockhq/airlock/internal/tlog/tlogtest"
)

// Known inclusion and consistency proofs over the RFC 6962 / RFC 9162
// test vectors' leaves (tlogtest.Leaves; their roots tlogtest.Roots).
var (
	vectorInclusion = []struct {
		index, size uint64
		proof       []string
	}{
		{0, 1, nil},
		{0, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
		{5, 8, []string{"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
		{2, 3, []string{"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
		{1, 5, []string{"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
	}
	vectorConsistency = []struct {
		size1, size2 uint64
		proof        []string
	}{
		{1, 1, nil},
		{1, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
		{6, 8, []string{"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
		{2, 5, []string{"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
		{6, 7, []string{"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	}
)

func TestProofRFCVectors(t *testing.T) {
	tiles := map[tlog.TileID][]byte{}
	for i, l := range tlogtest.Leaves {
		d, _ := hex.DecodeString(l)
		ts, err := tlog.Append(int64(i), [][tlog.HashSize]byte{tlog.LeafHash(d)}, func(id tlog.TileID) ([]byte, error) { return tiles[id], nil })
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range ts {
			tiles[tl.TileID] = append(tiles[tl.TileID][:tl.Start*tlog.HashSize:tl.Start*tlog.HashSize], tl.Hashes...)
		}
	}
	r := func() *tlog.Reader {
		return tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return tiles[id], nil })
	}
	for size, want := range tlogtest.Roots {
		if got, err := r().Root(uint64(size)); err != nil || hex.EncodeToString(got) != want {
			t.Errorf("root of %d = %x, %v; want %s", size, got, err, want)
		}
	}
	for _, v := range vectorInclusion {
		p, err := InclusionHashes(r(), v.index, v.size)
		if err != nil || strings.Join(hexHashes(p), ",") != strings.Join(v.proof, ",") {
			t.Errorf("inclusion(%d, %d) = %v, %v; want %v", v.index, v.size, hexHashes(p), err, v.proof)
		}
	}
	for _, v := range vectorConsistency {
		p, err := ConsistencyHashes(r(), v.size1, v.size2)
		if err != nil || strings.Join(hexHashes(p), ",") != strings.Join(v.proof, ",") {
			t.Errorf("consistency(%d, %d) = %v, %v; want %v", v.size1, v.size2, hexHashes(p), err, v.proof)
		}
	}
}

// treeLog is a memory store with 2,345 events, a version 2 checkpoint
// every 500 and one at the end.
func treeLog(t *testing.T) *memStore {
	store := &memStore{}
	fillLog(t, store, 2345, 500)
	return store
}

// roundTrip encodes p as the API does (indented, HTML escaped) and parses
// it back.
func roundTrip(t *testing.T, p *Proof) *Proof {
	t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseProof(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ParseProof(%s): %v", b, err)
	}
	return q
}

func TestCheckpointsSignTreeRoots(t *testing.T) {
	store := treeLog(t)
	cps, _ := store.ListCheckpoints(context.Background())
	if len(cps) != 5 || cps[4].Seq != 2345 {
		t.Fatalf("%d checkpoints, want 5 (after about 500, 1000, 1500, 2000 and 2345 at close)", len(cps))
	}
	r := TreeReader(context.Background(), store)
	for _, c := range cps {
		root, err := r.Root(uint64(c.Seq))
		if err != nil || c.Root != hex.EncodeToString(root) || !VerifyCheckpoint(testPub(), c) {
			t.Fatalf("checkpoint %d: root %s, tree %x (%v), signature ok %v", c.Seq, c.Root, root, err, VerifyCheckpoint(testPub(), c))
		}
		// The root is signed: changed or removed, the signature fails.
		for _, forged := range []string{"", strings.Repeat("0", 64)} {
			f := c
			f.Root = forged
			if VerifyCheckpoint(testPub(), f) {
				t.Fatalf("checkpoint %d verifies with root %q", c.Seq, forged)
			}
		}
	}
	if rep, err := Verify(context.Background(), store, testPub()); err != nil || !rep.OK || rep.Checkpoints != 5 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestChainOnlyCheckpointsStillVerify: a store written before the tree
// holds version 1 checkpoints; they verify beside version 2 ones.
func TestChainOnlyCheckpointsStillVerify(t *testing.T) {
	store := &memStore{}
	fillLog(t, store, 300, 1000) // one checkpoint, at 300 (close)
	evs := store.events
	v1 := SignCheckpoint(testKey, KeyID(testPub()), 100, evs[99].Hash, time.Now())
	store.cps = append([]airlock.Checkpoint{v1}, store.cps...)
	if !VerifyCheckpoint(testPub(), v1) || v1.Root != "" {
		t.Fatal("version 1 checkpoint does not verify")
	}
	if rep, err := Verify(context.Background(), store, testPub()); err != nil || !rep.OK || rep.Checkpoints != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if rep, err := VerifyExport(bytes.NewReader(exportBytes(t, store, airlock.EventFilter{})), testPub()); err != nil || !rep.OK || rep.Checkpoints != 2 {
		t.Fatalf("VerifyExport = %+v, %v", rep, err)
	}
	// A proof needs a version 2 checkpoint.
	if _, err := VerifyProof(testPub(), &Proof{Type: ProofInclusion, Event: NewProofEvent(evs[0]), Checkpoint: &v1}); err == nil || !strings.Contains(err.Error(), "chain-only") {
		t.Fatalf("proof against a version 1 checkpoint: %v", err)
	}
}

// TestVerifyCatchesWrongRoot: a checkpoint signed with the right key over
// a root the events do not give (a tree rebuilt over other events) fails
// verification though its chain hash matches.
func TestVerifyCatchesWrongRoot(t *testing.T) {
	store := treeLog(t)
	c := store.cps[1]
	store.cps[1] = SignTreeCheckpoint(testKey, c.KeyID, c.Seq, c.Hash, strings.Repeat("ab", 32), c.Time)
	rep, err := Verify(context.Background(), store, testPub())
	if err != nil || rep.OK || rep.Problem != ProblemModified || !strings.Contains(rep.Message, "Merkle root") {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	rep, err = VerifyExport(bytes.NewReader(exportBytes(t, store, airlock.EventFilter{})), testPub())
	if err != nil || rep.OK || !strings.Contains(rep.Message, "Merkle root") {
		t.Fatalf("VerifyExport = %+v, %v", rep, err)
	}
}

func TestInclusionProof(t *testing.T) {
	store := treeLog(t)
	ctx := context.Background()
	for _, seq := range []int64{1, 2, 255, 256, 257, 1000, 2344, 2345} {
		p, err := Prove(ctx, store, seq)
		if err != nil {
			t.Fatalf("Prove(%d): %v", seq, err)
		}
		if p.Checkpoint.Seq != 2345 {
			t.Fatalf("Prove(%d) against checkpoint %d, want the latest (2345)", seq, p.Checkpoint.Seq)
		}
		msg, err := VerifyProof(testPub(), roundTrip(t, p))
		if err != nil || !strings.HasPrefix(msg, "OK: event ") {
			t.Fatalf("VerifyProof(%d) = %q, %v", seq, msg, err)
		}
	}
	for _, seq := range []int64{0, 2346} {
		if _, err := Prove(ctx, store, seq); err == nil {
			t.Errorf("Prove(%d) succeeded", seq)
		}
	}
	p, _ := Prove(ctx, store, 700)
	forgeries := map[string]func(p *Proof){
		"hash flipped":   func(p *Proof) { p.Hashes[0] = strings.Repeat("0", 64) },
		"hash dropped":   func(p *Proof) { p.Hashes = p.Hashes[1:] },
		"hash added":     func(p *Proof) { p.Hashes = append(p.Hashes, strings.Repeat("1", 64)) },
		"event edited":   func(p *Proof) { p.Event.Resource = "other-db" },
		"event rehashed": func(p *Proof) { p.Event.Resource = "other-db"; p.Event.Hash = Hash(p.Event.AuditEvent()) },
		"details edited": func(p *Proof) { p.Event.Details = strings.Replace(p.Event.Details, "select", "delete", 1) },
		"event swapped":  func(p *Proof) { p.Event = NewProofEvent(store.events[700]) },
		"seq moved":      func(p *Proof) { p.Event.Seq = 701 },
		"root replaced":  func(p *Proof) { p.Checkpoint.Root = strings.Repeat("ab", 32) },
		"size changed":   func(p *Proof) { p.Checkpoint.Seq = 2000 },
		"other key": func(p *Proof) {
			*p.Checkpoint = SignTreeCheckpoint(ed25519Other(), "k", 2345, p.Checkpoint.Hash, p.Checkpoint.Root, p.Checkpoint.Time)
		},
		"event past the tree": func(p *Proof) { p.Event = NewProofEvent(store.events[2344]); p.Checkpoint = &store.cps[0] },
	}
	for name, forge := range forgeries {
		q := roundTrip(t, p)
		forge(q)
		if msg, err := VerifyProof(testPub(), q); err == nil {
			t.Errorf("%s: forged proof verified: %s", name, msg)
		}
	}
}

func TestConsistencyProof(t *testing.T) {
	store := treeLog(t)
	ctx := context.Background()
	c := store.cps // at about 500, 1000, 1500, 2000 (after the batch that passes each) and 2345
	for _, sizes := range [][2]int64{{c[0].Seq, c[4].Seq}, {c[1].Seq, c[2].Seq}, {c[0].Seq, c[0].Seq}, {c[2].Seq, c[3].Seq}} {
		p, err := ProveConsistency(ctx, store, sizes[0], sizes[1])
		if err != nil {
			t.Fatalf("ProveConsistency(%v): %v", sizes, err)
		}
		if msg, err := VerifyProof(testPub(), roundTrip(t, p)); err != nil || !strings.HasPrefix(msg, "OK: the log of") {
			t.Fatalf("VerifyProof(%v) = %q, %v", sizes, msg, err)
		}
	}
	for _, sizes := range [][2]int64{{c[0].Seq - 1, 2345}, {c[0].Seq, 2344}, {c[3].Seq, c[1].Seq}, {0, c[0].Seq}} {
		if _, err := ProveConsistency(ctx, store, sizes[0], sizes[1]); err == nil {
			t.Errorf("ProveConsistency(%v) succeeded without checkpoints at both sizes", sizes)
		}
	}
	p, _ := ProveConsistency(ctx, store, c[1].Seq, 2345)
	for name, forge := range map[string]func(p *Proof){
		"hash flipped": func(p *Proof) { p.Hashes[len(p.Hashes)-1] = strings.Repeat("0", 64) },
		"hash dropped": func(p *Proof) { p.Hashes = p.Hashes[:len(p.Hashes)-1] },
		"old swapped":  func(p *Proof) { p.Old = &store.cps[0] },
		"new root":     func(p *Proof) { p.New.Root = strings.Repeat("ab", 32) },
		// A rewritten history signed with the key is still caught: its
		// root is not an extension of the old one.
		"rewritten": func(p *Proof) {
			*p.New = SignTreeCheckpoint(testKey, p.New.KeyID, p.New.Seq, p.New.Hash, strings.Repeat("cd", 32), p.New.Time)
		},
		"reversed": func(p *Proof) { p.Old, p.New = p.New, p.Old },
	} {
		q := roundTrip(t, p)
		forge(q)
		if msg, err := VerifyProof(testPub(), q); err == nil {
			t.Errorf("%s: forged proof verified: %s", name, msg)
		}
	}
}

func TestParseProofRefuses(t *testing.T) {
	store := treeLog(t)
	p, _ := Prove(context.Background(), store, 5)
	good, _ := json.Marshal(p)
	for name, in := range map[string]string{
		"empty":          "",
		"not json":       "proof",
		"array":          "[]",
		"unknown member": strings.Replace(string(good), `"type"`, `"extra":1,"type"`, 1),
		"trailing":       string(good) + "{}",
		"bad type":       strings.Replace(string(good), ProofInclusion, "x", 1),
		"bad hash":       strings.Replace(string(good), `"hashes":["`, `"hashes":["zz`, 1),
		"both kinds":     strings.Replace(string(good), `"hashes"`, `"old":{},"hashes"`, 1),
		"too large":      `{"type":"` + strings.Repeat("a", MaxProofSize) + `"}`,
	} {
		if _, err := ParseProof(strings.NewReader(in)); err == nil {
			t.Errorf("%s: ParseProof accepted it", name)
		}
	}
	if _, err := ParseProof(bytes.NewReader(good)); err != nil {
		t.Fatalf("good proof: %v", err)
	}
}

// FuzzParseProof: ParseProof and VerifyProof never panic, and nothing
// that verifies differs from a proof the log made.
func FuzzParseProof(f *testing.F) {
	// A deterministic log: the fuzzing workers build the same one.
	store := &memStore{}
	l := openLog(f, store, Options{CheckpointEvery: 10, MaxBatch: 5, Now: newStepClock().Now})
	for i := range 40 {
		if _, err := l.Append(context.Background(), sampleEvent(i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, seq := range []int64{1, 7, 40} {
		p, _ := Prove(ctx, store, seq)
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	p, err := ProveConsistency(ctx, store, store.cps[0].Seq, 40)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := json.Marshal(p)
	f.Add(b)
	f.Add([]byte(`{"type":"airlock-inclusion-proof-v1","event":{},"checkpoint":{},"hashes":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProof(bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, err := VerifyProof(testPub(), p); err != nil {
			return
		}
		// It verified: it must prove a stored event or stored checkpoints.
		switch p.Type {
		case ProofInclusion:
			if e := store.events[p.Event.Seq-1]; e.Hash != p.Event.Hash {
				t.Fatalf("verified a proof of an event the log does not hold: %+v", p.Event)
			}
		case ProofConsistency:
			if p.Old.Seq > p.New.Seq {
				t.Fatalf("verified a consistency proof backwards")
			}
		}
	})
}
