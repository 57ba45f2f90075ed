package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/sqlite"
)

const (
	password  = "correct horse battery"
	attacker  = "198.51.100.9"
	ownerAddr = "192.0.2.10:50000"
)

// replicas returns n Services on one store and audit log: replicas
// behind a load balancer, sharing nothing but the store.
func replicas(t *testing.T, clk *clock, n int) ([]*Service, airlock.Store) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close(context.Background()) })
	var out []*Service
	for range n {
		out = append(out, newReplica(t, clk, store, al))
	}
	return out, store
}

// withTOTP creates user name (admins) with a confirmed TOTP factor and
// returns a function giving the current code (the clock moves 30 s per
// call, as codes are single use).
func withTOTP(t *testing.T, svc *Service, clk *clock, name string) func() string {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.createUser(ctx, airlock.SystemActor, name, password, []string{airlock.GroupAdmins}, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Login(ctx, name, password, FactorInput{}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, res.Token, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	f, uri, _, err := svc.EnrollTOTP(ctx, p, "phone")
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	secret := pu.Query().Get("secret")
	code := func() string {
		clk.add(30 * time.Second)
		c, err := totp.GenerateCode(secret, clk.now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := svc.ConfirmTOTP(ctx, p, f.ID, code()); err != nil {
		t.Fatal(err)
	}
	return code
}

// checked counts the attempts whose credential was verified: each wrong
// one is a login.failed event with this reason.
func checked(t *testing.T, store airlock.Store, reasonPrefix string) int {
	t.Helper()
	evs, err := store.ListEvents(context.Background(), airlock.EventFilter{Action: "login.failed"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		var d struct{ Reason string }
		json.Unmarshal(e.Details, &d)
		if len(d.Reason) >= len(reasonPrefix) && d.Reason[:len(reasonPrefix)] == reasonPrefix {
			n++
		}
	}
	return n
}

func throttledEvents(t *testing.T, store airlock.Store, scope string) int {
	t.Helper()
	evs, err := store.ListEvents(context.Background(), airlock.EventFilter{Action: "login.throttled"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		var d struct{ Scope string }
		json.Unmarshal(e.Details, &d)
		if d.Scope == scope {
			n++
		}
	}
	return n
}

// TestThrottleParallelGuesses: 100 parallel wrong passwords for one user
// from one address, spread over four replicas, get at most FreeAttempts
// password checks; the rest are refused unchecked (count first, then
// check, in one store operation).
func TestThrottleParallelGuesses(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svcs, store := replicas(t, clk, 4)
	ctx := context.Background()
	if _, err := svcs[0].createUser(ctx, airlock.SystemActor, "admin", password, []string{airlock.GroupAdmins}, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svcs[i%4].Login(ctx, "admin", fmt.Sprintf("wrong guess %03d!", i), FactorInput{}, fmt.Sprintf("%s:%d", attacker, 40000+i))
			mu.Lock()
			codes[airlock.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	n := checked(t, store, "wrong password")
	if n > 5 || n == 0 {
		t.Fatalf("%d of 100 parallel guesses were checked, want 1..5 (outcomes %v)", n, codes)
	}
	if codes[airlock.EUNAUTHORIZED] != n || codes[airlock.ELOCKED] != 100-n {
		t.Fatalf("outcomes %v, want %d unauthorized and the rest locked", codes, n)
	}
}

// TestThrottleOwnerNotLockedOut: an attacker's failures from one address
// neither lock the owner (an admin) out of their right password + TOTP
// from another address, nor make the owner wait.
func TestThrottleOwnerNotLockedOut(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	code := withTOTP(t, svc, clk, "admin")
	for i := range 30 {
		_, err := svc.Login(ctx, "admin", "not the password!", FactorInput{OTP: "000000"}, fmt.Sprintf("%s:%d", attacker, 1000+i))
		if err == nil {
			t.Fatal("attacker logged in")
		}
	}
	if n := checked(t, store, "wrong password"); n != 5 {
		t.Fatalf("%d attacker guesses checked, want 5", n)
	}
	res, err := svc.Login(ctx, "admin", password, FactorInput{OTP: code()}, ownerAddr)
	if err != nil || res.Token == "" {
		t.Fatalf("owner locked out by an attacker elsewhere: %v", err)
	}
	// The password-then-code flow works too.
	res, err = svc.Login(ctx, "admin", password, FactorInput{}, ownerAddr)
	if err != nil || res.Challenge == "" {
		t.Fatalf("owner's password step: %v", err)
	}
	if res, err = svc.LoginFactor(ctx, res.Challenge, FactorInput{OTP: code()}, ownerAddr); err != nil || res.Token == "" {
		t.Fatalf("owner's code step: %v", err)
	}
	// The attacker's address is still throttled; the refusal was audited once.
	if _, err := svc.Login(ctx, "admin", password, FactorInput{OTP: code()}, attacker+":1"); !airlock.IsCode(err, airlock.ELOCKED) {
		t.Fatalf("attacker address after the owner's login: %v", err)
	}
	if n := throttledEvents(t, store, "user"); n != 1 {
		t.Fatalf("login.throttled (user) events: %d, want 1 per key and window", n)
	}
}

// TestThrottleGrowingDelay pins the (user, source) schedule: 5 attempts
// free, then 1 s, 2 s, 4 s … after the previous attempt, with a retry
// time that holds, and a reset on success.
func TestThrottleGrowingDelay(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	if _, err := svc.createUser(ctx, airlock.SystemActor, "alice", password, nil, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	const src = "203.0.113.5:4000"
	login := func(pw string) error {
		_, err := svc.Login(ctx, "alice", pw, FactorInput{}, src)
		return err
	}
	retryAfter := func(err error) int {
		t.Helper()
		var ae *airlock.Error
		if !airlock.IsCode(err, airlock.ELOCKED) || !errors.As(err, &ae) {
			t.Fatalf("want a throttled refusal, got %v", err)
		}
		return ae.Details["retry_after_seconds"].(int)
	}
	for i := range 5 {
		if err := login("wrong password!!"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	// 6th at once: refused unchecked, even with the right password.
	if s := retryAfter(login(password)); s != 2 {
		t.Fatalf("retry after %d s, want 2", s)
	}
	clk.add(2 * time.Second)
	if err := login("wrong password!!"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
		t.Fatalf("attempt at the retry time: %v", err)
	}
	if s := retryAfter(login(password)); s != 8 {
		t.Fatalf("retry after %d s, want 8", s)
	}
	clk.add(7 * time.Second)
	if s := retryAfter(login(password)); s != 16 {
		t.Fatalf("early retry: retry after %d s, want 16 (hammering lengthens the wait)", s)
	}
	if n := checked(t, store, "wrong password"); n != 6 {
		t.Fatalf("checked %d guesses, want 6", n)
	}
	clk.add(16 * time.Second)
	if err := login(password); err != nil {
		t.Fatalf("right password at the retry time: %v", err)
	}
	// A success starts the count again.
	for i := range 5 {
		if err := login("wrong password!!"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("attempt %d after success: %v", i+1, err)
		}
	}
	// The delay is capped.
	cfg := svc.cfg.Throttle
	if d := cfg.delay(cfg.FreeAttempts + 40); d != 15*time.Minute {
		t.Fatalf("delay after many attempts = %v, want the 15 min cap", d)
	}
	if d := cfg.delay(cfg.FreeAttempts + 10); d != 512*time.Second {
		t.Fatalf("10th delay = %v", d)
	}
}

// TestThrottleSharedByReplicas: failures counted on one replica throttle
// the same user and address on another.
func TestThrottleSharedByReplicas(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svcs, store := replicas(t, clk, 2)
	ctx := context.Background()
	if _, err := svcs[0].createUser(ctx, airlock.SystemActor, "alice", password, nil, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := svcs[0].Login(ctx, "alice", "wrong password!!", FactorInput{}, attacker+":1"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("attempt %d on replica A: %v", i+1, err)
		}
	}
	if _, err := svcs[1].Login(ctx, "alice", "wrong password!!", FactorInput{}, attacker+":2"); !airlock.IsCode(err, airlock.ELOCKED) {
		t.Fatalf("6th attempt on replica B: %v, want throttled", err)
	}
	if n := checked(t, store, "wrong password"); n != 5 {
		t.Fatalf("checked %d, want 5", n)
	}
}

// TestThrottleSecondFactorGuesses: with the password known, TOTP guesses
// count on the same keys, in parallel too: at most the free attempts are
// checked, and the owner elsewhere still gets in.
func TestThrottleSecondFactorGuesses(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svcs, store := replicas(t, clk, 2)
	ctx := context.Background()
	code := withTOTP(t, svcs[0], clk, "alice")
	res, err := svcs[0].Login(ctx, "alice", password, FactorInput{}, attacker+":1") // attempt 1
	if err != nil || res.Challenge == "" {
		t.Fatalf("password step: %v", err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guess := fmt.Sprintf("%06d", i)
			if _, err := svcs[i%2].LoginFactor(ctx, res.Challenge, FactorInput{OTP: guess}, attacker+":2"); err == nil {
				t.Errorf("guess %s accepted", guess)
			}
		}()
	}
	wg.Wait()
	if n := checked(t, store, "totp"); n > 4 {
		t.Fatalf("%d parallel TOTP guesses checked, want at most 4", n)
	}
	// Step-up guesses count too.
	r2, err := svcs[1].Login(ctx, "alice", password, FactorInput{OTP: code()}, ownerAddr)
	if err != nil {
		t.Fatalf("owner: %v", err)
	}
	p := &Principal{User: r2.User, Session: r2.Session, Source: attacker + ":3"}
	if _, err := svcs[1].VerifyMFA(ctx, p, FactorInput{OTP: "123456"}); !airlock.IsCode(err, airlock.ELOCKED) {
		t.Fatalf("step-up guess from a throttled address: %v", err)
	}
}

// TestThrottleAccountCeiling: past the account ceiling (all sources
// together) attempts are held, audited once, and, one per AccountDelay,
// still checked: the owner's right password and code get in, later.
func TestThrottleAccountCeiling(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svcs, store := replicas(t, clk, 2)
	ctx := context.Background()
	code := withTOTP(t, svcs[0], clk, "admin")
	var mu sync.Mutex
	var held []time.Duration
	for _, s := range svcs {
		s.cfg.Throttle.AccountCeiling = 10
		s.hold = func(d time.Duration) { mu.Lock(); held = append(held, d); mu.Unlock() }
	}
	// Login + confirm of withTOTP made 2 account attempts; 20 addresses, 3
	// guesses each, one per AccountDelay (past the ceiling, that is the
	// rate addresses the account never logged in from are checked at; see
	// TestThrottleAccountCeilingBoundsRate).
	for i := range 60 {
		clk.add(2 * time.Second)
		src := fmt.Sprintf("198.51.100.%d:1", i%20)
		if _, err := svcs[i%2].Login(ctx, "admin", "not the password!", FactorInput{}, src); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if len(held) != 52 {
		t.Fatalf("%d attempts held, want 52 (those past the ceiling)", len(held))
	}
	for _, d := range held {
		if d != 2*time.Second {
			t.Fatalf("held %v, want 2s", d)
		}
	}
	if n := throttledEvents(t, store, "account"); n != 1 {
		t.Fatalf("login.throttled (account) events: %d, want 1", n)
	}
	clk.add(2 * time.Second)
	res, err := svcs[1].Login(ctx, "admin", password, FactorInput{}, ownerAddr)
	if err != nil || res.Challenge == "" {
		t.Fatalf("owner's right password did not reach the MFA step: %v", err)
	}
	if res, err = svcs[0].LoginFactor(ctx, res.Challenge, FactorInput{OTP: code()}, ownerAddr); err != nil || res.Token == "" {
		t.Fatalf("owner blocked past the account ceiling: %v", err)
	}
	if len(held) != 54 {
		t.Fatalf("owner's two steps held %d times, want 2", len(held)-52)
	}
}

func TestSourceBucket(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5000":                "192.0.2.1",
		"[::ffff:192.0.2.1]:5000":       "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:1": "2001:db8:1:2::/64",
		"pipe":                          "pipe",
	} {
		if got := sourceBucket(in); got != want {
			t.Errorf("sourceBucket(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestThrottleSprayFromOneAddress: a spray over many user names from one
// address passes each (user, address) key, but past the address's failure
// ceiling every attempt from it is held (and audited once); none is
// refused, and successes from a busy address do not count.
func TestThrottleSprayFromOneAddress(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svc, store := newService(t, clk)
	ctx := context.Background()
	svc.cfg.Throttle.SourceCeiling = 10
	held := 0
	svc.hold = func(time.Duration) { held++ }
	if _, err := svc.createUser(ctx, airlock.SystemActor, "alice", password, nil, "", "user.created"); err != nil {
		t.Fatal(err)
	}
	for range 20 { // a NAT with many good logins
		if _, err := svc.Login(ctx, "alice", password, FactorInput{}, attacker+":8"); err != nil {
			t.Fatal(err)
		}
	}
	if held != 0 {
		t.Fatalf("successful logins were slowed: %d", held)
	}
	for i := range 30 {
		if _, err := svc.Login(ctx, fmt.Sprintf("user%02d", i), "spring2026spring", FactorInput{}, attacker+":9"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
			t.Fatalf("spray %d: %v", i, err)
		}
	}
	if held != 19 { // failures 12..30: the 11th marks the address
		t.Fatalf("%d attempts held, want 19", held)
	}
	if n := throttledEvents(t, store, "address"); n != 1 {
		t.Fatalf("login.throttled (address) events: %d, want 1", n)
	}
}

// TestThrottleAccountCeilingBoundsRate: an attacker who knows the password
// guesses the TOTP code from many addresses (one IPv6 /64 each: a /48 holds
// 65 536) in parallel, one guess per address so that no (user, source)
// key ever slows them. Past the account ceiling the guesses must not all
// be checked: holding each one AccountDelay in parallel is a latency, not
// a rate. At most one guess per AccountDelay is checked from addresses
// that never logged in to the account; the owner's known address is
// slowed, never refused.
func TestThrottleAccountCeilingBoundsRate(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	svcs, store := replicas(t, clk, 2)
	ctx := context.Background()
	code := withTOTP(t, svcs[0], clk, "admin")
	// The owner's usual address: a full login from it.
	if _, err := svcs[0].Login(ctx, "admin", password, FactorInput{OTP: code()}, ownerAddr); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		s.cfg.Throttle.AccountCeiling = 10
		s.hold = func(time.Duration) {}
	}
	before := checked(t, store, "totp")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("[2001:db8:77:%x::1]:443", i)
			_, err := svcs[i%2].Login(ctx, "admin", password, FactorInput{OTP: fmt.Sprintf("%06d", 900000+i)}, src)
			mu.Lock()
			codes[airlock.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// 3 account attempts so far (withTOTP's 2, the owner's 1): 7 under the
	// ceiling, then one slot per AccountDelay (the clock stands still).
	if n := checked(t, store, "totp") - before; n > 8 {
		t.Fatalf("%d of 300 parallel TOTP guesses past the account ceiling were checked, want at most 8 (outcomes %v)", n, codes)
	}
	if codes[airlock.ELOCKED] < 292 {
		t.Fatalf("outcomes %v, want the guesses past the slot refused unchecked", codes)
	}
	// The owner, from their known address, still gets in at once.
	if res, err := svcs[1].Login(ctx, "admin", password, FactorInput{OTP: code()}, ownerAddr); err != nil || res.Token == "" {
		t.Fatalf("owner refused past the account ceiling: %v", err)
	}
}
