package postgres

import (
	"context"
	"fmt"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/eventblock"
	"github.com/airlockhq/airlock/internal/sqlstore"
	"github.com/airlockhq/airlock/internal/tlog"
	"github.com/jackc/pgx/v5"
)

// blockEvents is the most events one stored block holds.
const blockEvents = sqlstore.BlockEvents

const insertBlockSQL = `INSERT INTO event_blocks (first_seq, last_seq, min_time, max_time, data) VALUES ($1, $2, $3, $4, $5)`
const insertKeysSQL = `INSERT INTO event_keys (key, first_seq) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`

// AppendEvents runs build with the head of the chain while holding the
// row lock on audit_head (SELECT … FOR UPDATE, so appenders in every
// process queue), stores the events it returns as blocks in the same
// transaction (one round trip for the blocks, their keys and the new
// head), and commits. EINVALID if build's events do not continue the
// chain's sequence.
func (db *DB) AppendEvents(ctx context.Context, build func(head airlock.AuditHead) ([]airlock.Event, error)) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return outage(err, "audit log unavailable")
	}
	defer tx.Rollback(context.Background())
	var head airlock.AuditHead
	var treeSize int64
	if err := tx.QueryRow(ctx, `SELECT seq, hash, tree_size FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&head.Seq, &head.Hash, &treeSize); err != nil {
		return outage(fmt.Errorf("lock audit head: %w", err), "audit log unavailable")
	}
	evs, err := build(head)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if want := head.Seq + 1 + int64(i); evs[i].Seq != want {
			return airlock.Errorf(airlock.EINVALID, "audit event %d has seq %d, want %d", i, evs[i].Seq, want)
		}
	}
	var b pgx.Batch
	queueBlocks(&b, evs)
	// The tree follows the log unless the log was damaged before the
	// tree was built (see sqlstore.BuildTree): it then stays where it is.
	var grown *sqlstore.Growth
	if treeSize == head.Seq {
		g, err := db.edge.Grow(ctx, queryFunc(tx), treeSize, head.Hash, evs)
		if err != nil {
			return outage(fmt.Errorf("grow the audit Merkle tree: %w", err), "audit log unavailable")
		}
		defer g.Close()
		grown = g
		for _, t := range g.Tiles {
			for _, st := range sqlstore.TileWrites(t) {
				b.Queue(st.SQL, st.Args...)
			}
		}
		treeSize = evs[len(evs)-1].Seq
	}
	last := evs[len(evs)-1]
	b.Queue(`UPDATE audit_head SET seq = $1, hash = $2, tree_size = $3 WHERE id = 1`, last.Seq, last.Hash, treeSize)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return writeErr(fmt.Errorf("append audit events: %w", err), "audit sequence number already used", "")
	}
	if err := tx.Commit(ctx); err != nil {
		return outage(err, "audit log unavailable")
	}
	if grown != nil {
		grown.Commit()
	}
	return nil
}

// queueBlocks queues the inserts that store evs (consecutive seqs) as
// blocks of at most blockEvents, with their session and grant keys.
func queueBlocks(b *pgx.Batch, evs []airlock.Event) {
	for len(evs) > 0 {
		blk := evs[:min(len(evs), blockEvents)]
		evs = evs[len(blk):]
		sum := eventblock.Summarize(blk, nil)
		b.Queue(insertBlockSQL, sum.FirstSeq, sum.LastSeq, sum.MinTime, sum.MaxTime, eventblock.Append(nil, blk))
		if len(sum.Keys) > 0 {
			b.Queue(insertKeysSQL, sum.Keys, sum.FirstSeq)
		}
	}
}

// AuditHead returns the last event's seq and hash (zero for an empty log).
func (db *DB) AuditHead(ctx context.Context) (airlock.AuditHead, error) {
	var h airlock.AuditHead
	err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash)
	return h, err
}

// ListEvents returns events matching f ordered by seq (descending when
// f.Desc). Since is inclusive, Until exclusive. It reads the blocks that
// may match (by seq, time range, session and grant) and filters their
// events.
func (db *DB) ListEvents(ctx context.Context, f airlock.EventFilter) ([]airlock.Event, error) {
	st := sqlstore.ListEvents(f)
	rows, err := db.pool.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.FilterBlocks[[]byte](rows, &f)
}

// ScanEvents calls fn for each event with seq > afterSeq in stored order,
// a page of blocks per query, with no connection held while fn runs.
func (db *DB) ScanEvents(ctx context.Context, afterSeq int64, fn func(airlock.Event) error) error {
	return sqlstore.ScanEvents[[]byte](ctx, rowFunc(db.pool), queryFunc(db.pool), afterSeq, fn)
}

// AddCheckpoint stores c. ECONFLICT if a checkpoint with the same seq and
// key already exists.
func (db *DB) AddCheckpoint(ctx context.Context, c *airlock.Checkpoint) error {
	_, err := exec(ctx, db.pool, dialect.InsertCheckpoint(c))
	return writeErr(err, sqlstore.CheckpointExists(c), "")
}

// ListCheckpoints returns all checkpoints ordered by seq.
func (db *DB) ListCheckpoints(ctx context.Context) ([]airlock.Checkpoint, error) {
	return list(ctx, db.pool, sqlstore.Stmt{SQL: `SELECT seq, hash, time, key_id, signature, root FROM checkpoints ORDER BY seq, key_id COLLATE "C"`}, sqlstore.ScanCheckpoint)
}

// TreeCheckpoint returns the version 2 checkpoint at seq, or the newest
// one when seq is 0; ENOTFOUND when there is none.
func (db *DB) TreeCheckpoint(ctx context.Context, seq int64) (airlock.Checkpoint, error) {
	st := sqlstore.TreeCheckpoint(seq)
	c, err := sqlstore.ScanCheckpoint(rowFunc(db.pool)(ctx, st.SQL, st.Args...))
	if err != nil {
		return c, sqlstore.NotFound(err, "%s", sqlstore.NoTreeCheckpoint(seq))
	}
	return c, nil
}

// MerkleTile returns the stored hashes of tile level/index of the audit
// log's Merkle tree, nil when none is stored.
func (db *DB) MerkleTile(ctx context.Context, level int, index int64) ([]byte, error) {
	return sqlstore.ReadTile(ctx, queryFunc(db.pool), tlog.TileID{Level: level, Index: index})
}

// buildMerkleTree is migration 6's Go step: the tree of the events stored
// so far.
func buildMerkleTree(ctx context.Context, tx pgx.Tx) error {
	n, err := sqlstore.BuildTree[[]byte](ctx, rowFunc(tx), queryFunc(tx), func(t tlog.Tile) error {
		for _, st := range sqlstore.TileWrites(t) {
			if _, err := tx.Exec(ctx, st.SQL, st.Args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build the audit Merkle tree: %w", err)
	}
	_, err = tx.Exec(ctx, sqlstore.SetTreeSizeSQL, n)
	return err
}
