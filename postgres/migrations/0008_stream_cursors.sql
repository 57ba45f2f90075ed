-- SIEM streams (audit/stream): per sink, the last audit seq its sink
-- acknowledged, and the lease that lets one server at a time stream to it.
-- Stands alone: it references no other table.
CREATE TABLE stream_cursors (
	sink        TEXT PRIMARY KEY,
	seq         BIGINT NOT NULL DEFAULT 0,
	holder      TEXT NOT NULL DEFAULT '',
	lease_until timestamptz
);
