package access

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// flakyBeats is a store whose heartbeats fail while down is set.
type flakyBeats struct {
	airlock.Store
	down atomic.Bool
}

func (f *flakyBeats) HeartbeatNode(ctx context.Context, n airlock.Node) error {
	if f.down.Load() {
		return errors.New("store down")
	}
	return f.Store.HeartbeatNode(ctx, n)
}

func mkSession(t *testing.T, store airlock.Store, node string) *airlock.Session {
	t.Helper()
	x := &airlock.Session{ID: airlock.NewID("se"), GrantID: "gr_1", UserID: "us_a", UserName: "alice", Resource: "prod-db",
		Kind: airlock.KindPostgres, Access: "read", Node: node, StartedAt: time.Now().UTC()}
	if err := store.CreateSession(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	return x
}

func endedEvents(t *testing.T, store airlock.Store) map[string]map[string]any {
	t.Helper()
	evs, err := store.ListEvents(t.Context(), airlock.EventFilter{Action: "session.ended"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range evs {
		var d map[string]any
		json.Unmarshal(e.Details, &d)
		if e.Actor != airlock.SystemActor {
			t.Errorf("session.ended actor = %+v, want system", e.Actor)
		}
		if _, dup := out[e.SessionID]; dup {
			t.Errorf("two session.ended events for %s", e.SessionID)
		}
		out[e.SessionID] = d
	}
	return out
}

func wantEnded(t *testing.T, store airlock.Store, s *airlock.Session, ended bool) {
	t.Helper()
	got, err := store.SessionByID(t.Context(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active() == ended || (ended && got.EndReason != string(airlock.EndNodeLost)) {
		t.Fatalf("session on %s: ended_at=%v reason=%q, want ended=%v as node_lost", s.Node, got.EndedAt, got.EndReason, ended)
	}
}

// TestStartNodeEndsPreviousLives: at start, the sessions of an earlier
// process of the same server are ended at once (however fresh its last
// beat), each with one session.ended event; other servers' are not.
func TestStartNodeEndsPreviousLives(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc, store, al := newTestService(t, clk)
	ctx := t.Context()
	now := time.Now()
	store.HeartbeatNode(ctx, airlock.Node{Name: "h/1/old", Identity: "h:/data", HeartbeatAt: now})
	store.HeartbeatNode(ctx, airlock.Node{Name: "other/1/x", Identity: "other:/data", HeartbeatAt: now})
	old := mkSession(t, store, "h/1/old")
	other := mkSession(t, store, "other/1/x")
	if err := svc.StartNode(ctx, Liveness{Node: "h/2/new", Identity: "h:/data"}); err != nil {
		t.Fatal(err)
	}
	al.Flush()
	wantEnded(t, store, old, true)
	wantEnded(t, store, other, false)
	evs := endedEvents(t, store)
	d, ok := evs[old.ID]
	if !ok || len(evs) != 1 {
		t.Fatalf("session.ended events = %v, want one for %s", evs, old.ID)
	}
	if d["end_reason"] != string(airlock.EndNodeLost) || d["node"] != "h/1/old" || d["ended_by"] != "h/2/new" {
		t.Fatalf("event details = %v", d)
	}
}

// TestReapWaitsForOwnBeats: a node ends another's sessions only once that
// node has been silent for LostAfter and its own beats have succeeded
// without a gap for LostAfter — after its own store outage it waits again,
// so it never takes a replica that could not beat either for a dead one.
func TestReapWaitsForOwnBeats(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc, store, al := newTestService(t, clk)
	flaky := &flakyBeats{Store: store}
	svc.store = flaky
	ctx := t.Context()
	wall := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	store.HeartbeatNode(ctx, airlock.Node{Name: "dead", HeartbeatAt: wall.now()})
	ghost := mkSession(t, store, "dead")
	mine := mkSession(t, store, "me")
	if err := svc.StartNode(ctx, Liveness{Node: "me", Identity: "me:/d", LostAfter: 15 * time.Second, Wall: wall.now}); err != nil {
		t.Fatal(err)
	}
	tick := func(d time.Duration) {
		wall.mu.Lock()
		wall.t = wall.t.Add(d)
		wall.mu.Unlock()
		if svc.beat(ctx) == nil {
			svc.reapLost(ctx)
		}
	}
	tick(10 * time.Second)
	wantEnded(t, store, ghost, false) // dead silent 10 s < 15 s
	// Our own outage: beats fail for a while, then come back.
	flaky.down.Store(true)
	tick(10 * time.Second)
	flaky.down.Store(false)
	tick(2 * time.Second)
	wantEnded(t, store, ghost, false) // dead silent 22 s, but we beat again for 0 s only
	tick(10 * time.Second)
	wantEnded(t, store, ghost, false) // 10 s of our beats
	tick(6 * time.Second)
	wantEnded(t, store, ghost, true) // 16 s of our beats: judged
	wantEnded(t, store, mine, false) // never our own
	al.Flush()
	if evs := endedEvents(t, store); len(evs) != 1 || evs[ghost.ID] == nil {
		t.Fatalf("session.ended events = %v, want one for the ghost", evs)
	}
	// Nothing is ended twice.
	tick(20 * time.Second)
	al.Flush()
	if evs := endedEvents(t, store); len(evs) != 1 {
		t.Fatalf("session.ended events after another beat = %v", evs)
	}
}

// TestKillSession: killing a session a live node holds goes to the bus; a
// ghost's (its node silent past LostAfter) has its record ended here as
// node_lost, with both events; an ended session is not "killed" again.
func TestKillSession(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc, store, _ := newTestService(t, clk)
	ctx := t.Context()
	var sent []airlock.Revocation
	svc.Bus().Subscribe(func(r airlock.Revocation) { sent = append(sent, r) })
	wall := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	if err := svc.StartNode(ctx, Liveness{Node: "me", LostAfter: 15 * time.Second, Wall: wall.now}); err != nil {
		t.Fatal(err)
	}
	store.HeartbeatNode(ctx, airlock.Node{Name: "dead", HeartbeatAt: wall.now()})
	wall.t = wall.t.Add(20 * time.Second)
	svc.beat(ctx)
	store.HeartbeatNode(ctx, airlock.Node{Name: "live", HeartbeatAt: wall.now()})
	p := &identity.Principal{User: &airlock.User{ID: "us_a", Name: "alice"}, Session: &airlock.LoginSession{MFAAt: clk.now()}}

	for _, tc := range []struct {
		node  string
		ghost bool
	}{{"live", false}, {"me", false}, {"dead", true}, {"never-beat", true}} {
		t.Run(tc.node, func(t *testing.T) {
			sent = nil
			x := mkSession(t, store, tc.node)
			res, err := svc.KillSession(ctx, p, x.ID)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ended != tc.ghost || res.Node != tc.node {
				t.Fatalf("KillSession = %+v, want Ended=%v", res, tc.ghost)
			}
			wantEnded(t, store, x, tc.ghost)
			if published := len(sent) == 1 && sent[0].SessionID == x.ID && sent[0].Reason == airlock.EndSessionKilled; published == tc.ghost {
				t.Fatalf("revocations sent = %+v (ghost %v)", sent, tc.ghost)
			}
			evs, err := store.ListEvents(ctx, airlock.EventFilter{SessionID: x.ID})
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, e := range evs {
				actions = append(actions, e.Action)
			}
			want := []string{"session.killed"}
			if tc.ghost {
				want = append(want, "session.ended")
			}
			if !reflect.DeepEqual(actions, want) {
				t.Fatalf("events = %v, want %v", actions, want)
			}
			if tc.ghost {
				if _, err := svc.KillSession(ctx, p, x.ID); airlock.ErrorCode(err) != airlock.ECONFLICT {
					t.Fatalf("KillSession of an ended session = %v, want ECONFLICT", err)
				}
			}
		})
	}
}

// TestLostEndAuditedOnceWhenCallerLeaves: a node_lost end whose caller's
// context ends while its session.ended is being written (a sessions kill
// whose client went away) is waited for, not handed to the next beat's
// retry, which would write a second session.ended.
func TestLostEndAuditedOnceWhenCallerLeaves(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc, store, al := newTestService(t, clk)
	ctx := t.Context()
	if err := svc.StartNode(ctx, Liveness{Node: "me", LostAfter: 15 * time.Second}); err != nil {
		t.Fatal(err)
	}
	x := mkSession(t, store, "dead")
	ended, err := store.EndLostSessions(ctx, airlock.LostFilter{Self: "me", SessionID: x.ID, StaleBefore: time.Now().Add(time.Hour)}, clk.now())
	if err != nil || len(ended) != 1 {
		t.Fatalf("EndLostSessions = %v, %v", ended, err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	svc.auditLost(gone, []lostEnd{{ended[0], "test"}})
	svc.reapLost(ctx) // retries whatever auditLost could not write
	al.Flush()
	if evs := endedEvents(t, store); len(evs) != 1 || evs[x.ID] == nil {
		t.Fatalf("session.ended events = %v, want one", evs)
	}
}

// TestNodeFencesItself: a replica cut off from the store (its beats fail)
// closes its own sessions on the wire before the others may end their
// records as node_lost — else a session would go on, proxying traffic,
// after its record and its session.ended event say it ended. A replica
// whose beats succeed never does.
func TestNodeFencesItself(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc, store, _ := newTestService(t, clk)
	flaky := &flakyBeats{Store: store}
	svc.store = flaky
	got := make(chan airlock.Revocation, 4)
	svc.Bus().Subscribe(func(r airlock.Revocation) { got <- r })
	var remote atomic.Int32
	svc.Bus().(*Bus).setRemote("me", func([]byte) { remote.Add(1) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const lostAfter = 800 * time.Millisecond
	if err := svc.StartNode(ctx, Liveness{Node: "me", Identity: "me:/d", Interval: 50 * time.Millisecond, LostAfter: lostAfter}); err != nil {
		t.Fatal(err)
	}
	go svc.RunNode(ctx)
	select {
	case r := <-got:
		t.Fatalf("revocation while beating: %+v", r)
	case <-time.After(2 * lostAfter):
	}
	flaky.down.Store(true)
	down := time.Now()
	select {
	case r := <-got:
		if r.Node != "me" || r.Reason != airlock.EndAuditUnavailable {
			t.Fatalf("revocation = %+v, want all of node me as audit_unavailable", r)
		}
		if took := time.Since(down); took >= lostAfter {
			t.Fatalf("sessions closed %v after the last beat; the others may end them at %v", took, lostAfter)
		}
	case <-time.After(lostAfter):
		t.Fatal("a node that cannot beat kept its sessions open past --node-lost-after")
	}
	if n := remote.Load(); n != 0 {
		t.Fatalf("the node's own fence was sent to other replicas (%d)", n)
	}
}
