-- Airlock store schema, version 1 (SQLite).
-- Times are INTEGER unix microseconds in UTC; NULL is the zero time.
-- Slices and maps are JSON text.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL DEFAULT '',
	groups        TEXT NOT NULL DEFAULT '[]',
	disabled      INTEGER NOT NULL DEFAULT 0,
	sso_subject   TEXT NOT NULL DEFAULT '',
	created_at    INTEGER,
	updated_at    INTEGER
);
CREATE UNIQUE INDEX users_sso_subject ON users (sso_subject) WHERE sso_subject <> '';

CREATE TABLE factors (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL DEFAULT '',
	secret       BLOB,
	data         BLOB,
	counter      INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER,
	last_used_at INTEGER
);
CREATE INDEX factors_user ON factors (user_id, created_at);

CREATE TABLE login_sessions (
	id           TEXT PRIMARY KEY,
	token_hash   BLOB NOT NULL UNIQUE,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at   INTEGER,
	last_seen_at INTEGER,
	expires_at   INTEGER,
	mfa_at       INTEGER,
	mfa_method   TEXT NOT NULL DEFAULT '',
	source_addr  TEXT NOT NULL DEFAULT '',
	revoked_at   INTEGER
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE resources (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	kind        TEXT NOT NULL,
	addr        TEXT NOT NULL DEFAULT '',
	labels      TEXT NOT NULL DEFAULT '{}',
	credentials TEXT NOT NULL DEFAULT '{}',
	options     BLOB,
	source      TEXT NOT NULL DEFAULT '',
	created_at  INTEGER
);

CREATE TABLE policies (
	version    INTEGER PRIMARY KEY,
	document   BLOB,
	applied_by TEXT NOT NULL DEFAULT '',
	applied_at INTEGER,
	sha256     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE requests (
	id                 TEXT PRIMARY KEY,
	user_id            TEXT NOT NULL,
	user_name          TEXT NOT NULL DEFAULT '',
	resource           TEXT NOT NULL,
	access             TEXT NOT NULL DEFAULT '',
	duration           INTEGER NOT NULL DEFAULT 0,
	reason             TEXT NOT NULL DEFAULT '',
	ticket             TEXT NOT NULL DEFAULT '',
	start_at           INTEGER,
	state              TEXT NOT NULL,
	rule               TEXT NOT NULL DEFAULT '',
	required_approvals INTEGER NOT NULL DEFAULT 0,
	approver_groups    TEXT NOT NULL DEFAULT '[]',
	break_glass        INTEGER NOT NULL DEFAULT 0,
	extends_grant_id   TEXT NOT NULL DEFAULT '',
	grant_id           TEXT NOT NULL DEFAULT '',
	policy_version     INTEGER NOT NULL DEFAULT 0,
	created_at         INTEGER,
	expires_at         INTEGER,
	decided_at         INTEGER
);
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_user ON requests (user_id, created_at);
CREATE INDEX requests_state ON requests (state, created_at);

CREATE TABLE reviews (
	request_id    TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
	reviewer_id   TEXT NOT NULL,
	reviewer_name TEXT NOT NULL DEFAULT '',
	decision      TEXT NOT NULL,
	comment       TEXT NOT NULL DEFAULT '',
	mfa_method    TEXT NOT NULL DEFAULT '',
	created_at    INTEGER,
	PRIMARY KEY (request_id, reviewer_id)
);

CREATE TABLE grants (
	id            TEXT PRIMARY KEY,
	request_id    TEXT NOT NULL DEFAULT '',
	user_id       TEXT NOT NULL,
	user_name     TEXT NOT NULL DEFAULT '',
	resource      TEXT NOT NULL,
	access        TEXT NOT NULL DEFAULT '',
	starts_at     INTEGER,
	ends_at       INTEGER,
	state         TEXT NOT NULL,
	mfa_method    TEXT NOT NULL DEFAULT '',
	break_glass   INTEGER NOT NULL DEFAULT 0,
	acked_by      TEXT NOT NULL DEFAULT '',
	acked_at      INTEGER,
	revoked_at    INTEGER,
	revoked_by    TEXT NOT NULL DEFAULT '',
	revoke_reason TEXT NOT NULL DEFAULT '',
	created_at    INTEGER
);
-- Exactly one grant per request.
CREATE UNIQUE INDEX grants_request ON grants (request_id) WHERE request_id <> '';
CREATE INDEX grants_created ON grants (created_at);
CREATE INDEX grants_user ON grants (user_id, created_at);
CREATE INDEX grants_active ON grants (ends_at) WHERE state = 'active';

CREATE TABLE connect_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
	resource   TEXT NOT NULL DEFAULT '',
	expires_at INTEGER,
	uses_left  INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER
);
CREATE INDEX connect_tokens_grant ON connect_tokens (grant_id);

CREATE TABLE sessions (
	id               TEXT PRIMARY KEY,
	grant_id         TEXT NOT NULL,
	user_id          TEXT NOT NULL,
	user_name        TEXT NOT NULL DEFAULT '',
	resource         TEXT NOT NULL DEFAULT '',
	kind             TEXT NOT NULL DEFAULT '',
	access           TEXT NOT NULL DEFAULT '',
	source_addr      TEXT NOT NULL DEFAULT '',
	node             TEXT NOT NULL DEFAULT '',
	started_at       INTEGER,
	ended_at         INTEGER,
	end_reason       TEXT NOT NULL DEFAULT '',
	bytes_in         INTEGER NOT NULL DEFAULT 0,
	bytes_out        INTEGER NOT NULL DEFAULT 0,
	statements       INTEGER NOT NULL DEFAULT 0,
	recording        TEXT NOT NULL DEFAULT '',
	recording_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_grant ON sessions (grant_id);
CREATE INDEX sessions_user ON sessions (user_id, started_at);
CREATE INDEX sessions_active ON sessions (started_at) WHERE ended_at IS NULL;

CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	time        INTEGER,
	actor_id    TEXT NOT NULL,
	actor_name  TEXT NOT NULL,
	action      TEXT NOT NULL,
	resource    TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	grant_id    TEXT NOT NULL,
	session_id  TEXT NOT NULL,
	source_addr TEXT NOT NULL,
	outcome     TEXT NOT NULL,
	details     TEXT,
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL
);
CREATE INDEX events_session ON events (session_id) WHERE session_id <> '';
CREATE INDEX events_grant ON events (grant_id) WHERE grant_id <> '';

-- The head of the chain: one row, locked by every append.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE checkpoints (
	seq       INTEGER NOT NULL,
	hash      TEXT NOT NULL,
	time      INTEGER,
	key_id    TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (seq, key_id)
);

CREATE TABLE kv (
	key        TEXT PRIMARY KEY,
	value      BLOB,
	expires_at INTEGER
);
