package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
)

// KeySize is the size in bytes of master and data keys (AES-256).
const KeySize = 32

const (
	version1  = 0x01
	nonceSize = 12
	tagSize   = 16
	wrapLen   = KeySize + tagSize
	wrapLabel = "airlock-secrets-v1\x00"
)

// Errors returned by Open. They never carry key material or plaintext.
var (
	// ErrMalformed means the blob is not a sealed secret this version knows.
	ErrMalformed = errors.New("secrets: malformed sealed blob")
	// ErrUnknownKey means the blob names a master key the keyring lacks.
	ErrUnknownKey = errors.New("secrets: sealed under an unknown master key")
	// ErrDecrypt means authentication failed: the blob was altered, or
	// opened with other additional data or a different key.
	ErrDecrypt = errors.New("secrets: cannot decrypt: wrong key, wrong context or tampered blob")
)

// Keyring holds master keys by id and seals under the current one. It is
// safe for concurrent use; it never changes after NewKeyring.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	// derive is the current key's derivation key (Derive), never the key.
	derive []byte
}

// NewKeyring returns a keyring that seals under keys[currentID] and opens
// blobs sealed under any key in keys. Every key must be KeySize bytes and
// every id 1..255 bytes. The key bytes are copied.
func NewKeyring(currentID string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[currentID]; !ok {
		return nil, fmt.Errorf("secrets: current master key id %q is not in the keyring", currentID)
	}
	k := &Keyring{current: currentID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if len(id) == 0 || len(id) > 255 {
			return nil, fmt.Errorf("secrets: master key id must be 1..255 bytes, got %d", len(id))
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("secrets: master key %q must be %d bytes, got %d", id, KeySize, len(key))
		}
		a, err := newGCM(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: master key %q: %w", id, err)
		}
		k.aeads[id] = a
		if id == currentID {
			m := hmac.New(sha256.New, key)
			m.Write([]byte("airlock-derive-v1\x00"))
			k.derive = m.Sum(nil)
		}
	}
	return k, nil
}

// Derive returns a 32-byte key for purpose, derived from the current
// master key (HMAC-SHA256 of a key derived from it, over purpose): the
// same on every server with the same current key, unrelated to the key
// and to the keys of other purposes. It changes when the current key is
// rotated.
func (k *Keyring) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.derive)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// CurrentID returns the id of the master key new blobs are sealed under.
func (k *Keyring) CurrentID() string { return k.current }

// IDs returns the ids of all master keys, sorted.
func (k *Keyring) IDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// GenerateKey returns a new random KeySize-byte key.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	return key, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// wrapAAD is the additional data of the wrapped data key.
func wrapAAD(header []byte) []byte {
	// header = version, n, id
	out := make([]byte, 0, len(wrapLabel)+len(header))
	out = append(out, wrapLabel...)
	return append(out, header...)
}

// Seal encrypts plaintext bound to aad under a fresh data key wrapped by the
// current master key, and returns the self-describing blob (see the package
// documentation). aad is not secret and is not stored: Open needs the same.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	master := k.aeads[k.current]
	dataKey := make([]byte, KeySize)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("secrets: seal: %w", err)
	}
	defer clear(dataKey)

	id := k.current
	blob := make([]byte, 0, 2+len(id)+nonceSize+wrapLen+nonceSize+len(plaintext)+tagSize)
	blob = append(blob, version1, byte(len(id)))
	blob = append(blob, id...)
	headerLen := len(blob)

	wrapNonce := blob[len(blob) : len(blob)+nonceSize]
	if _, err := rand.Read(wrapNonce); err != nil {
		return nil, fmt.Errorf("secrets: seal: %w", err)
	}
	blob = blob[:len(blob)+nonceSize]
	blob = master.Seal(blob, wrapNonce, dataKey, wrapAAD(blob[:headerLen]))

	payloadAAD := make([]byte, 0, len(blob)+len(aad))
	payloadAAD = append(payloadAAD, blob...)
	payloadAAD = append(payloadAAD, aad...)

	data, err := newGCM(dataKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: seal: %w", err)
	}
	dataNonce := blob[len(blob) : len(blob)+nonceSize]
	if _, err := rand.Read(dataNonce); err != nil {
		return nil, fmt.Errorf("secrets: seal: %w", err)
	}
	blob = blob[:len(blob)+nonceSize]
	return data.Seal(blob, dataNonce, plaintext, payloadAAD), nil
}

// Open returns the plaintext of a blob made by Seal with the same aad. It
// returns ErrMalformed, ErrUnknownKey or ErrDecrypt (possibly wrapped);
// errors never contain key material, plaintext or blob bytes.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != version1 {
		return nil, ErrMalformed
	}
	n := int(sealed[1])
	headerLen := 2 + n
	if n == 0 || len(sealed) < headerLen+nonceSize+wrapLen+nonceSize+tagSize {
		return nil, ErrMalformed
	}
	master, ok := k.aeads[string(sealed[2:headerLen])]
	if !ok {
		return nil, ErrUnknownKey
	}
	p := headerLen
	wrapNonce := sealed[p : p+nonceSize]
	p += nonceSize
	wrapped := sealed[p : p+wrapLen]
	p += wrapLen
	dataKey, err := master.Open(nil, wrapNonce, wrapped, wrapAAD(sealed[:headerLen]))
	if err != nil {
		return nil, ErrDecrypt
	}
	defer clear(dataKey)
	data, err := newGCM(dataKey)
	if err != nil {
		return nil, ErrDecrypt
	}
	payloadAAD := make([]byte, 0, p+len(aad))
	payloadAAD = append(payloadAAD, sealed[:p]...)
	payloadAAD = append(payloadAAD, aad...)
	dataNonce := sealed[p : p+nonceSize]
	p += nonceSize
	plain, err := data.Open(nil, dataNonce, sealed[p:], payloadAAD)
	if err != nil {
		return nil, ErrDecrypt
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

// KeyID returns the id of the master key a blob was sealed under, so
// callers can find blobs to re-seal after a rotation.
func KeyID(sealed []byte) (string, error) {
	if len(sealed) < 2 || sealed[0] != version1 {
		return "", ErrMalformed
	}
	n := int(sealed[1])
	if n == 0 || len(sealed) < 2+n+nonceSize+wrapLen+nonceSize+tagSize {
		return "", ErrMalformed
	}
	return string(sealed[2 : 2+n]), nil
}
