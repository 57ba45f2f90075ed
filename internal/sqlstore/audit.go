package sqlstore

import (
	"fmt"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/eventblock"
)

// ListEvents selects the event blocks (first_seq, data) that may hold
// events f matches: by seq, time range, session and grant. Read them with
// FilterBlocks.
func ListEvents(f airlock.EventFilter) Stmt {
	var w Filter
	if f.AfterSeq > 0 {
		// The block holding seq AfterSeq+1 and every later one.
		w.Add(`first_seq >= coalesce((SELECT max(first_seq) FROM event_blocks WHERE first_seq <= ? + 1), 0)`, f.AfterSeq)
	}
	if !f.Since.IsZero() {
		w.Add(`max_time >= ?`, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		w.Add(`min_time < ?`, f.Until.UnixMicro())
	}
	if f.SessionID != "" {
		w.Add(`first_seq IN (SELECT first_seq FROM event_keys WHERE key = ?)`, eventblock.SessionKey(f.SessionID))
	}
	if f.GrantID != "" {
		w.Add(`first_seq IN (SELECT first_seq FROM event_keys WHERE key = ?)`, eventblock.GrantKey(f.GrantID))
	}
	order := " ORDER BY first_seq"
	if f.Desc {
		order += " DESC"
	}
	return Stmt{`SELECT first_seq, data FROM event_blocks` + w.Where() + order, w.Args}
}

// FilterBlocks decodes the blocks ListEvents selected and returns the
// events f matches. B is the type the driver scans a blob into
// (sql.RawBytes lets database/sql skip a copy).
func FilterBlocks[B ~[]byte](rows Rows, f *airlock.EventFilter) ([]airlock.Event, error) {
	var out, blk []airlock.Event
	for rows.Next() {
		var first int64
		var data B
		if err := rows.Scan(&first, &data); err != nil {
			return nil, err
		}
		var err error
		if blk, err = eventblock.DecodeStored(blk[:0], first, []byte(data)); err != nil {
			return nil, err
		}
		var full bool
		if out, full = eventblock.Filter(out, blk, f); full {
			return out, nil
		}
	}
	return out, rows.Err()
}

// ScanFromSQL ($1 the seq scanned after) selects the first block ScanEvents
// reads; ScanPageSQL ($1 that block, $2 the page size) one page of blocks
// from it, for ReadPage.
const (
	ScanFromSQL = `SELECT coalesce(max(first_seq), 0) FROM event_blocks WHERE first_seq <= $1 + 1`
	ScanPageSQL = `SELECT first_seq, data FROM event_blocks WHERE first_seq >= $1 ORDER BY first_seq LIMIT $2`
)

// ReadPage decodes a page of blocks onto page, moving *from past each
// block read, and returns how many blocks it read. The caller closes rows
// and checks rows.Err when err is nil.
func ReadPage[B ~[]byte](rows Rows, page []airlock.Event, from *int64) (_ []airlock.Event, blocks int, err error) {
	for rows.Next() {
		var first int64
		var data B
		if err = rows.Scan(&first, &data); err != nil {
			break
		}
		blocks++
		*from = first + 1
		if page, err = eventblock.DecodeStored(page, first, []byte(data)); err != nil {
			break
		}
	}
	return page, blocks, err
}

// Checkpoints.

func (d Dialect) InsertCheckpoint(c *airlock.Checkpoint) Stmt {
	return Stmt{`INSERT INTO checkpoints (seq, hash, time, key_id, signature) VALUES ($1,$2,$3,$4,$5)`,
		[]any{c.Seq, c.Hash, d.Time(c.Time), c.KeyID, c.Signature}}
}

// CheckpointExists is the ECONFLICT message of a checkpoint insert.
func CheckpointExists(c *airlock.Checkpoint) string {
	return fmt.Sprintf("checkpoint at seq %d with key %q already exists", c.Seq, c.KeyID)
}

func ScanCheckpoint(s Scanner) (airlock.Checkpoint, error) {
	var c airlock.Checkpoint
	err := s.Scan(&c.Seq, &c.Hash, Time(&c.Time), &c.KeyID, &c.Signature)
	return c, err
}
