-- The audit log's RFC 9162 Merkle tree as tiles of up to 256 hashes (see
-- internal/tlog): level 0 holds leaf hashes, level L the roots of full
-- level L-1 tiles. A row is a run of a tile's hashes from position start:
-- a full tile is one run from 0; the right-most tile of a level, still
-- partial, one run per append that added to it.
CREATE TABLE merkle_tiles (
	level  integer NOT NULL,
	idx    bigint NOT NULL,
	start  integer NOT NULL,
	hashes bytea NOT NULL,
	PRIMARY KEY (level, idx, start)
);
-- The number of events the tree holds; equal to seq after every append.
ALTER TABLE audit_head ADD COLUMN tree_size bigint NOT NULL DEFAULT 0;
-- The Merkle root a version 2 checkpoint signs ('' for chain-only ones).
ALTER TABLE checkpoints ADD COLUMN root TEXT NOT NULL DEFAULT '';
