-- Audit events are stored as blocks: one row per group commit holding the
-- events of that commit encoded as one blob (internal/eventblock). One row
-- and one blob per commit instead of a row, fourteen columns and two index
-- entries per event is what lets the log keep up with the gateways.
CREATE TABLE event_blocks (
	first_seq INTEGER PRIMARY KEY,
	last_seq  INTEGER NOT NULL,
	min_time  INTEGER NOT NULL, -- unix µs of the block's earliest event
	max_time  INTEGER NOT NULL,
	data      BLOB NOT NULL
);

-- Which blocks hold events of a session ('s:' || session_id) or a grant
-- ('g:' || grant_id), so those lookups read only their blocks.
CREATE TABLE event_keys (
	key       TEXT NOT NULL,
	first_seq INTEGER NOT NULL,
	PRIMARY KEY (key, first_seq)
) WITHOUT ROWID;

-- The rows of the old events table are moved into blocks by the Go step
-- of this migration (sqlite/migrate.go), which then drops the table.
