package identity

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// ThrottleConfig sets how guesses of passwords and second factors are
// throttled (docs/mfa.md, "Guessing limits"). Zero fields take the
// defaults shown. The counts live in the store (airlock.ThrottleStore), so
// they hold across replicas and restarts.
type ThrottleConfig struct {
	// Window is how long a count lasts from its first attempt (default 1 h).
	Window time.Duration
	// FreeAttempts is how many attempts per user and source address in a
	// window are checked without waiting (default 5).
	FreeAttempts int
	// BaseDelay is the wait, after the previous attempt, before the first
	// attempt past FreeAttempts is checked; it doubles with each further
	// attempt (default 1 s).
	BaseDelay time.Duration
	// MaxDelay caps that wait (default 15 min).
	MaxDelay time.Duration
	// AccountCeiling is how many attempts on one account, from all
	// sources together, a window allows before every further attempt is
	// slowed by AccountDelay (default 100, NIST SP 800-63B §5.2.2).
	AccountCeiling int
	// AccountDelay is how long each attempt past AccountCeiling is held
	// before it is checked (default 2 s). It slows; it never refuses.
	AccountDelay time.Duration
	// SourceCeiling is how many failed attempts from one source address,
	// for all users together, a window allows before every further attempt
	// from it is held AccountDelay too (default 100): a password spray over
	// many user names from one address is slowed, never refused (an
	// address may be a NAT shared with the people it would lock out, and
	// their successful logins do not count).
	SourceCeiling int
}

// DefaultThrottleConfig returns the defaults documented on ThrottleConfig.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{Window: time.Hour, FreeAttempts: 5, BaseDelay: time.Second, MaxDelay: 15 * time.Minute,
		AccountCeiling: 100, AccountDelay: 2 * time.Second, SourceCeiling: 100}
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	d := DefaultThrottleConfig()
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.FreeAttempts <= 0 {
		c.FreeAttempts = d.FreeAttempts
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = d.BaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.AccountCeiling <= 0 {
		c.AccountCeiling = d.AccountCeiling
	}
	if c.AccountDelay <= 0 {
		c.AccountDelay = d.AccountDelay
	}
	if c.SourceCeiling <= 0 {
		c.SourceCeiling = d.SourceCeiling
	}
	return c
}

// delay returns the wait after the previous attempt before attempt number
// n of a (user, source) window is checked: 0 up to FreeAttempts, then
// BaseDelay, 2×BaseDelay, 4×BaseDelay … capped at MaxDelay.
func (c ThrottleConfig) delay(n int) time.Duration {
	k := n - c.FreeAttempts
	if k <= 0 {
		return 0
	}
	if k > 62 {
		return c.MaxDelay
	}
	d := float64(c.BaseDelay) * math.Pow(2, float64(k-1))
	if d >= float64(c.MaxDelay) {
		return c.MaxDelay
	}
	return time.Duration(d)
}

// sourceDecision is what the (user, source) throttle decides about an
// attempt from the hit that counted it: wait 0 means check it now;
// otherwise it is refused unchecked and the next attempt will be checked
// at retryAt (if no other attempt comes first).
func (c ThrottleConfig) sourceDecision(h airlock.ThrottleHit, now time.Time) (wait time.Duration, retryAt time.Time) {
	if h.Prev.IsZero() {
		return 0, time.Time{}
	}
	if w := h.Prev.Add(c.delay(h.Count)).Sub(now); w > 0 {
		return w, now.Add(c.delay(h.Count + 1))
	}
	return 0, time.Time{}
}

// Throttle keys in the ThrottleStore.
const (
	keySource  = "login-src:"       // + user + "|" + source bucket
	keyAccount = "login-acct:"      // + user
	keyAddr    = "login-addr:"      // + source bucket: failures from it
	kvAddrSlow = "login-addr-slow:" // KV + source bucket: past SourceCeiling until the window ends
	keyNotice  = "login-note:"      // + a key above: first refusal audited
	keySlot    = "login-slot:"      // + user: past the account ceiling, one check per AccountDelay
	kvKnown    = "login-known:"     // KV + user + "|" + source bucket: a full login came from it
	keyPush    = "push-rate:"       // + user id
)

// knownSourceTTL is how long a source bucket that completed a full login
// of a user stays known for that user (see admit).
const knownSourceTTL = 30 * 24 * time.Hour

// throttleName is the user part of throttle keys: the name as typed when
// it could be a user name, one shared bucket otherwise (such names never
// log in and must not grow keys without bound).
func throttleName(name string) string {
	if ValidName(name) {
		return name
	}
	return "?invalid"
}

// sourceBucket is the address part of throttle keys: the IPv4 address, or
// the /64 of an IPv6 address (one host usually holds a whole /64).
func sourceBucket(addr string) string {
	host := hostOf(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if len(host) > 64 {
			host = host[:64]
		}
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// admit counts one guess (a password or a second factor) of user name from
// source and decides on the counts that same store operation returned:
// count first, then check. It returns the (user, source) key to reset
// after a full success. Errors: ELOCKED (refused unchecked: the source
// must wait; Details carry retry_after_seconds), EUNAVAILABLE, store errors.
// Past the account ceiling (or the source address's) it holds the attempt
// for AccountDelay and admits it. Holding is a latency, not a rate: past
// the account ceiling, attempts from addresses that never completed a
// login of the account (known sources, remembered knownSourceTTL) are
// also checked at most one per AccountDelay across all of them and all
// replicas; the others are refused unchecked (ELOCKED). Otherwise an
// attacker who knows the password guesses the second factor from as many
// addresses as they hold (an IPv6 /48 is 65 536 buckets), all in
// parallel. An attacker elsewhere can slow the owner at a known address,
// never lock them out.
func (s *Service) admit(ctx context.Context, name, userID, source string) (string, error) {
	cfg := s.cfg.Throttle
	now := s.now()
	s.purgeThrottles(ctx, now)
	user := throttleName(name)
	bucket := sourceBucket(source)
	srcKey := keySource + user + "|" + bucket
	h, err := s.store.HitThrottle(ctx, srcKey, now, cfg.Window)
	if err != nil {
		return "", err
	}
	if wait, retryAt := cfg.sourceDecision(h, now); wait > 0 {
		s.noteThrottled(ctx, srcKey, now, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: "login.throttled", SourceAddr: source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("scope", "user", "attempts", h.Count, "retry_at", retryAt.UTC().Format(time.RFC3339))})
		secs := int(math.Ceil(retryAt.Sub(now).Seconds()))
		return "", &airlock.Error{Code: airlock.ELOCKED,
			Message: fmt.Sprintf("too many failed attempts from your address; try again after %s (in %s)", retryAt.UTC().Format(time.RFC3339), time.Duration(secs)*time.Second),
			Details: map[string]any{"retry_after_seconds": secs}}
	}
	a, err := s.store.HitThrottle(ctx, keyAccount+user, now, cfg.Window)
	if err != nil {
		return "", err
	}
	hold := a.Count > cfg.AccountCeiling
	if a.Count == cfg.AccountCeiling+1 { // the first over the ceiling: once per window, across replicas
		if err := s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: "login.throttled", SourceAddr: source,
			Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("scope", "account", "attempts", a.Count,
				"delay_seconds", cfg.AccountDelay.Seconds(), "until", a.WindowStart.Add(cfg.Window).UTC().Format(time.RFC3339))}); err != nil {
			return "", err
		}
	}
	if hold {
		if _, err := s.store.GetKV(ctx, kvKnown+user+"|"+bucket, now); err != nil {
			slot, err := s.store.HitThrottle(ctx, keySlot+user, now, cfg.AccountDelay)
			if err != nil {
				return "", err
			}
			if slot.Count > 1 {
				retryAt := slot.WindowStart.Add(cfg.AccountDelay)
				s.noteThrottled(ctx, keySlot+user, now, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: "login.throttled", SourceAddr: source,
					Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("scope", "account_rate", "attempts", a.Count, "retry_at", retryAt.UTC().Format(time.RFC3339))})
				secs := max(1, int(math.Ceil(retryAt.Sub(now).Seconds())))
				return "", &airlock.Error{Code: airlock.ELOCKED,
					Message: fmt.Sprintf("too many failed attempts on this account; try again in %s", time.Duration(secs)*time.Second),
					Details: map[string]any{"retry_after_seconds": secs}}
			}
		}
	}
	if _, err := s.store.GetKV(ctx, kvAddrSlow+bucket, now); err == nil {
		hold = true
	}
	if hold {
		if s.hold != nil {
			s.hold(cfg.AccountDelay)
		} else {
			t := time.NewTimer(cfg.AccountDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			}
		}
	}
	return srcKey, nil
}

// failedFrom counts a failed check from source toward SourceCeiling and,
// past it, marks the address slowed for the rest of the window. (A
// slow-down, not a gate: it need not be counted before the check.)
func (s *Service) failedFrom(ctx context.Context, name, userID, source string) {
	cfg := s.cfg.Throttle
	now := s.now()
	b := sourceBucket(source)
	h, err := s.store.HitThrottle(ctx, keyAddr+b, now, cfg.Window)
	if err != nil || h.Count <= cfg.SourceCeiling {
		return
	}
	if h.Count == cfg.SourceCeiling+1 {
		s.record(ctx, airlock.Event{Actor: airlock.Actor{ID: userID, Name: name}, Action: "login.throttled", SourceAddr: source,
			Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("scope", "address", "failures", h.Count,
				"delay_seconds", cfg.AccountDelay.Seconds(), "until", h.WindowStart.Add(cfg.Window).UTC().Format(time.RFC3339))})
		s.store.PutKV(ctx, kvAddrSlow+b, nil, h.WindowStart.Add(cfg.Window))
	}
}

// admitted forgets the (user, source) count after a full success (the
// account count stays: it bounds guesses on the account per window) and
// remembers the source as known for the user.
func (s *Service) admitted(ctx context.Context, srcKey string) {
	if err := s.store.ResetThrottle(ctx, srcKey); err != nil {
		s.log.Warn("reset login throttle", "err", err)
	}
	known := kvKnown + strings.TrimPrefix(srcKey, keySource)
	if err := s.store.PutKV(ctx, known, nil, s.now().Add(knownSourceTTL)); err != nil {
		s.log.Warn("remember login source", "err", err)
	}
}

// noteThrottled audits e for the first refusal of key in its window only
// (counted in the store, so once across replicas): a flood of refused
// guesses cannot flood the audit log.
func (s *Service) noteThrottled(ctx context.Context, key string, now time.Time, e airlock.Event) {
	n, err := s.store.HitThrottle(ctx, keyNotice+key, now, s.cfg.Throttle.Window)
	if err != nil || n.Count != 1 {
		return
	}
	s.record(ctx, e) // refusing needs no audit-first; a failed write is logged by record
}

// purgeInterval is how often a Service deletes ended throttle windows.
const purgeInterval = time.Minute

func (s *Service) purgeThrottles(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPurge) >= purgeInterval
	if due {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if due {
		if _, err := s.store.PurgeThrottles(ctx, now); err != nil {
			s.log.Warn("purge login throttles", "err", err)
		}
	}
}
