package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/eventblock"
	"github.com/airlockhq/airlock/internal/sqlstore"
)

// goMigrations are steps that run in Go right after the SQL migration of
// the same version, in the same transaction.
var goMigrations = map[int]func(context.Context, *sql.Tx) error{
	2: moveEventsToBlocks,
	6: buildMerkleTree,
}

// moveEventsToBlocks moves the rows of the version-1 events table (one row
// per event) into event blocks, unchanged, and drops the table.
func moveEventsToBlocks(ctx context.Context, tx *sql.Tx) error {
	insBlock, err := tx.PrepareContext(ctx, insertBlockSQL)
	if err != nil {
		return err
	}
	defer insBlock.Close()
	insKey, err := tx.PrepareContext(ctx, insertKeySQL)
	if err != nil {
		return err
	}
	defer insKey.Close()
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
		if err := eventblock.Runs(evs, func(run []airlock.Event) error {
			return insertBlocks(ctx, insBlock, insKey, run)
		}); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE events`)
	return err
}

// readEventRows reads up to blockEvents rows of the version-1 events table
// with seq > after.
func readEventRows(ctx context.Context, tx *sql.Tx, after int64) ([]airlock.Event, error) {
	return list(ctx, tx, sqlstore.Stmt{SQL: sqlstore.OldEventsSQL, Args: []any{after, blockEvents}}, sqlstore.ScanOldEvent)
}
