package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// tileStore is the merkle_tiles table of one fake store: each tile's runs
// by start, as TileWrites leaves them.
type tileStore struct {
	runs  map[tlog.TileID]map[int][]byte
	reads int
}

func (s *tileStore) query(_ context.Context, q string, args ...any) (Rows, func(), error) {
	if q != ReadTileSQL {
		return nil, nil, fmt.Errorf("unexpected query %q", q)
	}
	s.reads++
	id := tlog.TileID{Level: args[0].(int), Index: args[1].(int64)}
	var rows tileRows
	for start, h := range s.runs[id] {
		rows = append(rows, tileRow{start, h})
	}
	slices.SortFunc(rows, func(a, b tileRow) int { return a.start - b.start })
	return &rows, func() {}, nil
}

func (s *tileStore) write(tiles []tlog.Tile) {
	for _, t := range tiles {
		if t.Whole {
			delete(s.runs, t.TileID)
		}
		if s.runs[t.TileID] == nil {
			s.runs[t.TileID] = map[int][]byte{}
		}
		s.runs[t.TileID][t.Start] = bytes.Clone(t.Hashes)
	}
}

// grown returns the tiles an Edge that reads everything from s gives for
// appending evs to its tree of size leaves with chain head head.
func (s *tileStore) grown(t *testing.T, size int64, head string, evs []airlock.Event) []tlog.Tile {
	t.Helper()
	var fresh Edge
	g, err := fresh.Grow(context.Background(), s.query, size, head, evs)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	return g.Tiles
}

type tileRow struct {
	start int
	h     []byte
}

type tileRows []tileRow

func (r *tileRows) Next() bool { return len(*r) > 0 }
func (r *tileRows) Err() error { return nil }
func (r *tileRows) Scan(dest ...any) error {
	*dest[0].(*int) = (*r)[0].start
	*dest[1].(*[]byte) = (*r)[0].h
	*r = (*r)[1:]
	return nil
}

// TestEdge appends batches of random sizes to one fake store through two
// Edges (two processes on one store) and rolls some appends back. After
// each step the stored tiles must give the root of a tree computed from
// the events, every Grow must give the tiles a Grow that reads everything
// from the store gives, and an Edge that committed the last append must
// read nothing.
func TestEdge(t *testing.T) {
	ctx := context.Background()
	s := &tileStore{runs: map[tlog.TileID]map[int][]byte{}}
	var edges [2]Edge
	var compact tlog.Compact
	var size int64
	head := ""
	last := -1 // the edge that committed the last append
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; size < 3*tlog.Width*tlog.Width/2; step++ {
		k := 1 + rng.IntN(40)
		if rng.IntN(4) == 0 {
			k = 1 + rng.IntN(900)
		}
		evs := make([]airlock.Event, k)
		for i := range evs {
			evs[i] = airlock.Event{Seq: size + 1 + int64(i), Hash: fmt.Sprintf("h%d-%d", step, i)}
		}
		which := 0
		if rng.IntN(5) == 0 {
			which = 1
		}
		s.reads = 0
		g, err := edges[which].Grow(ctx, s.query, size, head, evs)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if which == last && s.reads != 0 {
			t.Fatalf("step %d: an edge that committed the last append read %d tiles", step, s.reads)
		}
		if !tilesEqual(g.Tiles, s.grown(t, size, head, evs)) {
			t.Fatalf("step %d: the edge's tiles differ from the store's", step)
		}
		if rng.IntN(6) == 0 { // the transaction is rolled back
			g.Close()
			continue
		}
		s.write(g.Tiles)
		g.Commit()
		g.Close() // after Commit: nothing
		last = which
		for _, e := range evs {
			compact.Append(tlog.EventLeaf(e.Hash))
		}
		size, head = evs[k-1].Seq, evs[k-1].Hash
		root, err := tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return ReadTile(ctx, s.query, id) }).Root(uint64(size))
		if err != nil || !bytes.Equal(root, compact.Root()) {
			t.Fatalf("step %d: root of %d from the tiles %x, %v; want %x", step, size, root, err, compact.Root())
		}
	}
}

func tilesEqual(a, b []tlog.Tile) bool {
	return slices.EqualFunc(a, b, func(x, y tlog.Tile) bool {
		return x.TileID == y.TileID && x.Start == y.Start && x.Full == y.Full && x.Whole == y.Whole && bytes.Equal(x.Hashes, y.Hashes)
	})
}
