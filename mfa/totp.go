package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mdp/qrterminal/v3"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
)

// TOTP parameters: the ones every authenticator app supports.
const (
	TOTPPeriod     = 30 * time.Second
	TOTPDigits     = 6
	TOTPSkew       = 1  // steps accepted either side of now
	totpSecretSize = 20 // 160 bits, RFC 4226 §4 recommendation
	// outOfWindowSteps bounds the extra search done only on failure to tell
	// "clock off" from "wrong code" in the audit reason.
	outOfWindowSteps = 10
	maxFactorName    = 64
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// TOTP enrolls and verifies RFC 6238 time-based one-time passwords (SHA-1,
// 6 digits, 30 s steps, ±1 step). Each accepted code is single use: its time
// step must be greater than the factor's Counter, advanced atomically in the
// store. A TOTP is safe for concurrent use.
type TOTP struct {
	store  airlock.FactorStore
	sealer airlock.Sealer
	issuer string
	now    func() time.Time
}

// NewTOTP returns a TOTP backed by store, sealing secrets with sealer and
// naming issuer in otpauth:// URIs. now nil means time.Now.
func NewTOTP(store airlock.FactorStore, sealer airlock.Sealer, issuer string, now func() time.Time) *TOTP {
	if now == nil {
		now = time.Now
	}
	if issuer == "" {
		issuer = "Airlock"
	}
	return &TOTP{store: store, sealer: sealer, issuer: issuer, now: now}
}

func factorAAD(id string) []byte { return []byte("factor:" + id) }

// Enroll creates a pending TOTP factor for user with a fresh 160-bit secret
// (sealed, bound to the factor ID) and returns it with the otpauth:// URI
// and a terminal QR rendering of that URI. The URI and QR contain the
// secret: show them once, to the user, never log them.
// Errors: EINVALID for a bad name; store errors.
func (t *TOTP) Enroll(ctx context.Context, user *airlock.User, name string) (f *airlock.Factor, uri string, qr string, err error) {
	if name == "" {
		name = "authenticator app"
	}
	if err := checkFactorName(name); err != nil {
		return nil, "", "", err
	}
	secret := make([]byte, totpSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", "", fmt.Errorf("totp enroll: %w", err)
	}
	defer clear(secret)
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      t.issuer,
		AccountName: user.Name,
		Period:      uint(TOTPPeriod / time.Second),
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("totp enroll: %w", err)
	}
	id := airlock.NewID("fa")
	sealed, err := t.sealer.Seal(secret, factorAAD(id))
	if err != nil {
		return nil, "", "", fmt.Errorf("totp enroll: seal secret: %w", err)
	}
	f = &airlock.Factor{
		ID:        id,
		UserID:    user.ID,
		Kind:      airlock.FactorTOTP,
		Name:      name,
		Status:    airlock.FactorPending,
		Secret:    sealed,
		CreatedAt: t.now().UTC(),
	}
	if err := t.store.CreateFactor(ctx, f); err != nil {
		return nil, "", "", fmt.Errorf("totp enroll: %w", err)
	}
	uri = key.URL()
	var sb strings.Builder
	qrterminal.GenerateWithConfig(uri, qrterminal.Config{
		Level:          qrterminal.M,
		Writer:         &sb,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      1,
	})
	return f, uri, sb.String(), nil
}

// Confirm activates the pending TOTP factor factorID of userID if code is
// valid now, and consumes that code.
// Errors: ENOTFOUND if userID has no such pending TOTP factor;
// EUNAUTHORIZED (MsgInvalidCode, wrapping the reason) for a bad code.
func (t *TOTP) Confirm(ctx context.Context, userID, factorID, code string) error {
	f, err := t.store.FactorByID(ctx, factorID)
	if err != nil || f.UserID != userID || f.Kind != airlock.FactorTOTP || f.Status != airlock.FactorPending {
		if err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
			return fmt.Errorf("totp confirm: %w", err)
		}
		return airlock.Errorf(airlock.ENOTFOUND, "no pending TOTP factor %q; run `airlock mfa add totp` first", factorID)
	}
	now := t.now()
	if err := t.check(ctx, f, code, now); err != nil {
		return err
	}
	f.Status = airlock.FactorActive
	f.LastUsedAt = now.UTC()
	if err := t.store.UpdateFactor(ctx, f); err != nil {
		return fmt.Errorf("totp confirm: %w", err)
	}
	return nil
}

// Verify checks code against userID's active TOTP factors and returns the
// ID of the factor that accepted it. Each code is accepted once.
// Errors: EUNAUTHORIZED with MsgInvalidCode for a wrong, reused,
// out-of-window or malformed code and for a user without TOTP (the wrapped
// cause tells which: see Reason); store errors otherwise.
func (t *TOTP) Verify(ctx context.Context, userID, code string) (factorID string, err error) {
	now := t.now()
	if _, ok := normalizeTOTP(code); !ok {
		return "", codeRefused(ErrMalformedCode)
	}
	factors, err := t.store.ListFactors(ctx, userID)
	if err != nil {
		return "", fmt.Errorf("totp verify: %w", err)
	}
	var cause error = ErrNoFactor
	for _, f := range factors {
		if f.Kind != airlock.FactorTOTP || f.Status != airlock.FactorActive {
			continue
		}
		err := t.check(ctx, f, code, now)
		if err == nil {
			return f.ID, nil
		}
		if !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			return "", err
		}
		// Prefer the most telling reason across factors.
		if cause == ErrNoFactor || rank(err) > rank(cause) {
			cause = err
		}
	}
	if cause == ErrNoFactor {
		return "", codeRefused(ErrNoFactor)
	}
	return "", cause
}

func rank(err error) int {
	switch Reason(err) {
	case "replayed_code":
		return 3
	case "out_of_window":
		return 2
	case "invalid_code":
		return 1
	}
	return 0
}

// check verifies code against factor f at now and advances its counter.
func (t *TOTP) check(ctx context.Context, f *airlock.Factor, code string, now time.Time) error {
	digits, ok := normalizeTOTP(code)
	if !ok {
		return codeRefused(ErrMalformedCode)
	}
	secret, err := t.sealer.Open(f.Secret, factorAAD(f.ID))
	if err != nil {
		return fmt.Errorf("totp: open secret of factor %s: %w", f.ID, err)
	}
	defer clear(secret)
	mac := hmac.New(sha1.New, secret)
	step := now.Unix() / int64(TOTPPeriod/time.Second)

	// Compare against every step in the window (constant work). Of the
	// matching steps not yet used, prefer the one nearest now (now, then
	// earlier, then later), so a chance equality with a neighbour's code
	// does not push the counter ahead of the user's clock.
	var accepted, replayed int64 = -1, -1
	for _, s := range windowOrder(step) {
		match := stepMatches(mac, s, digits)
		switch {
		case match && s > f.Counter && accepted < 0:
			accepted = s
		case match && s <= f.Counter:
			replayed = s
		}
	}
	if accepted < 0 {
		if replayed >= 0 {
			return codeRefused(ErrReplayedCode)
		}
		for d := int64(TOTPSkew + 1); d <= outOfWindowSteps; d++ {
			for _, s := range []int64{step - d, step + d} {
				if s >= 0 && stepMatches(mac, s, digits) {
					return codeRefused(ErrOutOfWindow)
				}
			}
		}
		return codeRefused(ErrInvalidCode)
	}
	ok, err = t.store.AdvanceFactorCounter(ctx, f.ID, accepted, now.UTC())
	if err != nil {
		return fmt.Errorf("totp: advance counter: %w", err)
	}
	if !ok {
		return codeRefused(ErrReplayedCode)
	}
	f.Counter = accepted
	return nil
}

// hotpCode returns the 6-digit RFC 4226 code of counter under mac (an
// HMAC-SHA1 keyed with the secret). It is the arithmetic of
// hotp.GenerateCodeCustom without its per-call allocations (base32 decode,
// fmt) — 3x faster; TestHOTPMatchesPquerna pins it to the library.
func hotpCode(mac hash.Hash, counter uint64, out *[TOTPDigits]byte) {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Reset()
	mac.Write(msg[:])
	var sum [sha1.Size]byte
	h := mac.Sum(sum[:0])
	off := h[len(h)-1] & 0x0f
	v := (uint32(h[off])&0x7f)<<24 | uint32(h[off+1])<<16 | uint32(h[off+2])<<8 | uint32(h[off+3])
	v %= 1000000
	for i := TOTPDigits - 1; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
}

// windowOrder returns the accepted steps around step, nearest first:
// step, step-1, step+1, … (negative steps dropped).
func windowOrder(step int64) []int64 {
	out := make([]int64, 0, 2*TOTPSkew+1)
	out = append(out, step)
	for d := int64(1); d <= TOTPSkew; d++ {
		if step-d >= 0 {
			out = append(out, step-d)
		}
		out = append(out, step+d)
	}
	return out
}

// stepMatches reports in constant time whether digits is the code of step.
func stepMatches(mac hash.Hash, step int64, digits string) bool {
	var code [TOTPDigits]byte
	hotpCode(mac, uint64(step), &code)
	return subtle.ConstantTimeCompare(code[:], []byte(digits)) == 1
}

// normalizeTOTP strips spaces and returns the code if it is exactly
// TOTPDigits ASCII digits.
func normalizeTOTP(code string) (string, bool) {
	if len(code) > 32 {
		return "", false
	}
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != TOTPDigits {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

func checkFactorName(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxFactorName {
		return airlock.Errorf(airlock.EINVALID, "factor name must be valid text of at most %d characters", maxFactorName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return airlock.Errorf(airlock.EINVALID, "factor name must not contain control characters")
		}
	}
	return nil
}
