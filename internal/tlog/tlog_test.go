package tlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"github.com/airlockhq/airlock/internal/tlog/tlogtest"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// memTiles is a tile store in a map of runs, as the stores keep them.
type memTiles map[TileID][]Tile

func (m memTiles) read(id TileID) ([]byte, error) {
	var starts []int
	var runs [][]byte
	for _, r := range m[id] {
		starts, runs = append(starts, r.Start), append(runs, r.Hashes)
	}
	return Join(id, starts, runs)
}

func (m memTiles) append(t *testing.T, n int64, leaves [][HashSize]byte) {
	t.Helper()
	tiles, err := Append(n, leaves, m.read)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tiles {
		if tl.Whole {
			if tl.Start != 0 {
				t.Fatalf("tile %v: whole from %d", tl.TileID, tl.Start)
			}
			m[tl.TileID] = []Tile{{TileID: tl.TileID, Hashes: tl.Hashes}}
		} else {
			m[tl.TileID] = append(m[tl.TileID], tl)
		}
	}
}

// TestRunsBounded pins that a tile is never kept as many small runs: a
// batch that adds fewer than wholeBelow entries rewrites the tile whole,
// so a tile holds at most Width/wholeBelow runs at any level whatever the
// batch sizes (one entry at a time included), and reading the tree's
// right edge for a checkpoint's root or a proof is a few rows.
func TestRunsBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := memTiles{}
	var n int64
	for n < 3*Width*Width/2 {
		k := 1 + rng.IntN(40)
		if rng.IntN(4) == 0 {
			k = 1
		}
		leaves := make([][HashSize]byte, k)
		for i := range leaves {
			leaves[i] = LeafHash(binary.BigEndian.AppendUint64(nil, uint64(n)+uint64(i)))
		}
		m.append(t, n, leaves)
		n += int64(k)
		for id, runs := range m {
			if len(runs) > 16 { // Width/wholeBelow
				t.Fatalf("size %d: tile %v has %d runs", n, id, len(runs))
			}
		}
	}
	// The same leaves in one batch give the same tiles.
	ref := memTiles{}
	leaves := make([][HashSize]byte, n)
	for i := range leaves {
		leaves[i] = LeafHash(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	ref.append(t, 0, leaves)
	if len(m) != len(ref) {
		t.Fatalf("%d tiles, the one-batch tree has %d", len(m), len(ref))
	}
	for id := range ref {
		a, _ := m.read(id)
		b, _ := ref.read(id)
		if !bytes.Equal(a, b) {
			t.Fatalf("tile %v differs from the one-batch tree's", id)
		}
	}
}

func dh(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRFCVectors(t *testing.T) {
	m := memTiles{}
	r := func() *Reader { return NewReader(m.read) }
	if got := hex.EncodeToString(must(r().Root(0))); got != tlogtest.Roots[0] {
		t.Fatalf("empty root %s, want %s", got, tlogtest.Roots[0])
	}
	// One leaf at a time: every prefix's root.
	for i, l := range tlogtest.Leaves {
		m.append(t, int64(i), [][HashSize]byte{LeafHash(dh(l))})
		if got := hex.EncodeToString(must(r().Root(uint64(i + 1)))); got != tlogtest.Roots[i+1] {
			t.Errorf("root of size %d: %s, want %s", i+1, got, tlogtest.Roots[i+1])
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestAgainstReference appends leaves in batches of random sizes (across
// three tile levels) and compares roots and proofs with the reference
// in-memory tree of transparency-dev/merkle.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := testonly.New(rfc6962.DefaultHasher)
	m := memTiles{}
	var compact Compact
	var n int64
	const total = Width*Width + 3*Width + 17 // past the first full level-1 tile
	for n < total {
		k := 1 + rng.IntN(700)
		if rng.IntN(10) == 0 {
			k = 1
		}
		k = min(k, total-int(n))
		leaves := make([][HashSize]byte, k)
		for i := range leaves {
			leaves[i] = LeafHash(fmt.Appendf(nil, "leaf %d", n+int64(i)))
			ref.Append(leaves[i][:])
		}
		m.append(t, n, leaves)
		n += int64(k)
		size := uint64(n)
		for i := range leaves {
			compact.Append(leaves[i])
		}
		if got := compact.Root(); !bytes.Equal(got, ref.Hash()) || compact.Size() != size {
			t.Fatalf("compact root of %d: %x, want %x", size, got, ref.Hash())
		}
		r := NewReader(m.read)
		if got := must(r.Root(size)); !bytes.Equal(got, ref.Hash()) {
			t.Fatalf("root of %d: %x, want %x", size, got, ref.Hash())
		}
		for range 3 {
			// Older sizes too: tiles only grow.
			old := 1 + rng.Uint64N(size)
			idx := rng.Uint64N(size)
			if got := must(r.Node(0, idx)); !bytes.Equal(got, ref.LeafHash(idx)) {
				t.Fatalf("leaf %d differs", idx)
			}
			if got := must(r.Root(old)); !bytes.Equal(got, ref.HashAt(old)) {
				t.Fatalf("root of %d read at %d differs", old, size)
			}
		}
	}
}

func TestAppendRefusesCorruptTiles(t *testing.T) {
	m := memTiles{}
	m.append(t, 0, make([][HashSize]byte, 10))
	// The store says the tree has 12 leaves, the tile holds 10.
	if _, err := Append(12, make([][HashSize]byte, Width-12), m.read); err == nil {
		t.Fatal("completed a tile shorter than the tree")
	}
	if _, err := Join(TileID{}, []int{0, 11}, [][]byte{make([]byte, 10*HashSize), make([]byte, HashSize)}); err == nil {
		t.Fatal("joined runs with a hole")
	}
	if _, err := NewReader(m.read).Root(12); err == nil {
		t.Fatal("root of 12 leaves from tiles holding 10")
	}
}

// FuzzTiles appends batches of sizes drawn from the input and checks every
// root against the reference tree.
func FuzzTiles(f *testing.F) {
	f.Add([]byte{1, 2, 255, 3, 0, 200})
	f.Fuzz(func(t *testing.T, sizes []byte) {
		ref := testonly.New(rfc6962.DefaultHasher)
		m := memTiles{}
		var n int64
		for _, s := range sizes {
			k := int(s)*3 + 1
			leaves := make([][HashSize]byte, k)
			for i := range leaves {
				leaves[i] = LeafHash(fmt.Appendf(nil, "%d", n+int64(i)))
				ref.Append(leaves[i][:])
			}
			m.append(t, n, leaves)
			n += int64(k)
			if got := must(NewReader(m.read).Root(uint64(n))); !bytes.Equal(got, ref.Hash()) {
				t.Fatalf("root of %d differs", n)
			}
		}
	})
}
