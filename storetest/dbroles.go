package storetest

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// testDBRoles: PutDBRole records a grant's role (and replaces it when made
// again), ListDBRoles lists the live ones in creation order, and
// SetDBRoleDropped drops each once.
func testDBRoles(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	_, err := s.DBRoleByGrant(ctx, "gr_none")
	wantCode(t, err, airlock.ENOTFOUND)
	a := &airlock.DBRole{GrantID: "gr_a", Resource: "prod-db", Role: "airlock_alice_gr_a", Password: []byte("sealed-a"), CreatedAt: at(time.Second)}
	b := &airlock.DBRole{GrantID: "gr_b", Resource: "prod-db", Role: "airlock_bob_gr_b", Password: []byte("sealed-b"), CreatedAt: at(2 * time.Second)}
	must(t, s.PutDBRole(ctx, b))
	must(t, s.PutDBRole(ctx, a))
	got, err := s.DBRoleByGrant(ctx, "gr_a")
	must(t, err)
	if got.Role != a.Role || got.Resource != a.Resource || !bytes.Equal(got.Password, a.Password) ||
		!got.CreatedAt.Equal(a.CreatedAt.Truncate(time.Microsecond)) || !got.DroppedAt.IsZero() {
		t.Fatalf("DBRoleByGrant = %+v, want %+v", got, a)
	}
	live, err := s.ListDBRoles(ctx, false)
	must(t, err)
	if len(live) != 2 || live[0].GrantID != "gr_a" || live[1].GrantID != "gr_b" {
		t.Fatalf("ListDBRoles = %v, want gr_a, gr_b", live)
	}
	ok, err := s.SetDBRoleDropped(ctx, "gr_a", at(time.Minute))
	must(t, err)
	if !ok {
		t.Fatal("SetDBRoleDropped of a live role reported no change")
	}
	if ok, err := s.SetDBRoleDropped(ctx, "gr_a", at(2*time.Minute)); err != nil || ok {
		t.Fatalf("second SetDBRoleDropped = %v, %v; want false", ok, err)
	}
	if ok, err := s.SetDBRoleDropped(ctx, "gr_none", at(2*time.Minute)); err != nil || ok {
		t.Fatalf("SetDBRoleDropped of a missing grant = %v, %v; want false", ok, err)
	}
	got, err = s.DBRoleByGrant(ctx, "gr_a")
	must(t, err)
	if !got.DroppedAt.Equal(at(time.Minute).Truncate(time.Microsecond)) {
		t.Fatalf("DroppedAt = %v, want %v", got.DroppedAt, at(time.Minute))
	}
	live, err = s.ListDBRoles(ctx, false)
	must(t, err)
	if len(live) != 1 || live[0].GrantID != "gr_b" {
		t.Fatalf("live roles after the drop = %v, want gr_b", live)
	}
	all, err := s.ListDBRoles(ctx, true)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("all roles = %d, want 2", len(all))
	}
	// Made again (a role recreated after a drop): the row is replaced.
	a2 := &airlock.DBRole{GrantID: "gr_a", Resource: "prod-db", Role: "airlock_alice_gr_a", Password: []byte("sealed-a2"), CreatedAt: at(3 * time.Minute)}
	must(t, s.PutDBRole(ctx, a2))
	got, err = s.DBRoleByGrant(ctx, "gr_a")
	must(t, err)
	if !bytes.Equal(got.Password, a2.Password) || !got.DroppedAt.IsZero() {
		t.Fatalf("replaced role = %+v, want live with the new password", got)
	}
}

// testLeases: a lease is the holder's until it expires; the holder renews
// it; another takes it only once it has expired or been released.
func testLeases(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	take := func(holder string, now time.Duration, want bool) {
		t.Helper()
		ok, err := s.AcquireLease(ctx, "db-roles", holder, at(now), at(now+10*time.Second))
		must(t, err)
		if ok != want {
			t.Fatalf("AcquireLease(%s at %v) = %v, want %v", holder, now, ok, want)
		}
	}
	take("a", 0, true)
	take("b", time.Second, false)
	take("a", 5*time.Second, true)   // renewed: until 15 s
	take("b", 12*time.Second, false) // still a's
	take("b", 15*time.Second, true)  // expired
	take("a", 16*time.Second, false)
	must(t, s.ReleaseLease(ctx, "db-roles", "a")) // not a's: no effect
	take("a", 17*time.Second, false)
	must(t, s.ReleaseLease(ctx, "db-roles", "b"))
	take("a", 18*time.Second, true)
	// Another name is another lease.
	if ok, err := s.AcquireLease(ctx, "other", "b", at(18*time.Second), at(time.Minute)); err != nil || !ok {
		t.Fatalf("AcquireLease(other) = %v, %v", ok, err)
	}
}

// testLeasesConcurrent: of concurrent callers for a free lease exactly
// one gets it.
func testLeasesConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	for round := range 5 {
		var won atomic.Int32
		now := at(time.Duration(round) * time.Minute)
		parallel(8, func(i int) {
			ok, err := s.AcquireLease(ctx, "db-roles", string(rune('a'+i)), now, now.Add(30*time.Second))
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
			}
			if ok {
				won.Add(1)
			}
		})
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d holders of one lease, want 1", round, n)
		}
	}
}
