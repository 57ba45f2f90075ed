package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

func (s *tileStore) snapshot() map[tlog.TileID]map[int][]byte {
	c := map[tlog.TileID]map[int][]byte{}
	for id, runs := range s.runs {
		c[id] = maps.Clone(runs)
	}
	return c
}

func batch(tag string, from int64, k int) []airlock.Event {
	evs := make([]airlock.Event, k)
	for i := range evs {
		evs[i] = airlock.Event{Seq: from + 1 + int64(i), Hash: fmt.Sprintf("%s-%d", tag, from+1+int64(i))}
	}
	return evs
}

// These three came from a review of the Edge (TestEdge left them out).

// TestEdgeSameSizeOtherHead: the store loses this process's last appends
// (a restore, or a PostgreSQL failover to an async standby) and another
// replica appends different events up to the same tree size. The Edge's
// size matches; only the head tells it the tiles are not its own.
// TestEdge never reaches this case: its store only moves forward.
func TestEdgeSameSizeOtherHead(t *testing.T) {
	ctx := context.Background()
	s := &tileStore{runs: map[tlog.TileID]map[int][]byte{}}
	var a, b Edge
	grow := func(e *Edge, size int64, head string, evs []airlock.Event) {
		t.Helper()
		g, err := e.Grow(ctx, s.query, size, head, evs)
		if err != nil {
			t.Fatal(err)
		}
		if !tilesEqual(g.Tiles, s.grown(t, size, head, evs)) {
			t.Fatalf("append at %d: the edge's tiles differ from the store's", size)
		}
		s.write(g.Tiles)
		g.Commit()
	}
	evs := batch("a", 0, 250)
	grow(&a, 0, "", evs)
	snap := s.snapshot() // the standby has 250 events
	evs2 := batch("a", 250, 3)
	grow(&a, 250, evs[249].Hash, evs2) // lost in the failover
	s.runs = snap
	evs3 := batch("b", 250, 3) // another replica: same size, other events
	grow(&b, 250, evs[249].Hash, evs3)
	grow(&a, 253, evs3[2].Hash, batch("a2", 253, 2)) // whole rewrite of tile 0/0
}

// TestEdgeDeep goes past TestEdge's 98,304 leaves so that the level-2 tile
// is grown at a position > 0 (and rewritten whole), and tile 0/1 at level 1
// completes.
func TestEdgeDeep(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	ctx := context.Background()
	s := &tileStore{runs: map[tlog.TileID]map[int][]byte{}}
	var edges [2]Edge
	var compact tlog.Compact
	var size int64
	head := ""
	for step := 0; size < 2*tlog.Width*tlog.Width+3*tlog.Width; step++ {
		k := 253 + step%7 // crosses tile boundaries with small remainders
		evs := batch(fmt.Sprint(step), size, k)
		g, err := edges[step%3/2].Grow(ctx, s.query, size, head, evs) // edge 1 every third step: it re-reads
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if !tilesEqual(g.Tiles, s.grown(t, size, head, evs)) {
			t.Fatalf("step %d: the edge's tiles differ from the store's", step)
		}
		s.write(g.Tiles)
		g.Commit()
		for _, ev := range evs {
			compact.Append(tlog.EventLeaf(ev.Hash))
		}
		size, head = evs[k-1].Seq, evs[k-1].Hash
	}
	root, err := tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return ReadTile(ctx, s.query, id) }).Root(uint64(size))
	if err != nil || !bytes.Equal(root, compact.Root()) {
		t.Fatalf("root of %d: %x %v, want %x", size, root, err, compact.Root())
	}
}

// TestEdgeNoAliasing: no later Commit writes into the Hashes of a Tile
// handed out earlier (bind arguments, a pgx batch).
func TestEdgeNoAliasing(t *testing.T) {
	ctx := context.Background()
	s := &tileStore{runs: map[tlog.TileID]map[int][]byte{}}
	var e Edge
	var size int64
	head := ""
	type held struct{ live, clone []byte }
	var handed []held
	for step := 0; size < 3*tlog.Width*tlog.Width/2; step++ {
		k := 1 + (step*37)%23
		if step%5 == 0 {
			k = 16 + (step*91)%300
		}
		evs := batch(fmt.Sprint(step), size, k)
		g, err := e.Grow(ctx, s.query, size, head, evs)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range g.Tiles {
			handed = append(handed, held{tl.Hashes, bytes.Clone(tl.Hashes)})
		}
		s.write(g.Tiles)
		g.Commit()
		for i, h := range handed {
			if !bytes.Equal(h.live, h.clone) {
				t.Fatalf("step %d: tile hashes handed out (#%d) changed", step, i)
			}
		}
		if len(handed) > 64 {
			handed = handed[len(handed)-64:]
		}
		size, head = evs[k-1].Seq, evs[k-1].Hash
	}
}

// TestEdgeBusyDoesNotWait: an append that finds the Edge held by another
// (whose commit has not been answered yet) reads from the store instead
// of waiting for it, and leaves the Edge to its holder.
func TestEdgeBusyDoesNotWait(t *testing.T) {
	ctx := context.Background()
	s := &tileStore{runs: map[tlog.TileID]map[int][]byte{}}
	var e Edge
	evs := batch("a", 0, 250)
	first, err := e.Grow(ctx, s.query, 0, "", evs)
	if err != nil {
		t.Fatal(err)
	}
	s.write(first.Tiles) // committed by the database, not yet answered
	next := batch("b", 250, 3)
	s.reads = 0
	g, err := e.Grow(ctx, s.query, 250, evs[249].Hash, next) // would block on the held Edge
	if err != nil {
		t.Fatal(err)
	}
	if s.reads == 0 {
		t.Error("the append beside a held Edge read nothing from the store")
	}
	if !tilesEqual(g.Tiles, s.grown(t, 250, evs[249].Hash, next)) {
		t.Fatal("the append beside a held Edge got other tiles than the store's")
	}
	g.Commit() // touches no Edge
	g.Close()
	first.Commit()
	s.write(g.Tiles)
	// The Edge is at 250 (its holder's commit); the store at 253: it reads.
	s.reads = 0
	last, err := e.Grow(ctx, s.query, 253, next[2].Hash, batch("c", 253, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if s.reads == 0 {
		t.Error("an Edge behind the store read nothing")
	}
}
