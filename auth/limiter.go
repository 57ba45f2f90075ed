package auth

import (
	"sync"
	"time"
)

// LimiterConfig configures a Limiter. Zero fields take the defaults shown.
type LimiterConfig struct {
	// MaxFailures within Window lock the key (default 5).
	MaxFailures int
	// Window is how long failures are remembered (default 15 min).
	Window time.Duration
	// Lockout is how long a locked key stays locked (default 15 min).
	Lockout time.Duration
	// FreeFailures is how many failures are answered without delay
	// (default 2).
	FreeFailures int
	// BaseDelay is the delay after the first non-free failure; it doubles
	// with each further failure (default 1 s).
	BaseDelay time.Duration
	// MaxDelay caps the delay (default 30 s).
	MaxDelay time.Duration
	// MaxKeys bounds memory: when more keys are tracked, entries whose
	// window and lockout have passed are dropped (default 100000).
	MaxKeys int
}

// DefaultLimiterConfig returns the defaults documented on LimiterConfig.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{
		MaxFailures:  5,
		Window:       15 * time.Minute,
		Lockout:      15 * time.Minute,
		FreeFailures: 2,
		BaseDelay:    time.Second,
		MaxDelay:     30 * time.Second,
		MaxKeys:      100000,
	}
}

// Limiter counts failed attempts per key (a user id, a source address) and
// locks a key after too many. It is in memory and per process: with N
// replicas each counts on its own, so a lockout still bounds guesses to
// N×MaxFailures per Lockout period. A Limiter is safe for concurrent use.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*limitEntry
}

type limitEntry struct {
	failures    int
	first       time.Time // first failure of the current window
	lockedUntil time.Time
}

// NewLimiter returns a Limiter with cfg (zero fields defaulted) and clock now
// (nil means time.Now).
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	d := DefaultLimiterConfig()
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = d.MaxFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = d.Window
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = d.Lockout
	}
	if cfg.FreeFailures <= 0 {
		cfg.FreeFailures = d.FreeFailures
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = d.BaseDelay
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = d.MaxDelay
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = d.MaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, entries: make(map[string]*limitEntry)}
}

// Check reports whether key is locked now and until when. Call it before
// verifying a credential; a locked key is refused without verifying.
func (l *Limiter) Check(key string) (lockedUntil time.Time, locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return time.Time{}, false
	}
	if now := l.now(); now.Before(e.lockedUntil) {
		return e.lockedUntil, true
	}
	return time.Time{}, false
}

// Fail records a failed attempt for key. It reports whether this failure
// locked the key, and until when. A failure while already locked is not
// counted again and does not extend the lockout.
func (l *Limiter) Fail(key string) (lockedNow bool, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.entries[key]
	if e == nil {
		if len(l.entries) >= l.cfg.MaxKeys {
			l.sweepLocked(now)
		}
		e = &limitEntry{}
		l.entries[key] = e
	}
	if now.Before(e.lockedUntil) {
		return false, e.lockedUntil
	}
	if e.failures == 0 || now.Sub(e.first) >= l.cfg.Window {
		e.failures, e.first = 0, now
	}
	e.failures++
	if e.failures >= l.cfg.MaxFailures {
		e.failures = 0
		e.lockedUntil = now.Add(l.cfg.Lockout)
		return true, e.lockedUntil
	}
	return false, time.Time{}
}

// Delay returns how long the caller should wait before answering the
// failure just recorded for key: 0 for the first FreeFailures failures in
// the window, then BaseDelay, doubling each time, capped at MaxDelay
// (defaults: 0, 0, 1s, 2s, 4s, …).
func (l *Limiter) Delay(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return 0
	}
	n := e.failures
	if n <= l.cfg.FreeFailures {
		return 0
	}
	d := l.cfg.BaseDelay
	for i := l.cfg.FreeFailures + 1; i < n && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// Failures returns the failures counted for key in its current window.
func (l *Limiter) Failures(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil || (e.failures > 0 && l.now().Sub(e.first) >= l.cfg.Window) {
		return 0
	}
	return e.failures
}

// Succeed forgets the failures of key after a successful attempt. It does
// not lift a lockout (a locked key must not have been verified at all).
func (l *Limiter) Succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return
	}
	if l.now().Before(e.lockedUntil) {
		e.failures = 0
		return
	}
	delete(l.entries, key)
}

// Unlock lifts a lockout and forgets the failures of key (an audited admin
// action).
func (l *Limiter) Unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

// sweepLocked drops entries whose window and lockout have both passed.
// l.mu must be held.
func (l *Limiter) sweepLocked(now time.Time) {
	for k, e := range l.entries {
		if !now.Before(e.lockedUntil) && (e.failures == 0 || now.Sub(e.first) >= l.cfg.Window) {
			delete(l.entries, k)
		}
	}
}
