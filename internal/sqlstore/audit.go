package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
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
// events f matches; a read of at most FewEvents events in stored order
// stops decoding at the last one it needs. B is the type the driver scans a blob into
// (sql.RawBytes lets database/sql skip a copy).
func FilterBlocks[B ~[]byte](rows Rows, f *airlock.EventFilter) ([]airlock.Event, error) {
	var out, blk []airlock.Event
	few := !f.Desc && f.Limit > 0 && f.Limit <= FewEvents
	for rows.Next() {
		var first int64
		var data B
		if err := rows.Scan(&first, &data); err != nil {
			return nil, err
		}
		var err error
		var full bool
		if few {
			// Stop reading the block at the events wanted (a proof's
			// read of one event would otherwise decode all of its block).
			if out, full, err = eventblock.FilterStored(out, first, []byte(data), f); err != nil {
				return nil, err
			}
		} else {
			if blk, err = eventblock.DecodeStored(blk[:0], first, []byte(data)); err != nil {
				return nil, err
			}
			out, full = eventblock.Filter(out, blk, f)
		}
		if full {
			return out, nil
		}
	}
	return out, rows.Err()
}

// FewEvents is the largest limit for which FilterBlocks reads each block
// only as far as the events it needs (eventblock.DecodeFilter, one
// allocation per event returned) instead of decoding it whole (one copy of
// the block, then filtering); newest-first reads always decode whole blocks.
const FewEvents = 64

// BlockEvents is the most events one stored block holds. A group commit
// larger than this is written as several blocks; reads decode whole
// blocks, so this also bounds the work of a filtered lookup per block.
const BlockEvents = 1024

// ScanBlocks is how many blocks ScanEvents reads per query.
const ScanBlocks = 4

// QueryFunc runs a query ($N style) and returns its rows and how to close
// them.
type QueryFunc func(ctx context.Context, query string, args ...any) (Rows, func(), error)

// ScanEvents calls fn for each event with seq > afterSeq in stored order.
// It reads ScanBlocks blocks per query, so memory stays bounded and no
// read transaction or connection is held while fn runs. B is the type the
// driver scans a blob into.
func ScanEvents[B ~[]byte](ctx context.Context, row RowFunc, query QueryFunc, afterSeq int64, fn func(airlock.Event) error) error {
	page := make([]airlock.Event, 0, ScanBlocks*BlockEvents)
	var from int64
	if err := row(ctx, `SELECT coalesce(max(first_seq), 0) FROM event_blocks WHERE first_seq <= $1 + 1`, afterSeq).Scan(&from); err != nil {
		return err
	}
	for {
		page = page[:0]
		rows, closeRows, err := query(ctx, `SELECT first_seq, data FROM event_blocks WHERE first_seq >= $1 ORDER BY first_seq LIMIT $2`, from, ScanBlocks)
		if err != nil {
			return err
		}
		blocks := 0
		for rows.Next() {
			var first int64
			var data B
			if err = rows.Scan(&first, &data); err != nil {
				break
			}
			blocks++
			from = first + 1
			if page, err = eventblock.DecodeStored(page, first, []byte(data)); err != nil {
				break
			}
		}
		closeRows()
		if err == nil {
			err = rows.Err()
		}
		if err := eventblock.Deliver(page, afterSeq, err, fn); err != nil {
			return err
		}
		if blocks < ScanBlocks {
			return nil
		}
	}
}

// OldEventsSQL reads up to $2 rows of the version-1 events table (one row
// per event) with seq > $1, for the migration to blocks; scan them with
// ScanOldEvent.
const OldEventsSQL = `SELECT seq, time, actor_id, actor_name, action, resource, request_id, grant_id,
		session_id, source_addr, outcome, details, prev_hash, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`

func ScanOldEvent(s Scanner) (airlock.Event, error) {
	var e airlock.Event
	var details sql.NullString
	if err := s.Scan(&e.Seq, Time(&e.Time), &e.Actor.ID, &e.Actor.Name, &e.Action, &e.Resource, &e.RequestID, &e.GrantID,
		&e.SessionID, &e.SourceAddr, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	if details.Valid {
		e.Details = json.RawMessage(details.String)
	}
	return e, nil
}

// Checkpoints.

func (d Dialect) InsertCheckpoint(c *airlock.Checkpoint) Stmt {
	return Stmt{`INSERT INTO checkpoints (seq, hash, time, key_id, signature, root) VALUES ($1,$2,$3,$4,$5,$6)`,
		[]any{c.Seq, c.Hash, d.Time(c.Time), c.KeyID, c.Signature, c.Root}}
}

// CheckpointExists is the ECONFLICT message of a checkpoint insert.
func CheckpointExists(c *airlock.Checkpoint) string {
	return fmt.Sprintf("checkpoint at seq %d with key %q already exists", c.Seq, c.KeyID)
}

// TreeCheckpoint reads the version 2 checkpoint at seq, or the newest one
// when seq is 0, for ScanCheckpoint.
func TreeCheckpoint(seq int64) Stmt {
	if seq == 0 {
		return Stmt{`SELECT seq, hash, time, key_id, signature, root FROM checkpoints WHERE root <> '' ORDER BY seq DESC LIMIT 1`, nil}
	}
	return Stmt{`SELECT seq, hash, time, key_id, signature, root FROM checkpoints WHERE seq = $1 AND root <> '' LIMIT 1`, []any{seq}}
}

// NoTreeCheckpoint is the ENOTFOUND message of TreeCheckpoint.
func NoTreeCheckpoint(seq int64) string {
	if seq == 0 {
		return "no signed tree head yet"
	}
	return fmt.Sprintf("no signed tree head at size %d", seq)
}

// ListCheckpointsSQL reads every checkpoint for ScanCheckpoint.
const ListCheckpointsSQL = `SELECT seq, hash, time, key_id, signature, root FROM checkpoints ORDER BY seq, key_id`

func ScanCheckpoint(s Scanner) (airlock.Checkpoint, error) {
	var c airlock.Checkpoint
	err := s.Scan(&c.Seq, &c.Hash, Time(&c.Time), &c.KeyID, &c.Signature, &c.Root)
	return c, err
}
