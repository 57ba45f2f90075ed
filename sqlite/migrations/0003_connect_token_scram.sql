-- SCRAM-SHA-256 verifiers of connect tokens, so plaintext loopback clients
-- prove they hold a token without sending it.
ALTER TABLE connect_tokens ADD COLUMN scram_stored_key BLOB;
ALTER TABLE connect_tokens ADD COLUMN scram_server_key BLOB;
CREATE INDEX connect_tokens_user ON connect_tokens (user_id, resource);
