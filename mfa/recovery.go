package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// Recovery codes are RecoveryCodes codes of 10 characters from Crockford's
// base32 alphabet (no i, l, o, u; 50 random bits each), shown as
// "xxxxx-xxxxx". Input is case-insensitive, ignores dashes and spaces, and
// reads o as 0 and i, l as 1.
const (
	RecoveryCodes     = 10
	recoveryCodeLen   = 10
	recoveryAlphabet  = "0123456789abcdefghjkmnpqrstvwxyz"
	recoverySaltBytes = 16
	recoveryName      = "recovery codes"
)

// recoveryData is the JSON in a recovery factor's Data: a per-set salt, the
// SHA-256 of salt||code for each code, and informational used flags. The
// authority on use is the factor's Counter, a bitmask of used indexes.
type recoveryData struct {
	Version int       `json:"v"`
	Salt    []byte    `json:"salt"`
	Hashes  [][]byte  `json:"hashes"`
	Used    []bool    `json:"used"`
	Created time.Time `json:"created"`
}

// Recovery generates and redeems one-time recovery codes. A user has at most
// one active set, stored as one factor of kind "recovery"; generating a new
// set voids the old one. A Recovery is safe for concurrent use.
type Recovery struct {
	store airlock.FactorStore
	now   func() time.Time
	// mu serialises redemptions in this process so that concurrent uses of
	// two different codes cannot overwrite each other's bit (see Use).
	mu sync.Mutex
}

// NewRecovery returns a Recovery backed by store. now nil means time.Now.
func NewRecovery(store airlock.FactorStore, now func() time.Time) *Recovery {
	if now == nil {
		now = time.Now
	}
	return &Recovery{store: store, now: now}
}

// Generate creates a new set of RecoveryCodes codes for userID, stores only
// their salted hashes, voids any previous set and returns the codes (show
// them once). Errors: store errors.
func (r *Recovery) Generate(ctx context.Context, userID string) ([]string, error) {
	d := recoveryData{Version: 1, Salt: make([]byte, recoverySaltBytes), Used: make([]bool, RecoveryCodes), Created: r.now().UTC()}
	if _, err := rand.Read(d.Salt); err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	codes := make([]string, RecoveryCodes)
	for i := range codes {
		raw := make([]byte, recoveryCodeLen)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("recovery codes: %w", err)
		}
		for j, b := range raw {
			raw[j] = recoveryAlphabet[b&31] // 256 is a multiple of 32: unbiased
		}
		codes[i] = string(raw[:5]) + "-" + string(raw[5:])
		d.Hashes = append(d.Hashes, recoveryHash(d.Salt, string(raw)))
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	old, err := r.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	f := &airlock.Factor{
		ID:        airlock.NewID("fa"),
		UserID:    userID,
		Kind:      airlock.FactorRecovery,
		Name:      recoveryName,
		Status:    airlock.FactorActive,
		Data:      data,
		CreatedAt: d.Created,
	}
	if err := r.store.CreateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	for _, o := range old {
		if o.Kind != airlock.FactorRecovery {
			continue
		}
		if err := r.store.DeleteFactor(ctx, o.ID); err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, fmt.Errorf("recovery codes: void old set: %w", err)
		}
	}
	return codes, nil
}

// Use redeems code for userID and returns how many codes remain unused.
// Each code works once; comparison is constant-time over the whole set.
// Errors: EUNAUTHORIZED with MsgInvalidCode for an unknown, malformed or
// used code and for a user without codes (see Reason); store errors.
func (r *Recovery) Use(ctx context.Context, userID, code string) (remaining int, err error) {
	norm, ok := normalizeRecovery(code)
	if !ok {
		return 0, codeRefused(ErrMalformedCode)
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	f, d, err := r.current(ctx, userID)
	if err != nil {
		return 0, err
	}
	h := recoveryHash(d.Salt, norm)
	idx := -1
	for i, want := range d.Hashes {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			idx = i
		}
	}
	if idx < 0 {
		return 0, codeRefused(ErrInvalidCode)
	}
	bit := int64(1) << idx
	now := r.now().UTC()
	// Counter is a bitmask; AdvanceFactorCounter(cur|bit) succeeds only if
	// the stored mask is still below it, so two racing uses of one code
	// cannot both succeed. On a lost race re-read and retry.
	cur := f.Counter
	for attempt := 0; ; attempt++ {
		if cur&bit != 0 || (idx < len(d.Used) && d.Used[idx]) {
			return 0, codeRefused(ErrReplayedCode)
		}
		ok, err := r.store.AdvanceFactorCounter(ctx, f.ID, cur|bit, now)
		if err != nil {
			if airlock.IsCode(err, airlock.ENOTFOUND) { // voided by a new set meanwhile
				return 0, codeRefused(ErrInvalidCode)
			}
			return 0, fmt.Errorf("recovery codes: %w", err)
		}
		if ok {
			cur |= bit
			break
		}
		if attempt >= 16 {
			return 0, airlock.Errorf(airlock.ECONFLICT, "recovery code use raced too often; try again")
		}
		nf, err := r.store.FactorByID(ctx, f.ID)
		if err != nil {
			if airlock.IsCode(err, airlock.ENOTFOUND) {
				return 0, codeRefused(ErrInvalidCode)
			}
			return 0, fmt.Errorf("recovery codes: %w", err)
		}
		cur = nf.Counter
	}
	// Mirror the mask into Data's used flags (belt and braces against a
	// cross-process lost update of the mask, and for display).
	if nf, err := r.store.FactorByID(ctx, f.ID); err == nil {
		var nd recoveryData
		if json.Unmarshal(nf.Data, &nd) == nil && len(nd.Used) == len(nd.Hashes) {
			mask := nf.Counter | cur
			for i := range nd.Used {
				nd.Used[i] = nd.Used[i] || mask&(1<<i) != 0
			}
			if data, err := json.Marshal(nd); err == nil {
				nf.Data = data
				nf.LastUsedAt = now
				if err := r.store.UpdateFactor(ctx, nf); err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
					return 0, fmt.Errorf("recovery codes: %w", err)
				}
			}
		}
	}
	return len(d.Hashes) - bits.OnesCount64(uint64(cur)&(1<<len(d.Hashes)-1)), nil
}

// Remaining returns how many unused recovery codes userID has (0 if none).
func (r *Recovery) Remaining(ctx context.Context, userID string) (int, error) {
	f, d, err := r.current(ctx, userID)
	if err != nil {
		if airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for i := range d.Hashes {
		if f.Counter&(1<<i) == 0 && !(i < len(d.Used) && d.Used[i]) {
			n++
		}
	}
	return n, nil
}

// current loads userID's active recovery factor and its data.
func (r *Recovery) current(ctx context.Context, userID string) (*airlock.Factor, *recoveryData, error) {
	factors, err := r.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("recovery codes: %w", err)
	}
	var f *airlock.Factor
	for _, x := range factors {
		if x.Kind == airlock.FactorRecovery && x.Status == airlock.FactorActive {
			f = x // newest wins (ordered by created_at)
		}
	}
	if f == nil {
		return nil, nil, codeRefused(ErrNoFactor)
	}
	var d recoveryData
	if err := json.Unmarshal(f.Data, &d); err != nil || len(d.Hashes) == 0 || len(d.Hashes) > 62 {
		return nil, nil, fmt.Errorf("recovery codes: factor %s has unreadable data", f.ID)
	}
	return f, &d, nil
}

func recoveryHash(salt []byte, code string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(code))
	return h.Sum(nil)
}

// normalizeRecovery lower-cases code, drops dashes and spaces, maps o→0 and
// i,l→1, and reports whether the result is a well-formed code.
func normalizeRecovery(code string) (string, bool) {
	if len(code) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, c := range strings.ToLower(code) {
		switch {
		case c == '-' || c == ' ':
			continue
		case c == 'o':
			c = '0'
		case c == 'i' || c == 'l':
			c = '1'
		}
		if c > 0x7f || !strings.ContainsRune(recoveryAlphabet, c) {
			return "", false
		}
		b.WriteRune(c)
	}
	if b.Len() != recoveryCodeLen {
		return "", false
	}
	return b.String(), true
}
