-- Audit events are stored as blocks: one row per group commit holding the
-- events of that commit encoded as one blob (internal/eventblock), instead
-- of a row, fourteen columns and two index entries per event.
CREATE TABLE event_blocks (
	first_seq bigint PRIMARY KEY,
	last_seq  bigint NOT NULL,
	min_time  bigint NOT NULL, -- unix µs of the block's earliest event
	max_time  bigint NOT NULL,
	data      bytea NOT NULL
);

-- Which blocks hold events of a session ('s:' || session_id) or a grant
-- ('g:' || grant_id).
CREATE TABLE event_keys (
	key       text NOT NULL,
	first_seq bigint NOT NULL,
	PRIMARY KEY (key, first_seq)
);

-- The rows of the old events table are moved into blocks by the Go step
-- of this migration (postgres/migrate.go), which then drops the table.
