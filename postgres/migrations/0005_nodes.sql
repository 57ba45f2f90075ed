-- Heartbeats of running servers, so that the sessions of one that died
-- are ended (node_lost) by the others or by its next life.
CREATE TABLE nodes (
	name         TEXT PRIMARY KEY,
	identity     TEXT NOT NULL DEFAULT '',
	heartbeat_at timestamptz NOT NULL
);
CREATE INDEX nodes_identity ON nodes (identity);
CREATE INDEX sessions_node_active ON sessions (node) WHERE ended_at IS NULL;
