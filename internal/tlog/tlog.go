// Package tlog keeps the audit log's RFC 9162 (Certificate Transparency)
// Merkle tree as tiles, and computes its nodes and tree heads from them.
//
// A tile holds up to Width (256) consecutive node hashes of one tree level:
// the tile at tile level L, index N, holds the hashes of the complete nodes
// at tree level Height·L (8·L) with indexes 256·N … 256·N+255, as in C2SP
// tlog-tiles. Level 0 tiles hold leaf hashes. Only the right-most tile of
// each level is ever partial: it is stored as runs, one per batch that
// added to it, until a batch completes it and one full run replaces them
// (see Append), so an append never rewrites what it did not add.
// Every node a proof needs is computed from at most 128 hashes of one
// tile, so a proof in a tree of 10 million leaves reads a handful of tiles
// and hashes a few hundred times, whatever the size of the tree.
//
// The stores keep the tiles beside the events (see Append, used inside
// their append transaction); the audit package reads them through
// airlock.AuditStore.MerkleTile and builds proofs with
// github.com/transparency-dev/merkle/proof from Reader.Node. This package
// uses only the standard library, so the stores' shared code may use it.
package tlog

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

const (
	// Height is the number of tree levels one tile spans.
	Height = 8
	// Width is the most hashes one tile holds.
	Width = 1 << Height
	// HashSize is the size of one hash (SHA-256).
	HashSize = sha256.Size
	// TileBytes is the size of a full tile.
	TileBytes = Width * HashSize
)

// TileID names a tile: Level is the tile level (tree level Height·Level),
// Index the tile's position in it.
type TileID struct {
	Level int
	Index int64
}

// Tile is a run of hashes of one tile, as stored: Hashes (concatenated)
// are the tile's entries from position Start on. Append returns the
// entries a batch adds to each tile (Start > 0 for a tile that already had
// some), or the whole tile (Whole, Start 0) when the batch completes it
// (Full) or adds only a few entries to it (see wholeBelow): the store then
// replaces the tile's earlier runs with it.
type Tile struct {
	TileID
	Start  int
	Hashes []byte
	Full   bool
	Whole  bool
}

// wholeBelow is the fewest entries a batch adds to a partial tile as a run
// of their own; fewer, and Append rewrites the tile whole. Each run is a
// row to read whenever the tile is: every checkpoint's root and every
// proof read the partial tiles of the tree's right edge. A level above 0
// gains one entry per 256 below it, so kept as runs a level-1 or level-2
// tile grew to hundreds of one-hash rows.
const wholeBelow = 16

// LeafHash returns the RFC 9162 hash of a leaf: SHA-256(0x00 || data).
func LeafHash(data []byte) [HashSize]byte {
	if len(data) <= 64 { // an event's hash: no allocation
		var b [65]byte
		copy(b[1:], data)
		return sha256.Sum256(b[:1+len(data)])
	}
	return sha256.Sum256(append([]byte{0}, data...))
}

// NodeHash returns the RFC 9162 hash of an interior node:
// SHA-256(0x01 || left || right).
func NodeHash(left, right []byte) []byte {
	s := nodeHash(left, right)
	return s[:]
}

func nodeHash(left, right []byte) [HashSize]byte {
	var b [1 + 2*HashSize]byte
	b[0] = 1
	copy(b[1:], left)
	copy(b[1+HashSize:], right)
	return sha256.Sum256(b[:])
}

// EmptyRoot is the root hash of the empty tree: SHA-256 of nothing.
func EmptyRoot() []byte {
	s := sha256.Sum256(nil)
	return s[:]
}

// EventLeaf returns the leaf hash of an audit event: the leaf data is the
// event's chain hash (Event.Hash) as stored and exported, its 64 ASCII hex
// digits.
func EventLeaf(eventHash string) [HashSize]byte { return LeafHash([]byte(eventHash)) }

// subtreeRoot returns the root of the perfect subtree over hs (a power of
// two number, at most Width, of concatenated hashes).
func subtreeRoot(hs []byte) []byte {
	var root [HashSize]byte
	subtreeRootInto(&root, hs)
	return root[:]
}

func subtreeRootInto(root *[HashSize]byte, hs []byte) {
	n := len(hs) / HashSize
	if n == 1 {
		copy(root[:], hs)
		return
	}
	var scratch [Width / 2][HashSize]byte
	for i := 0; i < n/2; i++ {
		scratch[i] = nodeHash(hs[2*i*HashSize:(2*i+1)*HashSize], hs[(2*i+1)*HashSize:(2*i+2)*HashSize])
	}
	for n /= 2; n > 1; n /= 2 {
		for i := 0; i < n/2; i++ {
			scratch[i] = nodeHash(scratch[2*i][:], scratch[2*i+1][:])
		}
	}
	*root = scratch[0]
}

// ErrCorrupt is the cause of errors about stored tiles that do not fit
// the tree's size.
var ErrCorrupt = errors.New("merkle tiles do not match the tree size")

// Append returns the runs of tile entries to store when leaves (leaf
// hashes) are appended to a tree of size n, level by level. read returns
// a stored tile's entries (nil when there is none); it is called only for
// a tile that already had entries and that the leaves complete (the level
// above needs its root) or add fewer than wholeBelow entries to (it is
// rewritten whole). So a batch of wholeBelow leaves or more that completes
// no tile reads nothing and writes one run of its own entries.
func Append(n int64, leaves [][HashSize]byte, read func(TileID) ([]byte, error)) ([]Tile, error) {
	if n < 0 {
		return nil, fmt.Errorf("tree size %d", n)
	}
	var out []Tile
	entries := leaves // the new entries of this level
	start := n        // index, at this level, of the first new entry
	for level := 0; len(entries) > 0; level++ {
		var next [][HashSize]byte
		nextStart := int64(-1)
		idx := start
		for off := 0; off < len(entries); {
			id := TileID{level, idx / Width}
			pos := int(idx % Width)
			take := min(Width-pos, len(entries)-off)
			full := pos+take == Width
			whole := full || pos > 0 && take < wholeBelow
			var t []byte
			if whole && pos > 0 {
				stored, err := read(id)
				if err != nil {
					return nil, err
				}
				if len(stored) != pos*HashSize {
					return nil, fmt.Errorf("%w: tile %d/%d holds %d hashes, want %d", ErrCorrupt, id.Level, id.Index, len(stored)/HashSize, pos)
				}
				t = make([]byte, len(stored), (pos+take)*HashSize)
				copy(t, stored)
			} else {
				t = make([]byte, 0, take*HashSize)
			}
			for _, e := range entries[off : off+take] {
				t = append(t, e[:]...)
			}
			if full {
				out = append(out, Tile{TileID: id, Hashes: t, Full: true, Whole: true})
				if nextStart < 0 {
					nextStart = id.Index
				}
				var root [HashSize]byte
				subtreeRootInto(&root, t)
				next = append(next, root)
			} else if whole {
				out = append(out, Tile{TileID: id, Hashes: t, Whole: true})
			} else {
				out = append(out, Tile{TileID: id, Start: pos, Hashes: t})
			}
			idx += int64(take)
			off += take
		}
		entries, start = next, nextStart
	}
	return out, nil
}

// Join returns a tile's entries from its stored runs (each run's start
// and hashes, ordered by start): they must follow each other from 0.
func Join(id TileID, starts []int, runs [][]byte) ([]byte, error) {
	var t []byte
	for i, r := range runs {
		if starts[i] != len(t)/HashSize || len(r)%HashSize != 0 || len(t)+len(r) > TileBytes {
			return nil, fmt.Errorf("%w: tile %d/%d has a run at %d after %d hashes", ErrCorrupt, id.Level, id.Index, starts[i], len(t)/HashSize)
		}
		t = append(t, r...)
	}
	return t, nil
}

// Reader computes nodes and roots from stored tiles. It caches the tiles it
// reads; use one Reader per request (tiles grow as the log does).
type Reader struct {
	read  func(TileID) ([]byte, error)
	cache map[TileID][]byte
	full  *FullTiles
}

// NewReader returns a Reader over read, which returns a stored tile (nil
// when there is none).
func NewReader(read func(TileID) ([]byte, error)) *Reader {
	return &Reader{read: read, cache: map[TileID][]byte{}}
}

// NewCachedReader is NewReader that also keeps the full tiles it reads in
// full, for later Readers: a full tile never changes.
func NewCachedReader(read func(TileID) ([]byte, error), full *FullTiles) *Reader {
	r := NewReader(read)
	r.full = full
	return r
}

// FullTiles is a small cache of full (immutable) tiles shared by Readers;
// safe for concurrent use. The zero value is empty.
type FullTiles struct {
	mu sync.Mutex
	m  map[TileID][]byte
}

// maxFullTiles bounds a FullTiles cache (8 KiB each).
const maxFullTiles = 64

func (c *FullTiles) get(id TileID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[id]
	return t, ok
}

func (c *FullTiles) put(id TileID, t []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxFullTiles {
		c.m = map[TileID][]byte{} // simple: start over
	}
	c.m[id] = t
}

func (r *Reader) tile(id TileID) ([]byte, error) {
	if t, ok := r.cache[id]; ok {
		return t, nil
	}
	if r.full != nil {
		if t, ok := r.full.get(id); ok {
			return t, nil
		}
	}
	t, err := r.read(id)
	if err != nil {
		return nil, err
	}
	r.cache[id] = t
	if r.full != nil && len(t) == TileBytes {
		r.full.put(id, t)
	}
	return t, nil
}

// Node returns the hash of the complete node at tree level level, index
// index.
func (r *Reader) Node(level uint, index uint64) ([]byte, error) {
	tl, rest := level/Height, level%Height
	base := index << rest // its first node at tree level Height·tl
	id := TileID{int(tl), int64(base / Width)}
	off, cnt := int(base%Width), 1<<rest
	t, err := r.tile(id)
	if err != nil {
		return nil, err
	}
	if len(t) < (off+cnt)*HashSize {
		return nil, fmt.Errorf("%w: node %d/%d is not stored (tile %d/%d holds %d hashes)", ErrCorrupt, level, index, id.Level, id.Index, len(t)/HashSize)
	}
	return subtreeRoot(t[off*HashSize : (off+cnt)*HashSize]), nil
}

// RangeNodes returns the nodes (level, index) of the perfect subtrees that
// make up the tree of the given size, left to right (the binary
// decomposition of size, largest first).
func RangeNodes(size uint64) (levels []uint, indexes []uint64) {
	var begin uint64
	for l := 63; l >= 0; l-- {
		if size&(1<<uint(l)) != 0 {
			levels = append(levels, uint(l))
			indexes = append(indexes, begin>>uint(l))
			begin += 1 << uint(l)
		}
	}
	return levels, indexes
}

// Root returns the root hash of the tree of the given size.
func (r *Reader) Root(size uint64) ([]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	levels, indexes := RangeNodes(size)
	root, err := r.Node(levels[len(levels)-1], indexes[len(indexes)-1])
	if err != nil {
		return nil, err
	}
	for i := len(levels) - 2; i >= 0; i-- {
		h, err := r.Node(levels[i], indexes[i])
		if err != nil {
			return nil, err
		}
		root = NodeHash(h, root)
	}
	return root, nil
}

// Compact is a tree grown leaf by leaf that keeps only the roots of its
// perfect subtrees (a compact range from 0): enough for the root of every
// size it passes through. The zero value is the empty tree.
type Compact struct {
	size   uint64
	hashes [][]byte // left to right, largest first
}

// Size returns the number of leaves appended.
func (c *Compact) Size() uint64 { return c.size }

// Append adds a leaf hash.
func (c *Compact) Append(leaf [HashSize]byte) {
	h := append([]byte(nil), leaf[:]...)
	for s := c.size; s&1 == 1; s >>= 1 {
		h = NodeHash(c.hashes[len(c.hashes)-1], h)
		c.hashes = c.hashes[:len(c.hashes)-1]
	}
	c.hashes = append(c.hashes, h)
	c.size++
}

// Root returns the root hash of the tree so far.
func (c *Compact) Root() []byte {
	if c.size == 0 {
		return EmptyRoot()
	}
	root := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		root = NodeHash(c.hashes[i], root)
	}
	return root
}
