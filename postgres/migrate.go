package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/eventblock"
	"github.com/airlockhq/airlock/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// goMigrations are steps that run in Go right after the SQL migration of
// the same version, in the same transaction.
var goMigrations = map[int]func(context.Context, pgx.Tx) error{
	2: moveEventsToBlocks,
}

// moveEventsToBlocks moves the rows of the version-1 events table (one row
// per event) into event blocks, unchanged, and drops the table.
func moveEventsToBlocks(ctx context.Context, tx pgx.Tx) error {
	// Page through the rows; blocks hold runs of consecutive seqs, and a
	// gap (a damaged log) starts a new block so that verify still sees it.
	after := int64(-1 << 62)
	for {
		evs, err := readEventRows(ctx, tx, after)
		if err != nil {
			return fmt.Errorf("read event rows: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		after = evs[len(evs)-1].Seq
		var b pgx.Batch
		eventblock.Runs(evs, func(run []airlock.Event) error {
			queueBlocks(&b, run)
			return nil
		})
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `DROP TABLE events`)
	return err
}

// readEventRows reads up to blockEvents rows of the version-1 events table
// with seq > after.
func readEventRows(ctx context.Context, tx pgx.Tx, after int64) ([]airlock.Event, error) {
	rows, err := tx.Query(ctx, `SELECT seq, time, actor_id, actor_name, action, resource, request_id, grant_id,
		session_id, source_addr, outcome, details, prev_hash, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, after, blockEvents)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []airlock.Event
	for rows.Next() {
		var e airlock.Event
		var details *string
		if err := rows.Scan(&e.Seq, sqlstore.Time(&e.Time), &e.Actor.ID, &e.Actor.Name, &e.Action, &e.Resource, &e.RequestID, &e.GrantID,
			&e.SessionID, &e.SourceAddr, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		if details != nil {
			e.Details = json.RawMessage(*details)
		}
		evs = append(evs, e)
	}
	return evs, rows.Err()
}
