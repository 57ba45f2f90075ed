-- The recordings of parts of a session (each Kubernetes exec or attach
-- with a terminal has its own), a JSON array of {id, sha256, title}.
ALTER TABLE sessions ADD COLUMN recordings TEXT NOT NULL DEFAULT '[]';
