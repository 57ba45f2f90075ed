package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// Run runs the conformance suite against stores made by open. open is
// called once per subtest and must return an empty, migrated store.
func Run(t *testing.T, open func(t *testing.T) airlock.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s airlock.Store)
	}{
		{"users", testUsers},
		{"users/groups", testGroups},
		{"users/zero-time", testUserZeroTime},
		{"factors", testFactors},
		{"factors/advance-counter", testAdvanceCounter},
		{"factors/advance-counter-concurrent", testAdvanceCounterConcurrent},
		{"login-sessions", testLoginSessions},
		{"resources", testResources},
		{"policy", testPolicy},
		{"requests", testRequests},
		{"requests/state", testRequestState},
		{"reviews", testReviews},
		{"grants", testGrants},
		{"grants/filters", testGrantFilters},
		{"grants/approve", testApprove},
		{"grants/approve-concurrent", testApproveConcurrent},
		{"grants/end", testEndGrant},
		{"connect-tokens", testConnectTokens},
		{"live-connect-tokens", testLiveConnectTokens},
		{"connect-tokens/concurrent", testConnectTokenConcurrent},
		{"sessions", testSessions},
		{"sessions/lost", testLostSessions},
		{"sessions/lost-concurrent", testLostSessionsConcurrent},
		{"audit/append", testAppend},
		{"audit/append-errors", testAppendErrors},
		{"audit/append-concurrent", testAppendConcurrent},
		{"audit/list-filters", testListEvents},
		{"audit/scan", testScanEvents},
		{"audit/checkpoints", testCheckpoints},
		{"audit/merkle-tiles", testMerkleTiles},
		{"kv", testKV},
		{"kv/scan", testScanKV},
		{"throttles", testThrottles},
		{"throttles/concurrent", testThrottleConcurrent},
		{"throttles/purge", testPurgeThrottles},
		{"streams", testStreams},
		{"streams/concurrent", testStreamsConcurrent},
		{"db-roles", testDBRoles},
		{"leases", testLeases},
		{"leases/concurrent", testLeasesConcurrent},
		{"ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each subtest owns its store
			tt.fn(t, open(t))
		})
	}
}

// base is a fixed instant with sub-microsecond digits, which the store may
// truncate to microseconds but must not otherwise change.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := airlock.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sameTime compares times at microsecond precision and requires UTC.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero time", what, got)
		}
		return
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
	if !got.Equal(want.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v, want %v", what, got, want.Truncate(time.Microsecond))
	}
}

// normTimes truncates every time.Time field of the struct pointed to by v
// to microseconds in UTC, so structs can be compared with reflect.DeepEqual.
func normTimes(v any) {
	rv := reflect.ValueOf(v).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		if tv, ok := f.Interface().(time.Time); ok {
			if tv.IsZero() {
				f.Set(reflect.ValueOf(time.Time{}))
			} else {
				f.Set(reflect.ValueOf(tv.UTC().Truncate(time.Microsecond)))
			}
		}
	}
}

func equal[T any](t *testing.T, what string, got, want *T) {
	t.Helper()
	g, w := *got, *want
	normTimes(&g)
	normTimes(&w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func mkUser(t *testing.T, s airlock.Store, name string, groups ...string) *airlock.User {
	t.Helper()
	u := &airlock.User{ID: airlock.NewID("us"), Name: name, PasswordHash: "$argon2id$x", Groups: groups, CreatedAt: at(0), UpdatedAt: at(0)}
	must(t, s.CreateUser(t.Context(), u))
	return u
}

func testUsers(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on empty store = %d, %v", n, err)
	}
	bob := mkUser(t, s, "bob", "dev")
	alice := &airlock.User{ID: airlock.NewID("us"), Name: "alice", PasswordHash: "h", Groups: []string{"admins", "dev"},
		SSOSubject: "https://idp|123", CreatedAt: at(time.Second), UpdatedAt: at(2 * time.Second)}
	must(t, s.CreateUser(ctx, alice))

	t.Run("fail/duplicate-name", func(t *testing.T) {
		wantCode(t, s.CreateUser(ctx, &airlock.User{ID: airlock.NewID("us"), Name: "bob", CreatedAt: at(0)}), airlock.ECONFLICT)
	})
	t.Run("fail/duplicate-id", func(t *testing.T) {
		wantCode(t, s.CreateUser(ctx, &airlock.User{ID: bob.ID, Name: "carol", CreatedAt: at(0)}), airlock.ECONFLICT)
	})
	t.Run("by-id", func(t *testing.T) {
		got, err := s.UserByID(ctx, alice.ID)
		must(t, err)
		equal(t, "UserByID", got, alice)
		if !got.IsAdmin() {
			t.Error("alice lost admin group")
		}
	})
	t.Run("by-name", func(t *testing.T) {
		got, err := s.UserByName(ctx, "bob")
		must(t, err)
		equal(t, "UserByName", got, bob)
	})
	t.Run("by-sso-subject", func(t *testing.T) {
		got, err := s.UserBySSOSubject(ctx, "https://idp|123")
		must(t, err)
		equal(t, "UserBySSOSubject", got, alice)
	})
	t.Run("fail/not-found", func(t *testing.T) {
		_, err := s.UserByID(ctx, "us_missing")
		wantCode(t, err, airlock.ENOTFOUND)
		_, err = s.UserByName(ctx, "nobody")
		wantCode(t, err, airlock.ENOTFOUND)
		if !strings.Contains(airlock.ErrorMessage(err), "nobody") {
			t.Errorf("message %q does not name the user", airlock.ErrorMessage(err))
		}
		_, err = s.UserBySSOSubject(ctx, "none")
		wantCode(t, err, airlock.ENOTFOUND)
		_, err = s.UserBySSOSubject(ctx, "") // bob has no subject; must not match
		wantCode(t, err, airlock.ENOTFOUND)
		wantCode(t, s.UpdateUser(ctx, &airlock.User{ID: "us_missing", Name: "x"}), airlock.ENOTFOUND)
	})
	t.Run("update", func(t *testing.T) {
		b := *bob
		b.Name, b.PasswordHash, b.Groups, b.Disabled, b.SSOSubject, b.UpdatedAt = "robert", "h2", []string{"ops"}, true, "idp|9", at(time.Hour)
		must(t, s.UpdateUser(ctx, &b))
		got, err := s.UserByID(ctx, bob.ID)
		must(t, err)
		equal(t, "updated user", got, &b)
		sameTime(t, "CreatedAt kept", got.CreatedAt, bob.CreatedAt)
		b.Name = "alice"
		wantCode(t, s.UpdateUser(ctx, &b), airlock.ECONFLICT)
	})
	t.Run("list-ordered-by-name", func(t *testing.T) {
		mkUser(t, s, "zed")
		mkUser(t, s, "carol")
		us, err := s.ListUsers(ctx)
		must(t, err)
		var names []string
		for _, u := range us {
			names = append(names, u.Name)
		}
		if want := []string{"alice", "carol", "robert", "zed"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("ListUsers names = %v, want %v", names, want)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 4 {
			t.Fatalf("CountUsers = %d, %v; want 4", n, err)
		}
	})
}

func testGroups(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	mkUser(t, s, "carol", "dev", "ops")
	mkUser(t, s, "alice", "admins", "dev")
	mkUser(t, s, "bob", "dev")
	mkUser(t, s, "dave")
	got, err := s.ListGroups(ctx)
	must(t, err)
	want := map[string][]string{"admins": {"alice"}, "dev": {"alice", "bob", "carol"}, "ops": {"carol"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListGroups = %v, want %v", got, want)
	}
}

func testUserZeroTime(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	u := &airlock.User{ID: airlock.NewID("us"), Name: "z"}
	must(t, s.CreateUser(ctx, u))
	got, err := s.UserByID(ctx, u.ID)
	must(t, err)
	if !got.CreatedAt.IsZero() || !got.UpdatedAt.IsZero() {
		t.Fatalf("zero times came back as %v, %v", got.CreatedAt, got.UpdatedAt)
	}
	if got.Groups != nil {
		t.Fatalf("nil groups came back as %#v", got.Groups)
	}
	// A time with a non-UTC zone comes back as the same instant in UTC.
	loc := time.FixedZone("X", 5*3600+1800)
	u.UpdatedAt = base.In(loc)
	must(t, s.UpdateUser(ctx, u))
	got, err = s.UserByID(ctx, u.ID)
	must(t, err)
	sameTime(t, "UpdatedAt", got.UpdatedAt, base)
}

func mkFactor(t *testing.T, s airlock.Store, userID string, d time.Duration) *airlock.Factor {
	t.Helper()
	f := &airlock.Factor{ID: airlock.NewID("fa"), UserID: userID, Kind: airlock.FactorTOTP, Name: "phone", Status: airlock.FactorPending,
		Secret: []byte{0, 1, 2, 255}, Data: []byte(`{"a":1}`), Counter: 5, CreatedAt: at(d)}
	must(t, s.CreateFactor(t.Context(), f))
	return f
}

func testFactors(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	u := mkUser(t, s, "alice")
	f2 := mkFactor(t, s, u.ID, 2*time.Second)
	f1 := mkFactor(t, s, u.ID, time.Second)
	other := mkUser(t, s, "bob")
	mkFactor(t, s, other.ID, 0)

	got, err := s.FactorByID(ctx, f1.ID)
	must(t, err)
	equal(t, "FactorByID", got, f1)

	t.Run("list-ordered-by-created", func(t *testing.T) {
		fs, err := s.ListFactors(ctx, u.ID)
		must(t, err)
		if len(fs) != 2 || fs[0].ID != f1.ID || fs[1].ID != f2.ID {
			t.Fatalf("ListFactors = %v, want [%s %s]", ids(fs), f1.ID, f2.ID)
		}
		fs, err = s.ListFactors(ctx, "us_none")
		must(t, err)
		if len(fs) != 0 {
			t.Fatalf("ListFactors of unknown user = %d factors", len(fs))
		}
	})
	t.Run("update-keeps-counter", func(t *testing.T) {
		f := *f1
		f.Name, f.Status, f.Secret, f.Data, f.LastUsedAt, f.Counter = "yubikey", airlock.FactorActive, []byte("s2"), nil, at(time.Minute), 99
		must(t, s.UpdateFactor(ctx, &f))
		got, err := s.FactorByID(ctx, f1.ID)
		must(t, err)
		f.Counter = f1.Counter
		equal(t, "updated factor", got, &f)
	})
	t.Run("fail/duplicate", func(t *testing.T) {
		wantCode(t, s.CreateFactor(ctx, &airlock.Factor{ID: f1.ID, UserID: u.ID, Kind: airlock.FactorTOTP}), airlock.ECONFLICT)
	})
	t.Run("fail/not-found", func(t *testing.T) {
		_, err := s.FactorByID(ctx, "fa_none")
		wantCode(t, err, airlock.ENOTFOUND)
		wantCode(t, s.UpdateFactor(ctx, &airlock.Factor{ID: "fa_none"}), airlock.ENOTFOUND)
		wantCode(t, s.DeleteFactor(ctx, "fa_none"), airlock.ENOTFOUND)
	})
	t.Run("delete", func(t *testing.T) {
		must(t, s.DeleteFactor(ctx, f2.ID))
		_, err := s.FactorByID(ctx, f2.ID)
		wantCode(t, err, airlock.ENOTFOUND)
	})
}

func ids[T any](xs []*T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, reflect.ValueOf(x).Elem().FieldByName("ID").String())
	}
	return out
}

func testAdvanceCounter(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	u := mkUser(t, s, "alice")
	f := mkFactor(t, s, u.ID, 0) // Counter 5
	for _, tc := range []struct {
		next int64
		want bool
	}{{6, true}, {6, false}, {5, false}, {100, true}, {99, false}, {101, true}} {
		ok, err := s.AdvanceFactorCounter(ctx, f.ID, tc.next, at(time.Duration(tc.next)*time.Second))
		must(t, err)
		if ok != tc.want {
			t.Fatalf("AdvanceFactorCounter(%d) = %v, want %v", tc.next, ok, tc.want)
		}
	}
	got, err := s.FactorByID(ctx, f.ID)
	must(t, err)
	if got.Counter != 101 {
		t.Fatalf("Counter = %d, want 101", got.Counter)
	}
	sameTime(t, "LastUsedAt", got.LastUsedAt, at(101*time.Second))
	_, err = s.AdvanceFactorCounter(ctx, "fa_none", 1, at(0))
	wantCode(t, err, airlock.ENOTFOUND)
}

// parallel runs fn(i) from n goroutines released at once.
func parallel(n int, fn func(i int)) {
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			fn(i)
		}()
	}
	start.Done()
	wg.Wait()
}

func testAdvanceCounterConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	u := mkUser(t, s, "alice")
	f := mkFactor(t, s, u.ID, 0)
	var mu sync.Mutex
	wins, errs := 0, []error{}
	parallel(20, func(int) {
		ok, err := s.AdvanceFactorCounter(ctx, f.ID, 1000, at(time.Second))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			wins++
		}
	})
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if wins != 1 {
		t.Fatalf("%d goroutines advanced the counter to the same step, want exactly 1", wins)
	}
}

func testLoginSessions(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	u := mkUser(t, s, "alice")
	ls := &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("hash-1"), UserID: u.ID, CreatedAt: at(0), LastSeenAt: at(0),
		ExpiresAt: at(12 * time.Hour), SourceAddr: "10.0.0.1"}
	must(t, s.CreateLoginSession(ctx, ls))
	ls2 := &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("hash-2"), UserID: u.ID, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	must(t, s.CreateLoginSession(ctx, ls2))

	got, err := s.LoginSessionByTokenHash(ctx, []byte("hash-1"))
	must(t, err)
	equal(t, "LoginSessionByTokenHash", got, ls)

	t.Run("fail/duplicate-hash", func(t *testing.T) {
		wantCode(t, s.CreateLoginSession(ctx, &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("hash-1"), UserID: u.ID}), airlock.ECONFLICT)
	})
	t.Run("fail/unknown-user", func(t *testing.T) {
		err := s.CreateLoginSession(ctx, &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("h9"), UserID: "us_none"})
		if err == nil {
			t.Fatal("login session for an unknown user was stored")
		}
	})
	t.Run("fail/not-found", func(t *testing.T) {
		_, err := s.LoginSessionByTokenHash(ctx, []byte("nope"))
		wantCode(t, err, airlock.ENOTFOUND)
		wantCode(t, s.TouchLoginSession(ctx, "ls_none", at(0)), airlock.ENOTFOUND)
		wantCode(t, s.SetLoginSessionMFA(ctx, "ls_none", at(0), "totp"), airlock.ENOTFOUND)
		wantCode(t, s.RevokeLoginSession(ctx, "ls_none", at(0)), airlock.ENOTFOUND)
	})
	t.Run("touch-mfa-revoke", func(t *testing.T) {
		must(t, s.TouchLoginSession(ctx, ls.ID, at(time.Minute)))
		must(t, s.SetLoginSessionMFA(ctx, ls.ID, at(2*time.Minute), airlock.FactorWebAuthn))
		got, err := s.LoginSessionByTokenHash(ctx, ls.TokenHash)
		must(t, err)
		sameTime(t, "LastSeenAt", got.LastSeenAt, at(time.Minute))
		sameTime(t, "MFAAt", got.MFAAt, at(2*time.Minute))
		if got.MFAMethod != airlock.FactorWebAuthn {
			t.Errorf("MFAMethod = %q", got.MFAMethod)
		}
		must(t, s.RevokeLoginSession(ctx, ls.ID, at(3*time.Minute)))
		got, err = s.LoginSessionByTokenHash(ctx, ls.TokenHash)
		must(t, err)
		sameTime(t, "RevokedAt", got.RevokedAt, at(3*time.Minute))
	})
	t.Run("revoke-user", func(t *testing.T) {
		other := mkUser(t, s, "bob")
		must(t, s.CreateLoginSession(ctx, &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("hash-bob"), UserID: other.ID, CreatedAt: at(0)}))
		must(t, s.CreateLoginSession(ctx, &airlock.LoginSession{ID: airlock.NewID("ls"), TokenHash: []byte("hash-3"), UserID: u.ID, CreatedAt: at(0)}))
		n, err := s.RevokeUserLoginSessions(ctx, u.ID, at(time.Hour))
		must(t, err)
		if n != 2 { // ls was already revoked
			t.Fatalf("RevokeUserLoginSessions = %d, want 2", n)
		}
		got, err := s.LoginSessionByTokenHash(ctx, ls.TokenHash)
		must(t, err)
		sameTime(t, "RevokedAt kept", got.RevokedAt, at(3*time.Minute))
		got, err = s.LoginSessionByTokenHash(ctx, []byte("hash-2"))
		must(t, err)
		sameTime(t, "RevokedAt", got.RevokedAt, at(time.Hour))
		got, err = s.LoginSessionByTokenHash(ctx, []byte("hash-bob"))
		must(t, err)
		if !got.RevokedAt.IsZero() {
			t.Fatal("another user's session was revoked")
		}
	})
}

func testResources(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r := &airlock.Resource{ID: airlock.NewID("rs"), Name: "prod-db", Kind: airlock.KindPostgres, Addr: "10.0.0.5:5432",
		Labels: map[string]string{"env": "prod", "team": "core"}, Credentials: map[string][]byte{"read": {1, 2, 3}, "write": {0, 255}},
		Options: []byte(`{"database":"app"}`), Source: "api", CreatedAt: at(0)}
	must(t, s.CreateResource(ctx, r))
	bare := &airlock.Resource{ID: airlock.NewID("rs"), Name: "bastion", Kind: airlock.KindSSH, Addr: "10.0.0.6:22", Source: "policy", CreatedAt: at(time.Second)}
	must(t, s.CreateResource(ctx, bare))

	got, err := s.ResourceByName(ctx, "prod-db")
	must(t, err)
	equal(t, "ResourceByName", got, r)
	got, err = s.ResourceByName(ctx, "bastion")
	must(t, err)
	equal(t, "ResourceByName(no labels)", got, bare)

	wantCode(t, s.CreateResource(ctx, &airlock.Resource{ID: airlock.NewID("rs"), Name: "prod-db", Kind: airlock.KindSSH}), airlock.ECONFLICT)
	_, err = s.ResourceByName(ctx, "nope")
	wantCode(t, err, airlock.ENOTFOUND)
	wantCode(t, s.UpdateResource(ctx, &airlock.Resource{Name: "nope"}), airlock.ENOTFOUND)
	wantCode(t, s.DeleteResource(ctx, "nope"), airlock.ENOTFOUND)

	u := *r
	u.Addr, u.Labels, u.Credentials, u.Options = "10.0.0.7:5432", map[string]string{"env": "staging"}, map[string][]byte{"admin": []byte("x")}, nil
	must(t, s.UpdateResource(ctx, &u))
	got, err = s.ResourceByName(ctx, "prod-db")
	must(t, err)
	equal(t, "updated resource", got, &u)

	list, err := s.ListResources(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "bastion" || list[1].Name != "prod-db" {
		t.Fatalf("ListResources = %v", ids(list))
	}
	must(t, s.DeleteResource(ctx, "bastion"))
	_, err = s.ResourceByName(ctx, "bastion")
	wantCode(t, err, airlock.ENOTFOUND)
}

func testPolicy(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	_, err := s.CurrentPolicy(ctx)
	wantCode(t, err, airlock.ENOTFOUND)
	for i := 1; i <= 3; i++ {
		p := &airlock.PolicyVersion{Document: []byte(fmt.Sprintf("version: %d\n", i)), AppliedBy: "alice", AppliedAt: at(time.Duration(i) * time.Minute), SHA256: fmt.Sprint("sha", i)}
		must(t, s.SavePolicy(ctx, p))
		if p.Version != int64(i) {
			t.Fatalf("SavePolicy assigned version %d, want %d", p.Version, i)
		}
		cur, err := s.CurrentPolicy(ctx)
		must(t, err)
		equal(t, "CurrentPolicy", cur, p)
	}
}

func mkRequest(t *testing.T, s airlock.Store, userID string, d time.Duration, state string, bg bool) *airlock.AccessRequest {
	t.Helper()
	r := &airlock.AccessRequest{ID: airlock.NewID("rq"), UserID: userID, UserName: "alice", Resource: "prod-db", Access: "read",
		Duration: time.Hour, Reason: "INC-1", Ticket: "T-1", State: state, Rule: "devs-read", RequiredApprovals: 2,
		ApproverGroups: []string{"leads", "sec"}, BreakGlass: bg, PolicyVersion: 3, CreatedAt: at(d), ExpiresAt: at(d + time.Hour)}
	must(t, s.CreateRequest(t.Context(), r))
	return r
}

func testRequests(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r1 := mkRequest(t, s, "us_a", 1*time.Second, airlock.RequestPending, false)
	r2 := mkRequest(t, s, "us_b", 2*time.Second, airlock.RequestPending, true)
	r3 := mkRequest(t, s, "us_a", 3*time.Second, airlock.RequestDenied, false)
	r4 := &airlock.AccessRequest{ID: airlock.NewID("rq"), UserID: "us_a", Resource: "x", State: airlock.RequestPending,
		StartAt: at(time.Hour), ExtendsGrantID: "gr_1", CreatedAt: at(4 * time.Second), DecidedAt: at(5 * time.Second)}
	must(t, s.CreateRequest(ctx, r4))

	got, err := s.RequestByID(ctx, r1.ID)
	must(t, err)
	equal(t, "RequestByID", got, r1)
	got, err = s.RequestByID(ctx, r4.ID)
	must(t, err)
	equal(t, "RequestByID(sparse)", got, r4)
	_, err = s.RequestByID(ctx, "rq_none")
	wantCode(t, err, airlock.ENOTFOUND)
	wantCode(t, s.CreateRequest(ctx, r1), airlock.ECONFLICT)

	yes, no := true, false
	for _, tc := range []struct {
		name string
		f    airlock.RequestFilter
		want []*airlock.AccessRequest
	}{
		{"all-newest-first", airlock.RequestFilter{}, []*airlock.AccessRequest{r4, r3, r2, r1}},
		{"user", airlock.RequestFilter{UserID: "us_a"}, []*airlock.AccessRequest{r4, r3, r1}},
		{"state", airlock.RequestFilter{State: airlock.RequestPending}, []*airlock.AccessRequest{r4, r2, r1}},
		{"user+state", airlock.RequestFilter{UserID: "us_a", State: airlock.RequestPending}, []*airlock.AccessRequest{r4, r1}},
		{"break-glass", airlock.RequestFilter{BreakGlass: &yes}, []*airlock.AccessRequest{r2}},
		{"not-break-glass", airlock.RequestFilter{BreakGlass: &no}, []*airlock.AccessRequest{r4, r3, r1}},
		{"limit", airlock.RequestFilter{Limit: 2}, []*airlock.AccessRequest{r4, r3}},
		{"none", airlock.RequestFilter{UserID: "us_none"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRequests(ctx, tc.f)
			must(t, err)
			if !reflect.DeepEqual(ids(got), ids(tc.want)) {
				t.Fatalf("ListRequests = %v, want %v", ids(got), ids(tc.want))
			}
		})
	}
}

func testRequestState(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r := mkRequest(t, s, "us_a", 0, airlock.RequestPending, false)
	must(t, s.SetRequestState(ctx, r.ID, airlock.RequestPending, airlock.RequestDenied, at(time.Minute)))
	got, err := s.RequestByID(ctx, r.ID)
	must(t, err)
	if got.State != airlock.RequestDenied {
		t.Fatalf("State = %q", got.State)
	}
	sameTime(t, "DecidedAt", got.DecidedAt, at(time.Minute))
	wantCode(t, s.SetRequestState(ctx, r.ID, airlock.RequestPending, airlock.RequestCanceled, at(0)), airlock.ECONFLICT)
	wantCode(t, s.SetRequestState(ctx, "rq_none", airlock.RequestPending, airlock.RequestCanceled, at(0)), airlock.ENOTFOUND)

	// Concurrent transitions out of pending: exactly one wins.
	r2 := mkRequest(t, s, "us_a", 0, airlock.RequestPending, false)
	var mu sync.Mutex
	wins := 0
	parallel(10, func(i int) {
		to := airlock.RequestCanceled
		if i%2 == 0 {
			to = airlock.RequestExpired
		}
		err := s.SetRequestState(ctx, r2.ID, airlock.RequestPending, to, at(0))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins++
		} else if !airlock.IsCode(err, airlock.ECONFLICT) {
			t.Errorf("SetRequestState: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("%d concurrent transitions from pending succeeded, want 1", wins)
	}
}

func testReviews(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r := mkRequest(t, s, "us_a", 0, airlock.RequestPending, false)
	rv2 := &airlock.Review{RequestID: r.ID, ReviewerID: "us_c", ReviewerName: "carol", Decision: airlock.DecisionDeny, Comment: "no", MFAMethod: "webauthn", CreatedAt: at(2 * time.Second)}
	rv1 := &airlock.Review{RequestID: r.ID, ReviewerID: "us_b", ReviewerName: "bob", Decision: airlock.DecisionApprove, MFAMethod: "totp", CreatedAt: at(time.Second)}
	must(t, s.AddReview(ctx, rv2))
	must(t, s.AddReview(ctx, rv1))
	wantCode(t, s.AddReview(ctx, &airlock.Review{RequestID: r.ID, ReviewerID: "us_b", ReviewerName: "bob", Decision: airlock.DecisionApprove, CreatedAt: at(3 * time.Second)}), airlock.ECONFLICT)
	got, err := s.ListReviews(ctx, r.ID)
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("ListReviews = %d reviews, want 2", len(got))
	}
	equal(t, "first review", got[0], rv1)
	equal(t, "second review", got[1], rv2)
	got, err = s.ListReviews(ctx, "rq_none")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("reviews of unknown request: %d", len(got))
	}
}

func mkGrant(t *testing.T, s airlock.Store, mod func(g *airlock.Grant)) *airlock.Grant {
	t.Helper()
	g := &airlock.Grant{ID: airlock.NewID("gr"), UserID: "us_a", UserName: "alice", Resource: "prod-db", Access: "read",
		StartsAt: at(0), EndsAt: at(time.Hour), State: airlock.GrantActive, MFAMethod: "totp", CreatedAt: at(0)}
	if mod != nil {
		mod(g)
	}
	must(t, s.CreateGrant(t.Context(), g))
	return g
}

func testGrants(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	g := mkGrant(t, s, func(g *airlock.Grant) { g.RequestID = "rq_1"; g.BreakGlass = true })
	got, err := s.GrantByID(ctx, g.ID)
	must(t, err)
	equal(t, "GrantByID", got, g)
	_, err = s.GrantByID(ctx, "gr_none")
	wantCode(t, err, airlock.ENOTFOUND)
	wantCode(t, s.CreateGrant(ctx, g), airlock.ECONFLICT)
	t.Run("fail/second-grant-for-request", func(t *testing.T) {
		g2 := *g
		g2.ID = airlock.NewID("gr")
		wantCode(t, s.CreateGrant(ctx, &g2), airlock.ECONFLICT)
	})
	t.Run("grants-without-request", func(t *testing.T) {
		mkGrant(t, s, nil)
		mkGrant(t, s, nil) // many grants may have no request
	})
	t.Run("ack", func(t *testing.T) {
		must(t, s.AckGrant(ctx, g.ID, "sec-lead", at(time.Minute)))
		got, err := s.GrantByID(ctx, g.ID)
		must(t, err)
		if got.AckedBy != "sec-lead" {
			t.Errorf("AckedBy = %q", got.AckedBy)
		}
		sameTime(t, "AckedAt", got.AckedAt, at(time.Minute))
		wantCode(t, s.AckGrant(ctx, "gr_none", "x", at(0)), airlock.ENOTFOUND)
	})
	t.Run("expire-batch", func(t *testing.T) {
		due := mkGrant(t, s, nil)                                                       // ends at +1h
		later := mkGrant(t, s, func(g *airlock.Grant) { g.EndsAt = at(3 * time.Hour) }) // not yet due
		revoked := mkGrant(t, s, nil)
		must(t, s.EndGrant(ctx, revoked.ID, airlock.GrantRevoked, at(time.Minute), "bob", "done"))
		changed, err := s.ExpireGrants(ctx, []string{due.ID, later.ID, revoked.ID, "gr_none"}, at(time.Hour))
		must(t, err)
		if len(changed) != 1 || changed[0] != due.ID {
			t.Fatalf("ExpireGrants changed %v, want only %s", changed, due.ID)
		}
		for id, want := range map[string]string{due.ID: airlock.GrantExpired, later.ID: airlock.GrantActive, revoked.ID: airlock.GrantRevoked} {
			got, err := s.GrantByID(ctx, id)
			must(t, err)
			if got.State != want {
				t.Errorf("grant %s state = %s, want %s", id, got.State, want)
			}
		}
		changed, err = s.ExpireGrants(ctx, []string{due.ID}, at(time.Hour))
		must(t, err)
		if len(changed) != 0 {
			t.Errorf("second ExpireGrants changed %v", changed)
		}
	})
}

func testGrantFilters(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	// created in order; newest first means reverse.
	past := mkGrant(t, s, func(g *airlock.Grant) {
		g.StartsAt, g.EndsAt, g.CreatedAt = at(-2*time.Hour), at(-time.Hour), at(1*time.Second)
	})
	cur := mkGrant(t, s, func(g *airlock.Grant) { g.CreatedAt = at(2 * time.Second) })
	future := mkGrant(t, s, func(g *airlock.Grant) {
		g.StartsAt, g.EndsAt, g.CreatedAt, g.UserID = at(time.Hour), at(2*time.Hour), at(3*time.Second), "us_b"
	})
	revoked := mkGrant(t, s, func(g *airlock.Grant) {
		g.State, g.CreatedAt, g.Resource = airlock.GrantRevoked, at(4*time.Second), "bastion"
	})
	bg := mkGrant(t, s, func(g *airlock.Grant) { g.BreakGlass, g.CreatedAt, g.UserID = true, at(5*time.Second), "us_b" })
	bgAcked := mkGrant(t, s, func(g *airlock.Grant) {
		g.BreakGlass, g.CreatedAt, g.AckedBy, g.AckedAt = true, at(6*time.Second), "sec", at(7*time.Second)
	})
	for _, tc := range []struct {
		name string
		f    airlock.GrantFilter
		want []*airlock.Grant
	}{
		{"all-newest-first", airlock.GrantFilter{}, []*airlock.Grant{bgAcked, bg, revoked, future, cur, past}},
		{"user", airlock.GrantFilter{UserID: "us_b"}, []*airlock.Grant{bg, future}},
		{"resource", airlock.GrantFilter{Resource: "bastion"}, []*airlock.Grant{revoked}},
		{"active-at-now", airlock.GrantFilter{ActiveAt: at(time.Minute)}, []*airlock.Grant{bgAcked, bg, cur}},
		{"active-at-start-inclusive", airlock.GrantFilter{ActiveAt: at(time.Hour)}, []*airlock.Grant{future}},
		{"active-at-end-exclusive", airlock.GrantFilter{ActiveAt: at(-time.Hour)}, nil},
		{"active-at+user", airlock.GrantFilter{ActiveAt: at(time.Minute), UserID: "us_b"}, []*airlock.Grant{bg}},
		{"due-before", airlock.GrantFilter{DueBefore: at(time.Hour)}, []*airlock.Grant{bgAcked, bg, cur, past}},
		{"due-before-exclusive-of-later", airlock.GrantFilter{DueBefore: at(time.Hour - time.Microsecond)}, []*airlock.Grant{past}},
		{"unacked-break-glass", airlock.GrantFilter{UnackedBreakGlass: true}, []*airlock.Grant{bg}},
		{"limit", airlock.GrantFilter{Limit: 2}, []*airlock.Grant{bgAcked, bg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListGrants(ctx, tc.f)
			must(t, err)
			if !reflect.DeepEqual(ids(got), ids(tc.want)) {
				t.Fatalf("ListGrants(%+v) = %v, want %v", tc.f, ids(got), ids(tc.want))
			}
		})
	}
}

func testApprove(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r := mkRequest(t, s, "us_a", 0, airlock.RequestPending, false)
	g := &airlock.Grant{ID: airlock.NewID("gr"), UserID: r.UserID, UserName: r.UserName, Resource: r.Resource, Access: r.Access,
		StartsAt: at(time.Minute), EndsAt: at(time.Minute + r.Duration), State: airlock.GrantActive, CreatedAt: at(time.Minute)}
	must(t, s.ApproveRequest(ctx, r.ID, g))
	got, err := s.RequestByID(ctx, r.ID)
	must(t, err)
	if got.State != airlock.RequestApproved || got.GrantID != g.ID {
		t.Fatalf("request after approval: state %q grant %q", got.State, got.GrantID)
	}
	gg, err := s.GrantByID(ctx, g.ID)
	must(t, err)
	if gg.RequestID != r.ID {
		t.Fatalf("grant RequestID = %q, want %q", gg.RequestID, r.ID)
	}
	g2 := *g
	g2.ID = airlock.NewID("gr")
	g2.RequestID = ""
	wantCode(t, s.ApproveRequest(ctx, r.ID, &g2), airlock.ECONFLICT)
	if _, err := s.GrantByID(ctx, g2.ID); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("a refused approval left a grant behind: %v", err)
	}
	g3 := *g
	g3.ID, g3.RequestID = airlock.NewID("gr"), ""
	wantCode(t, s.ApproveRequest(ctx, "rq_none", &g3), airlock.ENOTFOUND)

	denied := mkRequest(t, s, "us_a", 0, airlock.RequestDenied, false)
	g4 := *g
	g4.ID, g4.RequestID = airlock.NewID("gr"), ""
	wantCode(t, s.ApproveRequest(ctx, denied.ID, &g4), airlock.ECONFLICT)
}

func testApproveConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	r := mkRequest(t, s, "us_a", 0, airlock.RequestPending, false)
	var mu sync.Mutex
	wins := 0
	parallel(20, func(int) {
		g := &airlock.Grant{ID: airlock.NewID("gr"), UserID: r.UserID, Resource: r.Resource, Access: r.Access,
			StartsAt: at(0), EndsAt: at(time.Hour), State: airlock.GrantActive, CreatedAt: at(0)}
		err := s.ApproveRequest(ctx, r.ID, g)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins++
		} else if !airlock.IsCode(err, airlock.ECONFLICT) {
			t.Errorf("ApproveRequest: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("%d concurrent approvals succeeded, want exactly 1", wins)
	}
	gs, err := s.ListGrants(ctx, airlock.GrantFilter{})
	must(t, err)
	if len(gs) != 1 {
		t.Fatalf("%d grants exist for one request, want 1", len(gs))
	}
}

func testEndGrant(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	g := mkGrant(t, s, nil)
	must(t, s.EndGrant(ctx, g.ID, airlock.GrantRevoked, at(time.Minute), "bob", "incident over"))
	got, err := s.GrantByID(ctx, g.ID)
	must(t, err)
	if got.State != airlock.GrantRevoked || got.RevokedBy != "bob" || got.RevokeReason != "incident over" {
		t.Fatalf("ended grant = %+v", got)
	}
	sameTime(t, "RevokedAt", got.RevokedAt, at(time.Minute))
	if got.ActiveAt(at(2 * time.Minute)) {
		t.Fatal("revoked grant is active")
	}
	wantCode(t, s.EndGrant(ctx, g.ID, airlock.GrantExpired, at(time.Hour), "system", "expired"), airlock.ECONFLICT)
	wantCode(t, s.EndGrant(ctx, "gr_none", airlock.GrantRevoked, at(0), "", ""), airlock.ENOTFOUND)
	g2 := mkGrant(t, s, nil)
	wantCode(t, s.EndGrant(ctx, g2.ID, airlock.GrantActive, at(0), "", ""), airlock.EINVALID)

	var mu sync.Mutex
	wins := 0
	parallel(10, func(i int) {
		state := airlock.GrantRevoked
		if i%2 == 0 {
			state = airlock.GrantExpired
		}
		err := s.EndGrant(ctx, g2.ID, state, at(time.Hour), "x", "y")
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins++
		} else if !airlock.IsCode(err, airlock.ECONFLICT) {
			t.Errorf("EndGrant: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("%d concurrent EndGrant calls succeeded, want 1", wins)
	}
}

func testConnectTokens(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	g := mkGrant(t, s, nil)
	tok := &airlock.ConnectToken{TokenHash: []byte("tok-1"), UserID: "us_a", GrantID: g.ID, Resource: "prod-db", ExpiresAt: at(time.Minute), UsesLeft: 2, CreatedAt: at(0)}
	must(t, s.CreateConnectToken(ctx, tok))
	wantCode(t, s.CreateConnectToken(ctx, tok), airlock.ECONFLICT)

	got, err := s.UseConnectToken(ctx, []byte("tok-1"), at(time.Second))
	must(t, err)
	want := *tok
	want.UsesLeft = 1
	equal(t, "UseConnectToken", got, &want)
	_, err = s.UseConnectToken(ctx, []byte("tok-1"), at(time.Minute)) // ExpiresAt is exclusive
	wantCode(t, err, airlock.ENOTFOUND)
	_, err = s.UseConnectToken(ctx, []byte("tok-1"), at(2*time.Second))
	must(t, err)
	_, err = s.UseConnectToken(ctx, []byte("tok-1"), at(3*time.Second))
	wantCode(t, err, airlock.ENOTFOUND)
	_, err = s.UseConnectToken(ctx, []byte("nope"), at(0))
	wantCode(t, err, airlock.ENOTFOUND)
	// The three failures are indistinguishable to the caller.
	_, e1 := s.UseConnectToken(ctx, []byte("tok-1"), at(3*time.Second))
	_, e2 := s.UseConnectToken(ctx, []byte("nope"), at(0))
	if airlock.ErrorMessage(e1) != airlock.ErrorMessage(e2) {
		t.Errorf("used-up and unknown tokens give different messages: %q vs %q", airlock.ErrorMessage(e1), airlock.ErrorMessage(e2))
	}
}

func testLiveConnectTokens(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	g := mkGrant(t, s, nil)
	mk := func(hash, user, resource string, created, expires time.Duration, uses int) *airlock.ConnectToken {
		tok := &airlock.ConnectToken{TokenHash: []byte(hash), UserID: user, GrantID: g.ID, Resource: resource, ExpiresAt: at(expires),
			UsesLeft: uses, CreatedAt: at(created), SCRAMStoredKey: []byte("stored-" + hash), SCRAMServerKey: []byte("server-" + hash)}
		must(t, s.CreateConnectToken(ctx, tok))
		return tok
	}
	t1 := mk("live-1", "us_a", "prod-db", 0, time.Minute, 1)
	mk("live-2", "us_a", "other-db", time.Second, time.Minute, 1)
	t3 := mk("live-3", "us_a", "prod-db", 2*time.Second, 30*time.Second, 1)
	mk("live-4", "us_b", "prod-db", 3*time.Second, time.Minute, 1)
	mk("live-5", "us_a", "prod-db", 4*time.Second, time.Minute, 0)
	got, err := s.LiveConnectTokens(ctx, "us_a", "prod-db", at(10*time.Second))
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("LiveConnectTokens = %d tokens, want 2", len(got))
	}
	equal(t, "LiveConnectTokens[0]", got[0], t3)
	equal(t, "LiveConnectTokens[1]", got[1], t1)
	got, err = s.LiveConnectTokens(ctx, "us_a", "prod-db", at(30*time.Second)) // ExpiresAt is exclusive
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("LiveConnectTokens after one expired = %d tokens, want 1", len(got))
	}
	equal(t, "LiveConnectTokens after one expired", got[0], t1)
	_, err = s.UseConnectToken(ctx, t1.TokenHash, at(31*time.Second))
	must(t, err)
	got, err = s.LiveConnectTokens(ctx, "us_a", "prod-db", at(31*time.Second))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("LiveConnectTokens after use = %d tokens", len(got))
	}
}

func testConnectTokenConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	g := mkGrant(t, s, nil)
	must(t, s.CreateConnectToken(ctx, &airlock.ConnectToken{TokenHash: []byte("once"), UserID: "us_a", GrantID: g.ID, Resource: "prod-db", ExpiresAt: at(time.Minute), UsesLeft: 1, CreatedAt: at(0)}))
	var mu sync.Mutex
	wins := 0
	parallel(20, func(int) {
		_, err := s.UseConnectToken(ctx, []byte("once"), at(time.Second))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins++
		} else if !airlock.IsCode(err, airlock.ENOTFOUND) {
			t.Errorf("UseConnectToken: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("single-use token used %d times, want exactly 1", wins)
	}
}

func testSessions(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	mk := func(d time.Duration, user, grant string) *airlock.Session {
		x := &airlock.Session{ID: airlock.NewID("se"), GrantID: grant, UserID: user, UserName: "alice", Resource: "prod-db", Kind: airlock.KindPostgres,
			Access: "read", SourceAddr: "10.0.0.1:5000", Node: "node-1", StartedAt: at(d)}
		must(t, s.CreateSession(ctx, x))
		return x
	}
	s1 := mk(1*time.Second, "us_a", "gr_1")
	s2 := mk(2*time.Second, "us_b", "gr_2")
	s3 := mk(3*time.Second, "us_a", "gr_1")
	got, err := s.SessionByID(ctx, s1.ID)
	must(t, err)
	equal(t, "SessionByID", got, s1)
	if !got.Active() {
		t.Fatal("new session not active")
	}
	wantCode(t, s.CreateSession(ctx, s1), airlock.ECONFLICT)
	_, err = s.SessionByID(ctx, "se_none")
	wantCode(t, err, airlock.ENOTFOUND)
	wantCode(t, s.EndSession(ctx, &airlock.Session{ID: "se_none", EndedAt: at(0)}), airlock.ENOTFOUND)

	end := *s1
	end.EndedAt, end.EndReason, end.BytesIn, end.BytesOut, end.Statements, end.Recording, end.RecordingSHA256 =
		at(time.Minute), "grant_expired", 100, 2000, 7, "rec/se_1", "abcd"
	end.Recordings = []airlock.SessionRecording{{ID: "se_1-1", SHA256: "ef01", Title: "alice exec sh"}, {ID: "se_1-2", SHA256: "2345"}}
	must(t, s.EndSession(ctx, &end))
	got, err = s.SessionByID(ctx, s1.ID)
	must(t, err)
	equal(t, "ended session", got, &end)
	// A session ends once: a second end is refused and the first stands.
	again := end
	again.EndedAt, again.EndReason, again.BytesIn = at(2*time.Minute), "client_closed", 999
	wantCode(t, s.EndSession(ctx, &again), airlock.ECONFLICT)
	got, err = s.SessionByID(ctx, s1.ID)
	must(t, err)
	equal(t, "session ended twice", got, &end)

	for _, tc := range []struct {
		name string
		f    airlock.SessionFilter
		want []*airlock.Session
	}{
		{"all-newest-first", airlock.SessionFilter{}, []*airlock.Session{s3, s2, s1}},
		{"user", airlock.SessionFilter{UserID: "us_a"}, []*airlock.Session{s3, s1}},
		{"grant", airlock.SessionFilter{GrantID: "gr_2"}, []*airlock.Session{s2}},
		{"active", airlock.SessionFilter{Active: true}, []*airlock.Session{s3, s2}},
		{"active+user", airlock.SessionFilter{Active: true, UserID: "us_a"}, []*airlock.Session{s3}},
		{"limit", airlock.SessionFilter{Limit: 1}, []*airlock.Session{s3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListSessions(ctx, tc.f)
			must(t, err)
			if !reflect.DeepEqual(ids(got), ids(tc.want)) {
				t.Fatalf("ListSessions(%+v) = %v, want %v", tc.f, ids(got), ids(tc.want))
			}
		})
	}
}

// fakeHash is the suite's stand-in for the audit package's SHA-256: any
// function of (seq, prev) works for checking the store keeps the chain.
func fakeHash(seq int64, prev string) string {
	p := prev
	if len(p) > 8 {
		p = p[:8]
	}
	return fmt.Sprintf("%08x%s", seq*2654435761%(1<<32), p)
}

// chain returns a build func appending n events that continue head.
func chain(n int, mod func(i int, e *airlock.Event)) func(airlock.AuditHead) ([]airlock.Event, error) {
	return func(h airlock.AuditHead) ([]airlock.Event, error) {
		evs := make([]airlock.Event, n)
		prev := h.Hash
		for i := range evs {
			seq := h.Seq + 1 + int64(i)
			e := airlock.Event{Seq: seq, Time: base.Add(time.Duration(seq) * time.Second).Truncate(time.Microsecond),
				Actor: airlock.Actor{ID: "us_a", Name: "alice"}, Action: "grant.create", Outcome: airlock.OutcomeSuccess, PrevHash: prev}
			if mod != nil {
				mod(i, &e)
			}
			e.Hash = fakeHash(seq, prev)
			prev = e.Hash
			evs[i] = e
		}
		return evs, nil
	}
}

// checkChain reads the whole log and checks seqs are 1..n and linked.
func checkChain(t *testing.T, s airlock.Store, n int) []airlock.Event {
	t.Helper()
	var evs []airlock.Event
	must(t, s.ScanEvents(t.Context(), 0, func(e airlock.Event) error {
		evs = append(evs, e)
		return nil
	}))
	if len(evs) != n {
		t.Fatalf("log has %d events, want %d", len(evs), n)
	}
	prev := ""
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if e.PrevHash != prev || e.Hash != fakeHash(e.Seq, prev) {
			t.Fatalf("chain broken at seq %d: prev %q hash %q, want prev %q", e.Seq, e.PrevHash, e.Hash, prev)
		}
		prev = e.Hash
	}
	h, err := s.AuditHead(t.Context())
	must(t, err)
	if n > 0 && (h.Seq != int64(n) || h.Hash != evs[n-1].Hash) {
		t.Fatalf("AuditHead = %+v, want seq %d hash %s", h, n, evs[n-1].Hash)
	}
	return evs
}

func testAppend(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	h, err := s.AuditHead(ctx)
	must(t, err)
	if h != (airlock.AuditHead{}) {
		t.Fatalf("head of empty log = %+v, want zero", h)
	}
	details := []json.RawMessage{
		json.RawMessage(`{"b":1,  "a":[1,2,3], "u":"\u00e9\u2028"}`), // odd spacing and escapes kept byte-exact
		nil,
		json.RawMessage(`{}`),
	}
	var appended []airlock.Event
	must(t, s.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
		evs, _ := chain(3, func(i int, e *airlock.Event) {
			e.Resource, e.RequestID, e.GrantID, e.SessionID, e.SourceAddr = "prod-db", "rq_1", "gr_1", "se_1", "10.0.0.1:1"
			e.Details = details[i]
			e.Time = base.Add(time.Duration(i) * time.Nanosecond * 1500) // sub-µs digits: truncated, never rounded up
			e.Time = e.Time.Truncate(time.Microsecond)
		})(h)
		appended = evs
		return evs, nil
	}))
	got := checkChain(t, s, 3)
	for i := range got {
		if !bytes.Equal(got[i].Details, appended[i].Details) {
			t.Errorf("event %d details = %q, want %q", i+1, got[i].Details, appended[i].Details)
		}
		if (got[i].Details == nil) != (appended[i].Details == nil) {
			t.Errorf("event %d details nil-ness changed: %#v", i+1, got[i].Details)
		}
		w := appended[i]
		g := got[i]
		g.Details, w.Details = nil, nil
		if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("event %d time = %v, want %v UTC", i+1, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i+1, g, w)
		}
	}
	must(t, s.AppendEvents(ctx, chain(2, nil)))
	checkChain(t, s, 5)

	t.Run("empty-batch", func(t *testing.T) {
		must(t, s.AppendEvents(ctx, func(airlock.AuditHead) ([]airlock.Event, error) { return nil, nil }))
		checkChain(t, s, 5)
	})
}

func testAppendErrors(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	must(t, s.AppendEvents(ctx, chain(2, nil)))
	boom := errors.New("boom")
	t.Run("build-error-rolls-back", func(t *testing.T) {
		err := s.AppendEvents(ctx, func(airlock.AuditHead) ([]airlock.Event, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("AppendEvents = %v, want the build error", err)
		}
		checkChain(t, s, 2)
	})
	for _, tc := range []struct {
		name string
		mod  func(evs []airlock.Event)
	}{
		{"gap", func(evs []airlock.Event) { evs[1].Seq++ }},
		{"reuse-seq", func(evs []airlock.Event) {
			for i := range evs {
				evs[i].Seq -= 2
			}
		}},
		{"skip-first", func(evs []airlock.Event) { evs[0].Seq = 5 }},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			err := s.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
				evs, _ := chain(3, nil)(h)
				tc.mod(evs)
				return evs, nil
			})
			if err == nil {
				t.Fatal("AppendEvents accepted a batch that does not continue the chain")
			}
			checkChain(t, s, 2)
		})
	}
}

func testAppendConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	const workers, batches, size = 8, 10, 7
	var mu sync.Mutex
	var errs []error
	parallel(workers, func(w int) {
		for range batches {
			err := s.AppendEvents(ctx, chain(size, func(i int, e *airlock.Event) { e.Actor.Name = fmt.Sprint("worker-", w) }))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	})
	if len(errs) > 0 {
		t.Fatalf("concurrent appends failed: %v", errs)
	}
	checkChain(t, s, workers*batches*size)
}

func testListEvents(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	actions := []string{"grant.create", "grant.revoke", "request.create", "grants.x", "session.start", "grant.", "session.end"}
	// Three appends (3, 2 and 2 events), so that stores which keep a
	// group commit together (as one block) are read across several.
	for _, part := range [][2]int{{0, 3}, {3, 5}, {5, 7}} {
		must(t, s.AppendEvents(ctx, chain(part[1]-part[0], func(i int, e *airlock.Event) {
			i += part[0]
			e.Action = actions[i]
			if i%2 == 0 {
				e.Actor.Name = "bob"
			}
			if i >= 4 {
				e.SessionID, e.GrantID, e.Resource = "se_1", "gr_1", "prod-db"
			}
		})))
	}
	seqs := func(evs []airlock.Event) []int64 {
		var out []int64
		for _, e := range evs {
			out = append(out, e.Seq)
		}
		return out
	}
	tsec := func(seq int64) time.Time { return base.Add(time.Duration(seq) * time.Second) }
	for _, tc := range []struct {
		name string
		f    airlock.EventFilter
		want []int64
	}{
		{"all", airlock.EventFilter{}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"desc", airlock.EventFilter{Desc: true}, []int64{7, 6, 5, 4, 3, 2, 1}},
		{"limit", airlock.EventFilter{Limit: 2}, []int64{1, 2}},
		{"desc-limit", airlock.EventFilter{Desc: true, Limit: 2}, []int64{7, 6}},
		{"after-seq", airlock.EventFilter{AfterSeq: 5}, []int64{6, 7}},
		{"action-exact", airlock.EventFilter{Action: "grant.create"}, []int64{1}},
		{"action-prefix", airlock.EventFilter{Action: "grant.*"}, []int64{1, 2, 6}},
		{"action-prefix-no-dot", airlock.EventFilter{Action: "grant*"}, []int64{1, 2, 4, 6}},
		{"action-star", airlock.EventFilter{Action: "*"}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"action-like-chars-literal", airlock.EventFilter{Action: "grant_%"}, nil},
		{"actor", airlock.EventFilter{ActorName: "bob"}, []int64{1, 3, 5, 7}},
		{"resource", airlock.EventFilter{Resource: "prod-db"}, []int64{5, 6, 7}},
		{"session", airlock.EventFilter{SessionID: "se_1"}, []int64{5, 6, 7}},
		{"grant", airlock.EventFilter{GrantID: "gr_1", ActorName: "bob"}, []int64{5, 7}},
		{"since-inclusive", airlock.EventFilter{Since: tsec(6)}, []int64{6, 7}},
		{"until-exclusive", airlock.EventFilter{Until: tsec(3)}, []int64{1, 2}},
		{"since-until", airlock.EventFilter{Since: tsec(2), Until: tsec(4)}, []int64{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListEvents(ctx, tc.f)
			must(t, err)
			if !reflect.DeepEqual(seqs(got), tc.want) {
				t.Fatalf("ListEvents(%+v) = %v, want %v", tc.f, seqs(got), tc.want)
			}
		})
	}
}

func testScanEvents(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	const n = 10_750 // more than one page of ~10,000
	for done := 0; done < n; {
		k := min(5000, n-done)
		must(t, s.AppendEvents(ctx, chain(k, nil)))
		done += k
	}
	checkChain(t, s, n)
	t.Run("after-seq", func(t *testing.T) {
		next := int64(10_000)
		must(t, s.ScanEvents(ctx, 9_999, func(e airlock.Event) error {
			if e.Seq != next {
				return fmt.Errorf("got seq %d, want %d", e.Seq, next)
			}
			next++
			return nil
		}))
		if next != n+1 {
			t.Fatalf("scan stopped at %d", next)
		}
	})
	t.Run("stops-on-error", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.ScanEvents(ctx, 0, func(e airlock.Event) error {
			calls++
			if e.Seq == 10_500 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 10_500 {
			t.Fatalf("ScanEvents = %v after %d calls, want stop after 10500", err, calls)
		}
	})
	t.Run("append-during-scan", func(t *testing.T) {
		// fn may write to the store (e.g. a verifier that records a
		// checkpoint) without deadlocking the scan.
		calls := 0
		must(t, s.ScanEvents(ctx, n-3, func(e airlock.Event) error {
			calls++
			if calls == 1 {
				return s.AddCheckpoint(ctx, &airlock.Checkpoint{Seq: e.Seq, Hash: e.Hash, Time: at(0), KeyID: "k", Signature: "sig"})
			}
			return nil
		}))
		if calls != 3 {
			t.Fatalf("calls = %d, want 3", calls)
		}
	})
}

func testCheckpoints(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	cs, err := s.ListCheckpoints(ctx)
	must(t, err)
	if len(cs) != 0 {
		t.Fatalf("%d checkpoints in a new store", len(cs))
	}
	c2 := &airlock.Checkpoint{Seq: 20, Hash: "h20", Time: at(2 * time.Minute), KeyID: "k1", Signature: "c2ln", Root: strings.Repeat("ab", 32)}
	c1 := &airlock.Checkpoint{Seq: 10, Hash: "h10", Time: at(time.Minute), KeyID: "k1", Signature: "c2lm"}
	must(t, s.AddCheckpoint(ctx, c2))
	must(t, s.AddCheckpoint(ctx, c1))
	wantCode(t, s.AddCheckpoint(ctx, c1), airlock.ECONFLICT)
	cs, err = s.ListCheckpoints(ctx)
	must(t, err)
	if len(cs) != 2 {
		t.Fatalf("ListCheckpoints = %d, want 2", len(cs))
	}
	equal(t, "first checkpoint", &cs[0], c1)
	equal(t, "second checkpoint", &cs[1], c2)
	// Version 2 checkpoints (with a root) by size, and the newest.
	got, err := s.TreeCheckpoint(ctx, 0)
	must(t, err)
	equal(t, "newest tree checkpoint", &got, c2)
	got, err = s.TreeCheckpoint(ctx, 20)
	must(t, err)
	equal(t, "tree checkpoint at 20", &got, c2)
	_, err = s.TreeCheckpoint(ctx, 10) // chain-only
	wantCode(t, err, airlock.ENOTFOUND)
	c3 := &airlock.Checkpoint{Seq: 30, Hash: "h30", Time: at(3 * time.Minute), KeyID: "k1", Signature: "c2lo"}
	must(t, s.AddCheckpoint(ctx, c3))
	got, err = s.TreeCheckpoint(ctx, 0)
	must(t, err)
	equal(t, "newest tree checkpoint past a chain-only one", &got, c2)
}

func testKV(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	must(t, s.PutKV(ctx, "forever", []byte("v1"), time.Time{}))
	must(t, s.PutKV(ctx, "short", []byte{0, 1, 2}, at(time.Minute)))
	must(t, s.PutKV(ctx, "empty", nil, time.Time{}))
	for _, tc := range []struct {
		key  string
		now  time.Time
		want []byte
		code string
	}{
		{"forever", at(100 * 365 * 24 * time.Hour), []byte("v1"), ""},
		{"short", at(time.Second), []byte{0, 1, 2}, ""},
		{"short", at(time.Minute), nil, airlock.ENOTFOUND}, // expiry is exclusive
		{"short", at(time.Hour), nil, airlock.ENOTFOUND},
		{"empty", at(0), []byte{}, ""},
		{"missing", at(0), nil, airlock.ENOTFOUND},
	} {
		got, err := s.GetKV(ctx, tc.key, tc.now)
		if tc.code != "" {
			wantCode(t, err, tc.code)
			continue
		}
		must(t, err)
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("GetKV(%s) = %q, want %q", tc.key, got, tc.want)
		}
	}
	// Overwrite replaces the value and the expiry.
	must(t, s.PutKV(ctx, "short", []byte("new"), at(time.Hour)))
	got, err := s.GetKV(ctx, "short", at(30*time.Minute))
	must(t, err)
	if string(got) != "new" {
		t.Fatalf("after overwrite GetKV = %q", got)
	}
	must(t, s.DeleteKV(ctx, "short"))
	_, err = s.GetKV(ctx, "short", at(0))
	wantCode(t, err, airlock.ENOTFOUND)
	must(t, s.DeleteKV(ctx, "never-existed"))

	// TakeKV returns the value once.
	must(t, s.PutKV(ctx, "once", []byte("v"), at(time.Minute)))
	got, err = s.TakeKV(ctx, "once", at(time.Second))
	must(t, err)
	if string(got) != "v" {
		t.Fatalf("TakeKV = %q", got)
	}
	_, err = s.TakeKV(ctx, "once", at(time.Second))
	wantCode(t, err, airlock.ENOTFOUND)
	must(t, s.PutKV(ctx, "stale", []byte("v"), at(time.Minute)))
	_, err = s.TakeKV(ctx, "stale", at(time.Minute)) // expired: not returned, gone all the same
	wantCode(t, err, airlock.ENOTFOUND)
	must(t, s.PutKV(ctx, "nil", nil, time.Time{}))
	got, err = s.TakeKV(ctx, "nil", at(0))
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("TakeKV(empty) = %#v", got)
	}
	// Of concurrent takers exactly one wins.
	must(t, s.PutKV(ctx, "race", []byte("v"), time.Time{}))
	var mu sync.Mutex
	wins := 0
	parallel(20, func(int) {
		_, err := s.TakeKV(ctx, "race", at(0))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins++
		} else if !airlock.IsCode(err, airlock.ENOTFOUND) {
			t.Errorf("TakeKV: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("%d concurrent TakeKV calls got the value, want 1", wins)
	}
}

func testScanKV(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	must(t, s.PutKV(ctx, "push:us_a:1", []byte("one"), at(time.Minute)))
	must(t, s.PutKV(ctx, "push:us_a:2", nil, time.Time{}))
	must(t, s.PutKV(ctx, "push:us_a:3", []byte("gone"), at(time.Second)))
	must(t, s.PutKV(ctx, "push:us_ab:1", []byte("other user"), time.Time{}))
	must(t, s.PutKV(ctx, "push:us_%:1", []byte("wildcard"), time.Time{}))
	must(t, s.PutKV(ctx, "pus", []byte("short"), time.Time{}))
	got, err := s.ScanKV(ctx, "push:us_a:", at(time.Second))
	must(t, err)
	want := map[string][]byte{"push:us_a:1": []byte("one"), "push:us_a:2": {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanKV = %q, want %q", got, want)
	}
	// LIKE wildcards in the prefix are plain characters.
	got, err = s.ScanKV(ctx, "push:us_%", at(0))
	must(t, err)
	if len(got) != 1 || string(got["push:us_%:1"]) != "wildcard" {
		t.Fatalf("ScanKV(wildcard prefix) = %q", got)
	}
	got, err = s.ScanKV(ctx, "nothing:", at(0))
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("ScanKV(missing) = %#v, want an empty map", got)
	}
}

func testThrottles(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	const w = time.Hour
	hit := func(key string, d time.Duration) airlock.ThrottleHit {
		t.Helper()
		h, err := s.HitThrottle(ctx, key, at(d), w)
		must(t, err)
		return h
	}
	h := hit("k", 0)
	if h.Count != 1 || !h.Prev.IsZero() {
		t.Fatalf("first hit = %+v", h)
	}
	sameTime(t, "window start", h.WindowStart, at(0))
	h = hit("k", time.Second)
	if h.Count != 2 {
		t.Fatalf("second hit = %+v", h)
	}
	sameTime(t, "prev", h.Prev, at(0))
	sameTime(t, "window start", h.WindowStart, at(0))
	h = hit("k", time.Minute)
	if h.Count != 3 {
		t.Fatalf("third hit = %+v", h)
	}
	sameTime(t, "prev", h.Prev, at(time.Second))
	if o := hit("other", time.Minute); o.Count != 1 {
		t.Fatalf("other key = %+v", o)
	}
	// The window is fixed from its first hit; a hit at its end starts a new one.
	h = hit("k", w-time.Microsecond)
	if h.Count != 4 {
		t.Fatalf("last hit of the window = %+v", h)
	}
	h = hit("k", w)
	if h.Count != 1 || !h.Prev.IsZero() {
		t.Fatalf("hit at the window's end = %+v, want a new window", h)
	}
	sameTime(t, "new window start", h.WindowStart, at(w))
	hit("k", w+time.Second)
	must(t, s.ResetThrottle(ctx, "k"))
	if h = hit("k", w+2*time.Second); h.Count != 1 {
		t.Fatalf("hit after reset = %+v", h)
	}
	must(t, s.ResetThrottle(ctx, "never-hit"))
}

// testThrottleConcurrent: of 100 concurrent hits each gets a distinct
// count, 1..100 (count and decision cannot be raced).
func testThrottleConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	const n = 100
	var mu sync.Mutex
	seen := map[int]bool{}
	parallel(n, func(i int) {
		h, err := s.HitThrottle(ctx, "race", at(time.Duration(i)*time.Microsecond), time.Hour)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("HitThrottle: %v", err)
			return
		}
		if seen[h.Count] {
			t.Errorf("count %d returned twice", h.Count)
		}
		seen[h.Count] = true
	})
	for i := 1; i <= n; i++ {
		if !seen[i] {
			t.Fatalf("count %d never returned; got %d distinct counts", i, len(seen))
		}
	}
}

func testPurgeThrottles(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		_, err := s.HitThrottle(ctx, k, at(0), time.Minute)
		must(t, err)
	}
	_, err := s.HitThrottle(ctx, "c", at(0), time.Hour)
	must(t, err)
	n, err := s.PurgeThrottles(ctx, at(time.Minute-time.Microsecond))
	must(t, err)
	if n != 0 {
		t.Fatalf("purged %d windows that had not ended", n)
	}
	n, err = s.PurgeThrottles(ctx, at(time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("PurgeThrottles = %d, want 2", n)
	}
	h, err := s.HitThrottle(ctx, "c", at(2*time.Minute), time.Hour)
	must(t, err)
	if h.Count != 2 {
		t.Fatalf("a live window was purged: %+v", h)
	}
}

func testPing(t *testing.T, s airlock.Store) {
	must(t, s.Ping(t.Context()))
}

// testMerkleTiles appends batches across tile boundaries (a full level-1
// tile needs 65,536 events; 6,000 fill 23 level-0 tiles and part of one
// level-1 tile) and checks that the stored tiles give the root of every
// size reached, as a tree computed from the events does, and that tiles
// past the tree are absent.
func testMerkleTiles(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	var compact tlog.Compact
	roots := map[uint64][]byte{0: tlog.EmptyRoot()}
	n := 0
	for _, k := range []int{1, 254, 1, 300, 5444} {
		must(t, s.AppendEvents(ctx, chain(k, nil)))
		n += k
	}
	must(t, s.ScanEvents(ctx, 0, func(e airlock.Event) error {
		compact.Append(tlog.EventLeaf(e.Hash))
		if c := compact.Size(); c == 1 || c == 255 || c == 256 || c == 556 || c == uint64(n) {
			roots[c] = compact.Root()
		}
		return nil
	}))
	if compact.Size() != uint64(n) {
		t.Fatalf("scanned %d events, want %d", compact.Size(), n)
	}
	r := tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return s.MerkleTile(ctx, id.Level, id.Index) })
	for size, want := range roots {
		got, err := r.Root(size)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("root of %d events from the stored tiles = %x, want %x", size, got, want)
		}
	}
	if tile, err := s.MerkleTile(ctx, 0, int64(n/tlog.Width+1)); err != nil || tile != nil {
		t.Errorf("tile past the tree = %d bytes, %v; want none", len(tile), err)
	}
	if tile, err := s.MerkleTile(ctx, 1, 0); err != nil || len(tile) != n/tlog.Width*tlog.HashSize {
		t.Errorf("level-1 tile holds %d bytes, %v; want %d hashes", len(tile), err, n/tlog.Width)
	}
}
