package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/eventblock"
	"github.com/airlockhq/airlock/internal/sqlstore"
	"github.com/airlockhq/airlock/internal/tlog"
)

// blockEvents is the most events one stored block holds.
const blockEvents = sqlstore.BlockEvents

const insertBlockSQL = `INSERT INTO event_blocks (first_seq, last_seq, min_time, max_time, data) VALUES (?, ?, ?, ?, ?)`
const insertKeySQL = `INSERT OR IGNORE INTO event_keys (key, first_seq) VALUES (?, ?)`
const readHeadSQL = `SELECT seq, hash, tree_size FROM audit_head WHERE id = 1`
const moveHeadSQL = `UPDATE audit_head SET seq = ?, hash = ?, tree_size = ? WHERE id = 1`

// blockBufs recycles block encoding buffers between commits.
var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

// AppendEvents runs build with the head of the chain inside a write
// transaction (BEGIN IMMEDIATE on the single writer connection, so appends
// are serialised) and stores the events it returns as blocks (see
// internal/eventblock), then moves the head. EINVALID if build's events do
// not continue the chain's sequence.
func (db *DB) AppendEvents(ctx context.Context, build func(head airlock.AuditHead) ([]airlock.Event, error)) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return outage(err, "audit log unavailable")
	}
	defer tx.Rollback()
	var head airlock.AuditHead
	var treeSize int64
	if err := tx.StmtContext(ctx, db.readHead).QueryRowContext(ctx).Scan(&head.Seq, &head.Hash, &treeSize); err != nil {
		return fmt.Errorf("read audit head: %w", err)
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
	if err := insertBlocks(ctx, tx.StmtContext(ctx, db.insertBlock), tx.StmtContext(ctx, db.insertKey), evs); err != nil {
		return err
	}
	// The tree follows the log unless the log was damaged before the
	// tree was built (see sqlstore.BuildTree): it then stays where it is.
	var grown *sqlstore.Growth
	if treeSize == head.Seq {
		g, err := db.edge.Grow(ctx, stmtQuery(tx.StmtContext(ctx, db.readRuns)), treeSize, head.Hash, evs)
		if err != nil {
			return fmt.Errorf("grow the audit Merkle tree: %w", err)
		}
		defer g.Close()
		if err := writeTiles(ctx, tx.StmtContext(ctx, db.insertRun), tx.StmtContext(ctx, db.deleteTile), g.Tiles); err != nil {
			return err
		}
		treeSize = evs[len(evs)-1].Seq
		grown = g
	}
	last := evs[len(evs)-1]
	if _, err := tx.StmtContext(ctx, db.moveHead).ExecContext(ctx, last.Seq, last.Hash, treeSize); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return outage(err, "audit log unavailable")
	}
	if grown != nil {
		grown.Commit()
	}
	return nil
}

// insertBlocks stores evs (consecutive seqs) as blocks of at most
// blockEvents, with their session and grant keys, using the transaction's
// insertBlockSQL and insertKeySQL statements.
func insertBlocks(ctx context.Context, insBlock, insKey *sql.Stmt, evs []airlock.Event) error {
	bufp := blockBufs.Get().(*[]byte)
	defer blockBufs.Put(bufp)
	var keys []string
	for len(evs) > 0 {
		blk := evs[:min(len(evs), blockEvents)]
		evs = evs[len(blk):]
		sum := eventblock.Summarize(blk, keys)
		keys = sum.Keys
		*bufp = eventblock.Append((*bufp)[:0], blk)
		if _, err := insBlock.ExecContext(ctx, sum.FirstSeq, sum.LastSeq, sum.MinTime, sum.MaxTime, *bufp); err != nil {
			return writeErr(fmt.Errorf("append audit events: %w", err), "audit sequence number already used", "")
		}
		for _, k := range sum.Keys {
			if _, err := insKey.ExecContext(ctx, k, sum.FirstSeq); err != nil {
				return fmt.Errorf("append audit event keys: %w", err)
			}
		}
	}
	return nil
}

// AuditHead returns the last event's seq and hash (zero for an empty log).
func (db *DB) AuditHead(ctx context.Context) (airlock.AuditHead, error) {
	var h airlock.AuditHead
	err := db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash)
	return h, err
}

// ListEvents returns events matching f ordered by seq (descending when
// f.Desc). Since is inclusive, Until exclusive. It reads the blocks that
// may match (by seq, time range, session and grant) and filters their
// events.
func (db *DB) ListEvents(ctx context.Context, f airlock.EventFilter) ([]airlock.Event, error) {
	st := sqlstore.ListEvents(f)
	rows, err := db.r.QueryContext(ctx, q(st.SQL), st.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.FilterBlocks[sql.RawBytes](rows, &f)
}

// ScanEvents calls fn for each event with seq > afterSeq in stored order,
// a page of blocks per query, with no read transaction held while fn runs.
func (db *DB) ScanEvents(ctx context.Context, afterSeq int64, fn func(airlock.Event) error) error {
	return sqlstore.ScanEvents[sql.RawBytes](ctx, rowFunc(db.r), queryFunc(db.r), afterSeq, fn)
}

// AddCheckpoint stores c. ECONFLICT if a checkpoint with the same seq and
// key already exists.
func (db *DB) AddCheckpoint(ctx context.Context, c *airlock.Checkpoint) error {
	_, err := exec(ctx, db.w, dialect.InsertCheckpoint(c))
	return writeErr(err, sqlstore.CheckpointExists(c), "")
}

// ListCheckpoints returns all checkpoints ordered by seq.
func (db *DB) ListCheckpoints(ctx context.Context) ([]airlock.Checkpoint, error) {
	return list(ctx, db.r, sqlstore.Stmt{SQL: sqlstore.ListCheckpointsSQL}, sqlstore.ScanCheckpoint)
}

// TreeCheckpoint returns the version 2 checkpoint at seq, or the newest
// one when seq is 0; ENOTFOUND when there is none.
func (db *DB) TreeCheckpoint(ctx context.Context, seq int64) (airlock.Checkpoint, error) {
	st := sqlstore.TreeCheckpoint(seq)
	c, err := sqlstore.ScanCheckpoint(rowFunc(db.r)(ctx, st.SQL, st.Args...))
	if err != nil {
		return c, sqlstore.NotFound(err, "%s", sqlstore.NoTreeCheckpoint(seq))
	}
	return c, nil
}

// MerkleTile returns the stored hashes of tile level/index of the audit
// log's Merkle tree, nil when none is stored.
func (db *DB) MerkleTile(ctx context.Context, level int, index int64) ([]byte, error) {
	return sqlstore.ReadTile(ctx, stmtQuery(db.readTile), tlog.TileID{Level: level, Index: index})
}

// stmtQuery runs st (sqlstore.ReadTileSQL, prepared) as a QueryFunc.
func stmtQuery(st *sql.Stmt) sqlstore.QueryFunc {
	return func(ctx context.Context, _ string, args ...any) (sqlstore.Rows, func(), error) {
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}
}

// writeTiles stores tile runs with ins and del (sqlstore.InsertRunSQL and
// DeleteTileSQL prepared in the transaction); a whole tile replaces its
// runs.
func writeTiles(ctx context.Context, ins, del *sql.Stmt, tiles []tlog.Tile) error {
	for _, t := range tiles {
		if t.Whole {
			if _, err := del.ExecContext(ctx, t.Level, t.Index); err != nil {
				return fmt.Errorf("replace merkle tile %d/%d: %w", t.Level, t.Index, err)
			}
		}
		if _, err := ins.ExecContext(ctx, t.Level, t.Index, t.Start, t.Hashes); err != nil {
			return fmt.Errorf("store merkle tile %d/%d: %w", t.Level, t.Index, err)
		}
	}
	return nil
}

// buildMerkleTree is migration 6's Go step: the tree of the events stored
// so far.
func buildMerkleTree(ctx context.Context, tx *sql.Tx) error {
	ins, err := tx.PrepareContext(ctx, q(sqlstore.InsertRunSQL))
	if err != nil {
		return err
	}
	defer ins.Close()
	del, err := tx.PrepareContext(ctx, q(sqlstore.DeleteTileSQL))
	if err != nil {
		return err
	}
	defer del.Close()
	n, err := sqlstore.BuildTree[sql.RawBytes](ctx, rowFunc(tx), queryFunc(tx), func(t tlog.Tile) error {
		return writeTiles(ctx, ins, del, []tlog.Tile{t})
	})
	if err != nil {
		return fmt.Errorf("build the audit Merkle tree: %w", err)
	}
	_, err = tx.ExecContext(ctx, q(sqlstore.SetTreeSizeSQL), n)
	return err
}
