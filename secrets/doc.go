// Package secrets keeps secrets out of logs and encrypts them at rest.
//
// Secret is a string type that redacts itself everywhere it could leak by
// accident (fmt verbs, JSON, text marshalling, log/slog); only Reveal returns
// the value.
//
// Keyring does envelope encryption with AES-256-GCM from the standard
// library: every Seal draws a fresh random 256-bit data key, encrypts the
// plaintext under it, and wraps the data key under the current master key.
// The sealed blob names the master key by id, so master keys can rotate:
// a Keyring holding old ids still opens blobs sealed under them.
//
// Blob layout (version 1), all integers big-endian:
//
//	byte    version (0x01)
//	byte    n = len(key id), 1..255
//	n bytes key id
//	12      nonce of the wrapped data key
//	48      wrapped data key (32-byte key + 16-byte GCM tag)
//	12      nonce of the payload
//	rest    payload ciphertext + 16-byte GCM tag
//
// The wrapped data key is authenticated with additional data
// "airlock-secrets-v1\x00" + version + id; the payload with the same
// header bytes (everything before the payload nonce, i.e. version, id and
// the wrapped key) followed by the caller's aad. So changing any byte of a
// blob, or opening it under another aad (for example a credential sealed for
// "resource:prod-db:read" opened as "resource:prod-db:write"), fails.
//
// Errors never contain key material, plaintext or the blob.
package secrets
