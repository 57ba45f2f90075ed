-- Attempt counters shared by every replica (login throttling, push rate
-- limits): one row per key and fixed window.
CREATE TABLE throttles (
	key          TEXT PRIMARY KEY,
	count        integer NOT NULL,
	window_start timestamptz NOT NULL,
	last_at      timestamptz NOT NULL,
	prev_at      timestamptz,
	expires_at   timestamptz NOT NULL
);
CREATE INDEX throttles_expires ON throttles (expires_at);
