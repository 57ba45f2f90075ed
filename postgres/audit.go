package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/jackc/pgx/v5"
)

var eventColumns = []string{"seq", "time", "actor_id", "actor_name", "action", "resource", "request_id", "grant_id", "session_id",
	"source_addr", "outcome", "details", "prev_hash", "hash"}

var eventCols = strings.Join(eventColumns, ", ")

// scanPage is how many events ScanEvents reads per query.
const scanPage = 10000

// copyThreshold is the batch size from which COPY beats a multi-row INSERT.
const copyThreshold = 32

// AppendEvents runs build with the head of the chain while holding the
// row lock on audit_head (SELECT … FOR UPDATE, so appenders in every
// process queue), stores the events it returns with COPY in the same
// transaction, moves the head and commits. EINVALID if build's events do
// not continue the chain's sequence.
func (db *DB) AppendEvents(ctx context.Context, build func(head airlock.AuditHead) ([]airlock.Event, error)) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log unavailable", err)
	}
	defer tx.Rollback(context.Background())
	var head airlock.AuditHead
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&head.Seq, &head.Hash); err != nil {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log unavailable", fmt.Errorf("lock audit head: %w", err))
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
	row := func(e *airlock.Event) []any {
		var details any
		if e.Details != nil {
			details = string(e.Details)
		}
		return []any{e.Seq, tm(e.Time), e.Actor.ID, e.Actor.Name, e.Action, e.Resource, e.RequestID, e.GrantID, e.SessionID,
			e.SourceAddr, e.Outcome, details, e.PrevHash, e.Hash}
	}
	if len(evs) >= copyThreshold {
		i := 0
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(evs) {
				return nil, nil
			}
			i++
			return row(&evs[i-1]), nil
		}))
	} else {
		var b strings.Builder
		args := make([]any, 0, len(evs)*len(eventColumns))
		b.WriteString(`INSERT INTO events (` + eventCols + `) VALUES `)
		for i := range evs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range eventColumns {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "$%d", len(args)+j+1)
			}
			b.WriteByte(')')
			args = append(args, row(&evs[i])...)
		}
		_, err = tx.Exec(ctx, b.String(), args...)
	}
	if err != nil {
		return writeErr(fmt.Errorf("append audit events: %w", err), "audit sequence number already used", "")
	}
	last := evs[len(evs)-1]
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, last.Seq, last.Hash); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log unavailable", err)
	}
	return nil
}

// AuditHead returns the last event's seq and hash (zero for an empty log).
func (db *DB) AuditHead(ctx context.Context) (airlock.AuditHead, error) {
	var h airlock.AuditHead
	err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash)
	return h, err
}

func scanEvent(s scanner, e *airlock.Event) error {
	var details *string
	if err := s.Scan(&e.Seq, st(&e.Time), &e.Actor.ID, &e.Actor.Name, &e.Action, &e.Resource, &e.RequestID, &e.GrantID,
		&e.SessionID, &e.SourceAddr, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
		return err
	}
	if details != nil {
		e.Details = json.RawMessage(*details)
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
		where = append(where, strings.ReplaceAll(cond, "$", fmt.Sprintf("$%d", len(args))))
	}
	if f.AfterSeq > 0 {
		add("seq > $", f.AfterSeq)
	}
	if !f.Since.IsZero() {
		add("time >= $", tm(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < $", tm(f.Until))
	}
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		if prefix != "" {
			add("starts_with(action, $::text)", prefix)
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
	rows, err := db.pool.Query(ctx, `SELECT `+eventCols+` FROM events`+whereClause(where)+order+limit(f.Limit), args...)
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
// pages of scanPage events by seq, so memory stays bounded and no
// connection is held while fn runs.
func (db *DB) ScanEvents(ctx context.Context, afterSeq int64, fn func(airlock.Event) error) error {
	page := make([]airlock.Event, 0, scanPage)
	for {
		page = page[:0]
		rows, err := db.pool.Query(ctx, `SELECT `+eventCols+` FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, scanPage)
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
		rows.Close()
		if err := rows.Err(); err != nil {
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
	_, err := db.pool.Exec(ctx, `INSERT INTO checkpoints (seq, hash, time, key_id, signature) VALUES ($1,$2,$3,$4,$5)`,
		c.Seq, c.Hash, tm(c.Time), c.KeyID, c.Signature)
	return writeErr(err, fmt.Sprintf("checkpoint at seq %d with key %q already exists", c.Seq, c.KeyID), "")
}

// ListCheckpoints returns all checkpoints ordered by seq.
func (db *DB) ListCheckpoints(ctx context.Context) ([]airlock.Checkpoint, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, hash, time, key_id, signature FROM checkpoints ORDER BY seq, key_id COLLATE "C"`)
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
