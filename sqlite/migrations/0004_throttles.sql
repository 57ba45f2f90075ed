-- Attempt counters shared by every process on the store (login
-- throttling, push rate limits): one row per key and fixed window.
-- Times are unix microseconds.
CREATE TABLE throttles (
	key          TEXT PRIMARY KEY,
	count        INTEGER NOT NULL,
	window_start INTEGER NOT NULL,
	last_at      INTEGER NOT NULL,
	prev_at      INTEGER,
	expires_at   INTEGER NOT NULL
);
CREATE INDEX throttles_expires ON throttles (expires_at);
