package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
)

// CheckpointMessage returns the bytes a checkpoint's signature covers:
//
//	"airlock-checkpoint-v1\n" + seq (decimal) + "\n" + hash + "\n" + time
//
// where time is in UTC, truncated to microseconds, formatted RFC 3339 with
// nanoseconds (time.RFC3339Nano, so trailing zeros are dropped).
func CheckpointMessage(seq int64, hash string, t time.Time) []byte {
	b := make([]byte, 0, 22+20+1+len(hash)+1+35)
	b = append(b, "airlock-checkpoint-v1\n"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '\n')
	b = append(b, hash...)
	b = append(b, '\n')
	return eventTime(t).AppendFormat(b, time.RFC3339Nano)
}

// CheckpointMessageV2 returns the bytes a version 2 checkpoint's signature
// covers: the chain head and the RFC 9162 tree head of the same events,
//
//	"airlock-checkpoint-v2\n" + seq (decimal; also the tree size) + "\n" +
//	hash + "\n" + root (hex) + "\n" + time
//
// with time as in CheckpointMessage.
func CheckpointMessageV2(seq int64, hash, root string, t time.Time) []byte {
	b := make([]byte, 0, 22+20+1+len(hash)+1+len(root)+1+35)
	b = append(b, "airlock-checkpoint-v2\n"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '\n')
	b = append(b, hash...)
	b = append(b, '\n')
	b = append(b, root...)
	b = append(b, '\n')
	return eventTime(t).AppendFormat(b, time.RFC3339Nano)
}

// checkpointMessage is the message c's signature covers: version 2 when c
// names a root, else version 1.
func checkpointMessage(c airlock.Checkpoint) []byte {
	if c.Root != "" {
		return CheckpointMessageV2(c.Seq, c.Hash, c.Root, c.Time)
	}
	return CheckpointMessage(c.Seq, c.Hash, c.Time)
}

// SignTreeCheckpoint returns a version 2 checkpoint: the chain head (seq,
// hash) and the Merkle root (hex) of the first seq events, at time t,
// signed by priv.
func SignTreeCheckpoint(priv ed25519.PrivateKey, keyID string, seq int64, hash, root string, t time.Time) airlock.Checkpoint {
	t = eventTime(t)
	sig := ed25519.Sign(priv, CheckpointMessageV2(seq, hash, root, t))
	return airlock.Checkpoint{Seq: seq, Hash: hash, Root: root, Time: t, KeyID: keyID, Signature: base64.StdEncoding.EncodeToString(sig)}
}

// SignCheckpoint returns a chain-only (version 1) checkpoint of the chain
// head (seq, hash) at time t signed by priv. t is stored in UTC truncated
// to microseconds; keyID names the key for verifiers (see KeyID). The log
// writes version 2 (SignTreeCheckpoint); version 1 is what older stores
// hold, and still verifies.
func SignCheckpoint(priv ed25519.PrivateKey, keyID string, seq int64, hash string, t time.Time) airlock.Checkpoint {
	t = eventTime(t)
	sig := ed25519.Sign(priv, CheckpointMessage(seq, hash, t))
	return airlock.Checkpoint{
		Seq:       seq,
		Hash:      hash,
		Time:      t,
		KeyID:     keyID,
		Signature: base64.StdEncoding.EncodeToString(sig),
	}
}

// VerifyCheckpoint reports whether c carries a valid signature by pub,
// over the version 2 message when c names a root and version 1 otherwise
// (removing the root of a version 2 checkpoint breaks its signature).
func VerifyCheckpoint(pub ed25519.PublicKey, c airlock.Checkpoint) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	if c.Root != "" && !isHexHash(c.Root) {
		return false
	}
	return ed25519.Verify(pub, checkpointMessage(c), sig)
}

// isHexHash reports whether s is 64 lower-case hex digits.
func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// KeyID returns the default key id of a checkpoint key: the first 16 hex
// digits of SHA-256 of the raw public key.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// MarshalPublicKey returns pub as a PEM "PUBLIC KEY" block (PKIX), the
// format of the file given to "airlock audit verify --pubkey".
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only reachable with a key of the wrong length.
		panic(fmt.Sprintf("audit: marshal public key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey parses a PEM "PUBLIC KEY" block (PKIX) holding an ed25519
// key, as written by MarshalPublicKey.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "audit public key: no PEM block found (want -----BEGIN PUBLIC KEY-----)")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, airlock.Errorf(airlock.EINVALID, "audit public key: PEM block is %q, want PUBLIC KEY", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, airlock.WrapError(airlock.EINVALID, "audit public key: not a PKIX public key", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, airlock.Errorf(airlock.EINVALID, "audit public key: %T is not an ed25519 key", k)
	}
	return pub, nil
}

// MarshalPrivateKey returns priv as a PEM "PRIVATE KEY" block (PKCS #8).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("audit: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey parses a PEM "PRIVATE KEY" block (PKCS #8) holding an
// ed25519 key, as written by MarshalPrivateKey. Errors never include key bytes.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("audit signing key: want a PEM PRIVATE KEY block (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("audit signing key: not a PKCS #8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit signing key: %T is not an ed25519 key", k)
	}
	return priv, nil
}
