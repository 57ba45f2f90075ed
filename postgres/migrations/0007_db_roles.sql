-- Ephemeral database roles made per grant (issue 18), and leases that
-- let one replica at a time reconcile them.
CREATE TABLE db_roles (
	grant_id   TEXT PRIMARY KEY,
	resource   TEXT NOT NULL,
	role       TEXT NOT NULL,
	password   bytea NOT NULL,
	created_at timestamptz NOT NULL,
	dropped_at timestamptz
);
CREATE INDEX db_roles_live ON db_roles (created_at) WHERE dropped_at IS NULL;
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at timestamptz NOT NULL
);
