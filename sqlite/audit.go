package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/airlockhq/airlock"
)

const eventCols = `seq, time, actor_id, actor_name, action, resource, request_id, grant_id, session_id, source_addr, outcome, details, prev_hash, hash`

// eventsPerInsert is how many events one multi-row INSERT carries
// (14 parameters each, far below SQLite's 32766 limit).
const eventsPerInsert = 200

// scanPage is how many events ScanEvents reads per query.
const scanPage = 10000

// AppendEvents runs build with the head of the chain inside a write
// transaction (BEGIN IMMEDIATE on the single writer connection, so appends
// are serialised) and stores the events it returns, then moves the head.
// EINVALID if build's events do not continue the chain's sequence.
func (db *DB) AppendEvents(ctx context.Context, build func(head airlock.AuditHead) ([]airlock.Event, error)) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log unavailable", err)
	}
	defer tx.Rollback()
	var head airlock.AuditHead
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&head.Seq, &head.Hash); err != nil {
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
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, 14*eventsPerInsert)
	for start := 0; start < len(evs); start += eventsPerInsert {
		chunk := evs[start:min(start+eventsPerInsert, len(evs))]
		args = args[:0]
		for i := range chunk {
			e := &chunk[i]
			var details any
			if e.Details != nil {
				details = string(e.Details)
			}
			args = append(args, e.Seq, tm(e.Time), e.Actor.ID, e.Actor.Name, e.Action, e.Resource, e.RequestID, e.GrantID,
				e.SessionID, e.SourceAddr, e.Outcome, details, e.PrevHash, e.Hash)
		}
		if len(chunk) == eventsPerInsert {
			if full == nil {
				// The statement is prepared once on the writer connection;
				// the tx reuses it without re-parsing.
				full = tx.StmtContext(ctx, db.insertEvents)
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertEventsSQL(len(chunk)), args...)
		}
		if err != nil {
			return writeErr(fmt.Errorf("append audit events: %w", err), "audit sequence number already used", "")
		}
	}
	last := evs[len(evs)-1]
	if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, last.Seq, last.Hash); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log unavailable", err)
	}
	return nil
}

func insertEventsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (` + eventCols + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// AuditHead returns the last event's seq and hash (zero for an empty log).
func (db *DB) AuditHead(ctx context.Context) (airlock.AuditHead, error) {
	var h airlock.AuditHead
	err := db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash)
	return h, err
}

func scanEvent(s scanner, e *airlock.Event) error {
	var details sql.NullString
	if err := s.Scan(&e.Seq, st(&e.Time), &e.Actor.ID, &e.Actor.Name, &e.Action, &e.Resource, &e.RequestID, &e.GrantID,
		&e.SessionID, &e.SourceAddr, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
		return err
	}
	if details.Valid {
		e.Details = json.RawMessage(details.String)
	}
	return nil
}

// ListEvents returns events matching f ordered by seq (descending when
// f.Desc). Since is inclusive, Until exclusive.
func (db *DB) ListEvents(ctx context.Context, f airlock.EventFilter) ([]airlock.Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$", fmt.Sprintf("?%d", len(args))))
	}
	if f.AfterSeq > 0 {
		add("seq > $", f.AfterSeq)
	}
	if !f.Since.IsZero() {
		add("time >= $", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		add("time < $", f.Until.UnixMicro())
	}
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		if prefix != "" {
			add("substr(action, 1, length($)) = $", prefix)
		}
	} else if f.Action != "" {
		add("action = $", f.Action)
	}
	if f.ActorName != "" {
		add("actor_name = $", f.ActorName)
	}
	if f.Resource != "" {
		add("resource = $", f.Resource)
	}
	if f.SessionID != "" {
		add("session_id = $", f.SessionID)
	}
	if f.GrantID != "" {
		add("grant_id = $", f.GrantID)
	}
	order := " ORDER BY seq"
	if f.Desc {
		order += " DESC"
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events`+whereClause(where)+order+limit(f.Limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []airlock.Event
	for rows.Next() {
		var e airlock.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ScanEvents calls fn for each event with seq > afterSeq in order. It reads
// pages of scanPage events, so memory stays bounded and no read
// transaction is held while fn runs.
func (db *DB) ScanEvents(ctx context.Context, afterSeq int64, fn func(airlock.Event) error) error {
	page := make([]airlock.Event, 0, scanPage)
	for {
		page = page[:0]
		rows, err := db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, scanPage)
		if err != nil {
			return err
		}
		for rows.Next() {
			var e airlock.Event
			if err := scanEvent(rows, &e); err != nil {
				rows.Close()
				return err
			}
			page = append(page, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			afterSeq = e.Seq
		}
		if len(page) < scanPage {
			return nil
		}
	}
}

// AddCheckpoint stores c. ECONFLICT if a checkpoint with the same seq and
// key already exists.
func (db *DB) AddCheckpoint(ctx context.Context, c *airlock.Checkpoint) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO checkpoints (seq, hash, time, key_id, signature) VALUES (?,?,?,?,?)`,
		c.Seq, c.Hash, tm(c.Time), c.KeyID, c.Signature)
	return writeErr(err, fmt.Sprintf("checkpoint at seq %d with key %q already exists", c.Seq, c.KeyID), "")
}

// ListCheckpoints returns all checkpoints ordered by seq.
func (db *DB) ListCheckpoints(ctx context.Context) ([]airlock.Checkpoint, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT seq, hash, time, key_id, signature FROM checkpoints ORDER BY seq, key_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []airlock.Checkpoint
	for rows.Next() {
		var c airlock.Checkpoint
		if err := rows.Scan(&c.Seq, &c.Hash, st(&c.Time), &c.KeyID, &c.Signature); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
