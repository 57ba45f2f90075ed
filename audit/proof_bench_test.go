package audit

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
	"github.com/airlockhq/airlock/sqlite"
)

// proofTreeSize is the tree BenchmarkProof10M proves in: 10 million
// leaves, stored as the SQLite store keeps them (39,063 full level-0
// tiles, 152 level-1, a partial level 2).
const proofTreeSize = 10_000_000

// benchTreeDB returns a migrated SQLite store on tmpfs (/dev/shm) whose
// merkle_tiles hold a tree of n leaves (leaf i = LeafHash(i as 8 bytes)),
// written straight into the table: building it through AppendEvents
// would store 10 million events as well, which the proof never reads.
func benchTreeDB(b *testing.B, n int64) *sqlite.DB {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "airlock-proof-bench-")
	if err != nil {
		b.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "airlock.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	partial := map[tlog.TileID][]byte{}
	const chunk = 1 << 16
	leaves := make([][tlog.HashSize]byte, 0, chunk)
	var size int64
	for size < n {
		leaves = leaves[:0]
		for i := size; i < min(n, size+chunk); i++ {
			leaves = append(leaves, tlog.LeafHash(binary.BigEndian.AppendUint64(nil, uint64(i))))
		}
		tiles, err := tlog.Append(size, leaves, func(id tlog.TileID) ([]byte, error) { return partial[id], nil })
		if err != nil {
			b.Fatal(err)
		}
		tx, err := raw.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tiles {
			if t.Whole {
				if _, err := tx.Exec(`DELETE FROM merkle_tiles WHERE level = ? AND idx = ?`, t.Level, t.Index); err != nil {
					b.Fatal(err)
				}
			}
			if t.Full {
				delete(partial, t.TileID)
			} else {
				partial[t.TileID] = append(partial[t.TileID][:t.Start*tlog.HashSize], t.Hashes...)
			}
			if _, err := tx.Exec(`INSERT INTO merkle_tiles (level, idx, start, hashes) VALUES (?, ?, ?, ?)`, t.Level, t.Index, t.Start, t.Hashes); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		size += int64(len(leaves))
	}
	b.Logf("built a tree of %d leaves in %s", n, time.Since(start).Round(time.Millisecond))
	raw.Close()
	if db, err = sqlite.Open(context.Background(), path); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkProof10M measures proofs from the stored tiles of a 10-million
// leaf tree, reading SQLite (tmpfs) each time with no cache: an inclusion
// proof of a random leaf, a consistency proof between two random sizes,
// and the root of the whole tree.
func BenchmarkProof10M(b *testing.B) {
	db := benchTreeDB(b, proofTreeSize)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	root, err := TreeReader(ctx, db).Root(proofTreeSize)
	if err != nil {
		b.Fatal(err)
	}
	// Once: the proofs verify against the root.
	idx := rng.Uint64N(proofTreeSize)
	p, err := InclusionHashes(TreeReader(ctx, db), idx, proofTreeSize)
	leaf := tlog.LeafHash(binary.BigEndian.AppendUint64(nil, idx))
	if err != nil || proof.VerifyInclusion(rfc6962.DefaultHasher, idx, proofTreeSize, leaf[:], p, root) != nil {
		b.Fatalf("inclusion proof of %d does not verify: %v", idx, err)
	}
	b.Run("inclusion", func(b *testing.B) {
		for b.Loop() {
			idx := rng.Uint64N(proofTreeSize)
			p, err := InclusionHashes(TreeReader(ctx, db), idx, proofTreeSize)
			if err != nil || len(p) == 0 {
				b.Fatalf("proof of %d: %d hashes, %v", idx, len(p), err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		for b.Loop() {
			old := 1 + rng.Uint64N(proofTreeSize-1)
			if _, err := ConsistencyHashes(TreeReader(ctx, db), old, proofTreeSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("root", func(b *testing.B) {
		for b.Loop() {
			if _, err := TreeReader(ctx, db).Root(proofTreeSize); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProveSQLite measures the whole of Prove — the newest signed tree
// head, the event (one block by seq), the proof from the tiles — on a
// SQLite store on tmpfs holding AIRLOCK_BENCH_PROVE_EVENTS events
// (default 1,000,000) written through the Log, with a checkpoint every
// 1,000 events.
func BenchmarkProveSQLite(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("AIRLOCK_BENCH_PROVE_EVENTS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("/dev/shm", "airlock-prove-bench-")
	if err != nil {
		b.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "airlock.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	start := time.Now()
	fillLogBatch(b, db, n, 1000, 4096)
	b.Logf("wrote %d events in %s", n, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	p, err := Prove(ctx, db, 1+rng.Int64N(int64(n)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := VerifyProof(testPub(), p); err != nil {
		b.Fatal(err)
	}
	b.Run("prove", func(b *testing.B) {
		for b.Loop() {
			if _, err := Prove(ctx, db, 1+rng.Int64N(int64(n))); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Its parts: the event read alone, and the tree proof alone.
	b.Run("event", func(b *testing.B) {
		for b.Loop() {
			seq := 1 + rng.Int64N(int64(n))
			if evs, err := db.ListEvents(ctx, airlock.EventFilter{AfterSeq: seq - 1, Limit: 1}); err != nil || len(evs) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("tree", func(b *testing.B) {
		for b.Loop() {
			if _, err := InclusionHashes(TreeReader(ctx, db), rng.Uint64N(uint64(n)), uint64(p.Checkpoint.Seq)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
