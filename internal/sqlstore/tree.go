package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// The audit log's Merkle tiles (internal/tlog) and the tree size kept in
// audit_head.
const (
	ReadTileSQL     = `SELECT start, hashes FROM merkle_tiles WHERE level = $1 AND idx = $2 ORDER BY start`
	InsertRunSQL    = `INSERT INTO merkle_tiles (level, idx, start, hashes) VALUES ($1, $2, $3, $4)`
	DeleteTileSQL   = `DELETE FROM merkle_tiles WHERE level = $1 AND idx = $2`
	ReadTreeSizeSQL = `SELECT tree_size FROM audit_head WHERE id = 1`
	SetTreeSizeSQL  = `UPDATE audit_head SET tree_size = $1 WHERE id = 1`
)

// ReadTile returns the stored hashes of tile id (nil when none), joining
// its runs (see tlog.Tile).
func ReadTile(ctx context.Context, query QueryFunc, id tlog.TileID) ([]byte, error) {
	rows, closeRows, err := query(ctx, ReadTileSQL, id.Level, id.Index)
	if err != nil {
		return nil, fmt.Errorf("read merkle tile %d/%d: %w", id.Level, id.Index, err)
	}
	defer closeRows()
	var starts []int
	var runs [][]byte
	for rows.Next() {
		var start int
		var b []byte
		if err := rows.Scan(&start, &b); err != nil {
			return nil, fmt.Errorf("read merkle tile %d/%d: %w", id.Level, id.Index, err)
		}
		starts, runs = append(starts, start), append(runs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read merkle tile %d/%d: %w", id.Level, id.Index, err)
	}
	return tlog.Join(id, starts, runs)
}

// TileWrites returns the statements that store t: a run is inserted; a
// whole tile replaces the tile's runs.
func TileWrites(t tlog.Tile) []Stmt {
	ins := Stmt{InsertRunSQL, []any{t.Level, t.Index, t.Start, t.Hashes}}
	if !t.Whole {
		return []Stmt{ins}
	}
	return []Stmt{{DeleteTileSQL, []any{t.Level, t.Index}}, ins}
}

// Edge keeps the partial tiles at the right edge of a store's audit tree
// as this process last committed them (at most one per level), so that an
// append reads nothing back: every append of fewer than 16 entries to a
// tile, and every append that completes one, needs the tile's stored
// entries (tlog.Append). It is used only while the tree is as it left it:
// the same size and the same chain head, the hash of the event at that
// size, which commits to every event before it and so to every tile.
// Otherwise (another process appended, a transaction was rolled back after
// the edge moved, the store was restored) the edge is read from the store.
// The zero value is an edge that reads on first use. Appends through one
// Edge are serialised by the store's write lock; Grow holds the Edge until
// the append's Growth is committed or closed, and an append that finds it
// held reads from the store instead of waiting.
type Edge struct {
	mu    sync.Mutex
	valid bool
	size  int64
	head  string
	tiles map[tlog.TileID][]byte
}

// Growth is one append's change to the audit tree: the tiles to store
// and, once the append commits, the edge they leave.
type Growth struct {
	Tiles []tlog.Tile
	e     *Edge
	size  int64
	head  string
	done  bool
}

// Grow returns the tiles to store when evs (consecutive seqs, the first
// one treeSize+1) are appended to a tree of treeSize leaves whose chain
// head is head (the hash of event treeSize; "" for the empty log). The
// tiles it needs come from the Edge when it is at that tree, else from
// the store through query (inside the append's transaction). The caller
// calls Commit once its transaction has committed, and Close in every
// case (a deferred Close after Commit does nothing).
func (e *Edge) Grow(ctx context.Context, query QueryFunc, treeSize int64, head string, evs []airlock.Event) (*Growth, error) {
	if len(evs) > 0 && evs[0].Seq != treeSize+1 {
		return nil, fmt.Errorf("%w: the tree holds %d events but the next one appended is seq %d", tlog.ErrCorrupt, treeSize, evs[0].Seq)
	}
	if !e.mu.TryLock() {
		// Another append of this process holds the Edge: the store's
		// lock has passed to this one, so that one is committing (or
		// stuck waiting for its commit's answer). Do not wait for it:
		// read from the store, and leave the Edge to its holder.
		var scratch Edge
		scratch.mu.Lock()
		g, err := scratch.grow(ctx, query, treeSize, head, evs)
		if g != nil {
			g.e = nil
		}
		return g, err
	}
	return e.grow(ctx, query, treeSize, head, evs)
}

// grow is Grow with e locked: it returns a Growth that holds e, or an
// error with e unlocked.
func (e *Edge) grow(ctx context.Context, query QueryFunc, treeSize int64, head string, evs []airlock.Event) (*Growth, error) {
	held := false // whether the Growth returned holds the Edge
	defer func() {
		if !held {
			e.mu.Unlock() // an error, or a panic in query
		}
	}()
	if !e.valid || e.size != treeSize || e.head != head {
		tiles, err := readEdge(ctx, query, treeSize)
		if err != nil {
			e.valid = false
			return nil, err
		}
		e.valid, e.size, e.head, e.tiles = true, treeSize, head, tiles
	}
	leaves := make([][tlog.HashSize]byte, len(evs))
	for i := range evs {
		leaves[i] = tlog.EventLeaf(evs[i].Hash)
	}
	tiles, err := tlog.Append(treeSize, leaves, func(id tlog.TileID) ([]byte, error) { return e.tiles[id], nil })
	if err != nil {
		e.valid = false
		return nil, err
	}
	held = true
	g := &Growth{Tiles: tiles, e: e, size: treeSize, head: head}
	if len(evs) > 0 {
		g.size, g.head = evs[len(evs)-1].Seq, evs[len(evs)-1].Hash
	}
	return g, nil
}

// readEdge reads the partial tile of each level of a tree of size leaves:
// level l has size/256^l entries, and its last tile is partial unless that
// count is a multiple of 256.
func readEdge(ctx context.Context, query QueryFunc, size int64) (map[tlog.TileID][]byte, error) {
	tiles := map[tlog.TileID][]byte{}
	for level, n := 0, size; n > 0; level, n = level+1, n/tlog.Width {
		if n%tlog.Width == 0 {
			continue
		}
		id := tlog.TileID{Level: level, Index: n / tlog.Width}
		t, err := ReadTile(ctx, query, id)
		if err != nil {
			return nil, err
		}
		tiles[id] = t
	}
	return tiles, nil
}

// Commit moves the Edge to the tree the append left (its transaction has
// committed) and releases it.
func (g *Growth) Commit() {
	if g.done || g.e == nil {
		return
	}
	g.done = true
	e := g.e
	defer e.mu.Unlock()
	for _, t := range g.Tiles {
		switch {
		case t.Full:
			delete(e.tiles, t.TileID)
		case t.Whole:
			e.tiles[t.TileID] = t.Hashes
		default:
			old := e.tiles[t.TileID]
			if len(old) != t.Start*tlog.HashSize {
				e.valid = false // cannot happen: Append checked the stored length
				return
			}
			if cap(old)-len(old) < len(t.Hashes) {
				// Room for the whole tile, so that the runs after this
				// one are appended in place (the Edge is held: no one
				// else sees the slice beyond its length).
				grown := make([]byte, len(old), tlog.Width*tlog.HashSize)
				copy(grown, old)
				old = grown
			}
			e.tiles[t.TileID] = append(old, t.Hashes...)
		}
	}
	e.size, e.head = g.size, g.head
}

// Close releases the Edge of an append that did not commit, leaving it
// where it was: its transaction was rolled back, so the store's tree is
// still the one the Edge describes.
func (g *Growth) Close() {
	if g.done || g.e == nil {
		return
	}
	g.done = true
	g.e.mu.Unlock()
}

var errDamaged = errors.New("the audit log is damaged")

// BuildTree computes the Merkle tree of the events already stored (the
// migration that adds the tree), calling write for each tile and
// returning the tree size. Leaf i must be event i+1, so a damaged log (a
// gap or a seq out of place) gets a tree of the events before the damage
// only, and AppendEvents leaves that tree as it is: checkpoints stay
// chain-only and "airlock audit verify" reports the damage.
func BuildTree[B ~[]byte](ctx context.Context, row RowFunc, query QueryFunc, write func(tlog.Tile) error) (int64, error) {
	partial := map[tlog.TileID][]byte{}
	var n int64
	var leaves [][tlog.HashSize]byte
	flush := func() error {
		tiles, err := tlog.Append(n, leaves, func(id tlog.TileID) ([]byte, error) { return partial[id], nil })
		if err != nil {
			return err
		}
		for _, t := range tiles {
			if t.Full {
				delete(partial, t.TileID)
			} else {
				partial[t.TileID] = append(partial[t.TileID][:t.Start*tlog.HashSize], t.Hashes...)
			}
			if err := write(t); err != nil {
				return err
			}
		}
		n += int64(len(leaves))
		leaves = leaves[:0]
		return nil
	}
	err := ScanEvents[B](ctx, row, query, 0, func(e airlock.Event) error {
		if e.Seq != n+int64(len(leaves))+1 {
			return errDamaged
		}
		leaves = append(leaves, tlog.EventLeaf(e.Hash))
		if len(leaves) >= 64*tlog.Width {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDamaged) {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return n, nil
}
