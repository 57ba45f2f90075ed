-- Airlock store schema, version 1 (PostgreSQL).
-- Times are timestamptz; NULL is the zero time.
-- Slices and maps are JSON text.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL DEFAULT '',
	groups        TEXT NOT NULL DEFAULT '[]',
	disabled      boolean NOT NULL DEFAULT false,
	sso_subject   TEXT NOT NULL DEFAULT '',
	created_at    timestamptz,
	updated_at    timestamptz
);
CREATE UNIQUE INDEX users_sso_subject ON users (sso_subject) WHERE sso_subject <> '';

CREATE TABLE factors (
	pos bigint GENERATED ALWAYS AS IDENTITY,
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL DEFAULT '',
	secret       bytea,
	data         bytea,
	counter      bigint NOT NULL DEFAULT 0,
	created_at   timestamptz,
	last_used_at timestamptz
);
CREATE INDEX factors_user ON factors (user_id, created_at, pos);

CREATE TABLE login_sessions (
	id           TEXT PRIMARY KEY,
	token_hash   bytea NOT NULL UNIQUE,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at   timestamptz,
	last_seen_at timestamptz,
	expires_at   timestamptz,
	mfa_at       timestamptz,
	mfa_method   TEXT NOT NULL DEFAULT '',
	source_addr  TEXT NOT NULL DEFAULT '',
	revoked_at   timestamptz
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE resources (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	kind        TEXT NOT NULL,
	addr        TEXT NOT NULL DEFAULT '',
	labels      TEXT NOT NULL DEFAULT '{}',
	credentials TEXT NOT NULL DEFAULT '{}',
	options     bytea,
	source      TEXT NOT NULL DEFAULT '',
	created_at  timestamptz
);

CREATE TABLE policies (
	version    bigint PRIMARY KEY,
	document   bytea,
	applied_by TEXT NOT NULL DEFAULT '',
	applied_at timestamptz,
	sha256     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE requests (
	pos bigint GENERATED ALWAYS AS IDENTITY,
	id                 TEXT PRIMARY KEY,
	user_id            TEXT NOT NULL,
	user_name          TEXT NOT NULL DEFAULT '',
	resource           TEXT NOT NULL,
	access             TEXT NOT NULL DEFAULT '',
	duration           bigint NOT NULL DEFAULT 0,
	reason             TEXT NOT NULL DEFAULT '',
	ticket             TEXT NOT NULL DEFAULT '',
	start_at           timestamptz,
	state              TEXT NOT NULL,
	rule               TEXT NOT NULL DEFAULT '',
	required_approvals bigint NOT NULL DEFAULT 0,
	approver_groups    TEXT NOT NULL DEFAULT '[]',
	break_glass        boolean NOT NULL DEFAULT false,
	extends_grant_id   TEXT NOT NULL DEFAULT '',
	grant_id           TEXT NOT NULL DEFAULT '',
	policy_version     bigint NOT NULL DEFAULT 0,
	created_at         timestamptz,
	expires_at         timestamptz,
	decided_at         timestamptz
);
CREATE INDEX requests_created ON requests (created_at, pos);
CREATE INDEX requests_user ON requests (user_id, created_at);
CREATE INDEX requests_state ON requests (state, created_at);

CREATE TABLE reviews (
	pos bigint GENERATED ALWAYS AS IDENTITY,
	request_id    TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
	reviewer_id   TEXT NOT NULL,
	reviewer_name TEXT NOT NULL DEFAULT '',
	decision      TEXT NOT NULL,
	comment       TEXT NOT NULL DEFAULT '',
	mfa_method    TEXT NOT NULL DEFAULT '',
	created_at    timestamptz,
	PRIMARY KEY (request_id, reviewer_id)
);

CREATE TABLE grants (
	pos bigint GENERATED ALWAYS AS IDENTITY,
	id            TEXT PRIMARY KEY,
	request_id    TEXT NOT NULL DEFAULT '',
	user_id       TEXT NOT NULL,
	user_name     TEXT NOT NULL DEFAULT '',
	resource      TEXT NOT NULL,
	access        TEXT NOT NULL DEFAULT '',
	starts_at     timestamptz,
	ends_at       timestamptz,
	state         TEXT NOT NULL,
	mfa_method    TEXT NOT NULL DEFAULT '',
	break_glass   boolean NOT NULL DEFAULT false,
	acked_by      TEXT NOT NULL DEFAULT '',
	acked_at      timestamptz,
	revoked_at    timestamptz,
	revoked_by    TEXT NOT NULL DEFAULT '',
	revoke_reason TEXT NOT NULL DEFAULT '',
	created_at    timestamptz
);
-- Exactly one grant per request.
CREATE UNIQUE INDEX grants_request ON grants (request_id) WHERE request_id <> '';
CREATE INDEX grants_created ON grants (created_at, pos);
CREATE INDEX grants_user ON grants (user_id, created_at);
CREATE INDEX grants_active ON grants (ends_at) WHERE state = 'active';

CREATE TABLE connect_tokens (
	token_hash bytea PRIMARY KEY,
	user_id    TEXT NOT NULL,
	grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
	resource   TEXT NOT NULL DEFAULT '',
	expires_at timestamptz,
	uses_left  bigint NOT NULL DEFAULT 0,
	created_at timestamptz
);
CREATE INDEX connect_tokens_grant ON connect_tokens (grant_id);

CREATE TABLE sessions (
	pos bigint GENERATED ALWAYS AS IDENTITY,
	id               TEXT PRIMARY KEY,
	grant_id         TEXT NOT NULL,
	user_id          TEXT NOT NULL,
	user_name        TEXT NOT NULL DEFAULT '',
	resource         TEXT NOT NULL DEFAULT '',
	kind             TEXT NOT NULL DEFAULT '',
	access           TEXT NOT NULL DEFAULT '',
	source_addr      TEXT NOT NULL DEFAULT '',
	node             TEXT NOT NULL DEFAULT '',
	started_at       timestamptz,
	ended_at         timestamptz,
	end_reason       TEXT NOT NULL DEFAULT '',
	bytes_in         bigint NOT NULL DEFAULT 0,
	bytes_out        bigint NOT NULL DEFAULT 0,
	statements       bigint NOT NULL DEFAULT 0,
	recording        TEXT NOT NULL DEFAULT '',
	recording_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_started ON sessions (started_at, pos);
CREATE INDEX sessions_grant ON sessions (grant_id);
CREATE INDEX sessions_user ON sessions (user_id, started_at);
CREATE INDEX sessions_active ON sessions (started_at) WHERE ended_at IS NULL;

CREATE TABLE events (
	seq         bigint PRIMARY KEY,
	time        timestamptz,
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
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE checkpoints (
	seq       bigint NOT NULL,
	hash      TEXT NOT NULL,
	time      timestamptz,
	key_id    TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (seq, key_id)
);

CREATE TABLE kv (
	key        TEXT PRIMARY KEY,
	value      bytea,
	expires_at timestamptz
);
