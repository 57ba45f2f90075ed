package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/airlockhq/airlock"
)

// Params are argon2id cost parameters. Memory is in KiB.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultParams returns Airlock's argon2id parameters: 64 MiB of memory,
// 3 passes, 2 lanes, a 16-byte salt and a 32-byte key. This is above the
// OWASP Password Storage Cheat Sheet minimum (19 MiB, t=2, p=1) and close to
// RFC 9106's second recommended option (64 MiB, t=3); see docs/mfa.md.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Iterations: 3, Parallelism: 2, SaltLen: 16, KeyLen: 32}
}

// Limits a PHC string must respect before any work is done for it, so a
// corrupt or hostile stored hash cannot make Verify allocate gigabytes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxIter      = 64
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	maxPHCLen    = 512
)

// ErrPHC is wrapped by every error ParsePHC returns.
var ErrPHC = errors.New("auth: malformed argon2id hash")

// ParsePHC parses an argon2id PHC string
// "$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>" (salt and hash in unpadded
// standard base64). It returns the parameters (SaltLen and KeyLen taken from
// the decoded values), the salt and the key. Any deviation is an error
// wrapping ErrPHC.
func ParsePHC(encoded string) (p Params, salt, key []byte, err error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrPHC, why)
	}
	if len(encoded) > maxPHCLen {
		return bad("too long")
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want 5 fields")
	}
	if parts[1] != "argon2id" {
		return bad("not argon2id")
	}
	if parts[2] != "v=19" {
		return bad("unsupported version")
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("want m,t,p")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
			return bad("bad parameter " + name)
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return bad("bad parameter " + name)
		}
		vals[i] = n
	}
	m, t, par := vals[0], vals[1], vals[2]
	if par < 1 || par > 255 || t < 1 || t > maxIter || m > maxMemoryKiB || m < 8*par {
		return bad("parameter out of range")
	}
	salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("bad salt")
	}
	key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("bad hash")
	}
	p = Params{Memory: uint32(m), Iterations: uint32(t), Parallelism: uint8(par), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

// EncodePHC returns the PHC string for p, salt and key.
func EncodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Hasher hashes and verifies passwords with argon2id. At most `workers`
// derivations run at once (each holds Params.Memory KiB); further callers
// wait for a slot until their context is done, so a password spray queues
// instead of taking every core and all memory. A Hasher is safe for
// concurrent use.
type Hasher struct {
	params Params
	slots  chan struct{}
	// kdf is argon2.IDKey; tests replace it to observe concurrency.
	kdf func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte

	dummyOnce sync.Once
	dummy     string
}

// NewHasher returns a Hasher that hashes new passwords with p and runs at
// most workers derivations at once; workers <= 0 means GOMAXPROCS.
func NewHasher(p Params, workers int) *Hasher {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: p, slots: make(chan struct{}, workers), kdf: argon2.IDKey}
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// derive runs one argon2id derivation in a worker slot. It returns
// EUNAVAILABLE if ctx ends before a slot frees up.
func (h *Hasher) derive(ctx context.Context, password string, p Params, salt []byte) ([]byte, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, airlock.WrapError(airlock.EUNAVAILABLE, "server busy, try again", ctx.Err())
	}
	defer func() { <-h.slots }()
	return h.kdf([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen), nil
}

// Hash returns the PHC string of password with a fresh random salt.
// Errors: EUNAVAILABLE when ctx ends while waiting for a worker.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key, err := h.derive(ctx, password, h.params, salt)
	if err != nil {
		return "", err
	}
	return EncodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, comparing in constant
// time. The parameters stored in encoded are used (see NeedsRehash).
// A wrong password is (false, nil). Errors: EINTERNAL wrapping ErrPHC for a
// malformed stored hash; EUNAVAILABLE when ctx ends while waiting.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := ParsePHC(encoded)
	if err != nil {
		return false, airlock.WrapError(airlock.EINTERNAL, "stored password hash is unreadable", err)
	}
	got, err := h.derive(ctx, password, p, salt)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was made with parameters other than
// the Hasher's (the caller rehashes after a successful login).
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := ParsePHC(encoded)
	if err != nil {
		return true
	}
	return p != h.params
}

// DummyVerify burns the same work as Verify against a fixed hash made with
// the Hasher's parameters, so "no such user" (or an SSO user without a
// password) takes as long as "wrong password". Its result is discarded.
func (h *Hasher) DummyVerify(ctx context.Context, password string) {
	h.dummyOnce.Do(func() {
		salt := make([]byte, h.params.SaltLen)
		key := make([]byte, h.params.KeyLen)
		_, _ = rand.Read(salt)
		_, _ = rand.Read(key)
		h.dummy = EncodePHC(h.params, salt, key)
	})
	_, _ = h.Verify(ctx, h.dummy, password)
}

// Password policy bounds.
const (
	MinPasswordChars = 12
	MaxPasswordBytes = 1024
)

// CheckPassword enforces the password policy for new passwords: at least
// MinPasswordChars characters, at most MaxPasswordBytes bytes, valid UTF-8.
// Errors: EINVALID.
func CheckPassword(pw string) error {
	switch {
	case len(pw) > MaxPasswordBytes:
		return airlock.Errorf(airlock.EINVALID, "password is longer than %d bytes", MaxPasswordBytes)
	case !utf8.ValidString(pw):
		return airlock.Errorf(airlock.EINVALID, "password is not valid UTF-8")
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return airlock.Errorf(airlock.EINVALID, "password must be at least %d characters", MinPasswordChars)
	}
	return nil
}
