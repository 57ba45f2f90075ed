package sqlstore

import (
	"context"
	"errors"
	"fmt"

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

// GrowTree returns the tile runs to store when evs (consecutive seqs, the
// first one treeSize+1) are appended to a tree of treeSize leaves: a
// partial tile they complete is read through query (inside the append's
// transaction).
func GrowTree(ctx context.Context, query QueryFunc, treeSize int64, evs []airlock.Event) ([]tlog.Tile, error) {
	if len(evs) > 0 && evs[0].Seq != treeSize+1 {
		return nil, fmt.Errorf("%w: the tree holds %d events but the next one appended is seq %d", tlog.ErrCorrupt, treeSize, evs[0].Seq)
	}
	leaves := make([][tlog.HashSize]byte, len(evs))
	for i := range evs {
		leaves[i] = tlog.EventLeaf(evs[i].Hash)
	}
	return tlog.Append(treeSize, leaves, func(id tlog.TileID) ([]byte, error) { return ReadTile(ctx, query, id) })
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
