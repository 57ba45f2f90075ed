package storetest

import (
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func mkNodeSession(t *testing.T, s airlock.Store, node string, d time.Duration) *airlock.Session {
	t.Helper()
	x := &airlock.Session{ID: airlock.NewID("se"), GrantID: "gr_1", UserID: "us_a", UserName: "alice", Resource: "prod-db",
		Kind: airlock.KindPostgres, Access: "read", Node: node, StartedAt: at(d), BytesIn: 10, BytesOut: 20, Statements: 3}
	must(t, s.CreateSession(t.Context(), x))
	return x
}

func sortedIDs(xs []*airlock.Session) []string {
	out := ids(xs)
	sort.Strings(out)
	return out
}

func want(xs ...*airlock.Session) []string { return sortedIDs(xs) }

// testLostSessions: EndLostSessions ends exactly the active sessions of
// stale, unknown and previous-life nodes, never Self's, and returns them
// ended with end_reason node_lost.
func testLostSessions(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "live", Identity: "h1:/a", HeartbeatAt: at(10 * time.Second)}))
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "dead", Identity: "h2:/b", HeartbeatAt: at(0)}))
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "self", Identity: "h3:/c", HeartbeatAt: at(0)}))
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "past-life", Identity: "h3:/c", HeartbeatAt: at(10 * time.Second)}))
	// A later beat moves the heartbeat: "live2" was stale, is not any more.
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "live2", Identity: "h4:/d", HeartbeatAt: at(0)}))
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "live2", Identity: "h4:/d", HeartbeatAt: at(9 * time.Second)}))

	onLive := mkNodeSession(t, s, "live", 1)
	onLive2 := mkNodeSession(t, s, "live2", 1)
	onDead := mkNodeSession(t, s, "dead", 2)
	onUnknown := mkNodeSession(t, s, "never-beat", 3)
	onNone := mkNodeSession(t, s, "", 4)
	onSelf := mkNodeSession(t, s, "self", 5)
	onPast := mkNodeSession(t, s, "past-life", 6)
	ended := mkNodeSession(t, s, "dead", 7)
	done := *ended
	done.EndedAt, done.EndReason = at(time.Second), string(airlock.EndClientClosed)
	must(t, s.EndSession(ctx, &done))

	// Nothing selected: nothing ended.
	got, err := s.EndLostSessions(ctx, airlock.LostFilter{Self: "self"}, at(time.Minute))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("EndLostSessions with no criterion ended %v", ids(got))
	}
	// One session only, of a live node: not ended.
	got, err = s.EndLostSessions(ctx, airlock.LostFilter{Self: "self", StaleBefore: at(5 * time.Second), SessionID: onLive.ID}, at(time.Minute))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("EndLostSessions(SessionID of a live node) ended %v", ids(got))
	}
	// One session only, of a dead node.
	got, err = s.EndLostSessions(ctx, airlock.LostFilter{Self: "self", StaleBefore: at(5 * time.Second), SessionID: onDead.ID}, at(time.Minute))
	must(t, err)
	if !reflect.DeepEqual(sortedIDs(got), want(onDead)) {
		t.Fatalf("EndLostSessions(SessionID) = %v, want %v", ids(got), want(onDead))
	}
	wantEnded := *onDead
	wantEnded.EndedAt, wantEnded.EndReason = at(time.Minute), string(airlock.EndNodeLost)
	equal(t, "returned session", got[0], &wantEnded)
	row, err := s.SessionByID(ctx, onDead.ID)
	must(t, err)
	equal(t, "stored session", row, &wantEnded)
	// Its gateway's late end (a retried write) does not overwrite node_lost.
	late := *onDead
	late.EndedAt, late.EndReason = at(2*time.Minute), string(airlock.EndClientClosed)
	wantCode(t, s.EndSession(ctx, &late), airlock.ECONFLICT)
	row, err = s.SessionByID(ctx, onDead.ID)
	must(t, err)
	equal(t, "session ended as node_lost, then by its gateway", row, &wantEnded)

	// Stale: dead node's, never-beat node's and node-less sessions; not
	// live nodes', not self's (stale though its beat is), not ended ones.
	got, err = s.EndLostSessions(ctx, airlock.LostFilter{Self: "self", StaleBefore: at(5 * time.Second)}, at(2*time.Minute))
	must(t, err)
	if !reflect.DeepEqual(sortedIDs(got), want(onUnknown, onNone)) {
		t.Fatalf("EndLostSessions(stale) = %v, want %v", sortedIDs(got), want(onUnknown, onNone))
	}
	for _, x := range got {
		if x.Active() || x.EndReason != string(airlock.EndNodeLost) {
			t.Fatalf("returned session not ended as node_lost: %+v", x)
		}
		sameTime(t, "EndedAt", x.EndedAt, at(2*time.Minute))
	}
	row, err = s.SessionByID(ctx, ended.ID)
	must(t, err)
	equal(t, "session ended before", row, &done)

	// Previous lives of self's identity, however fresh their beat.
	got, err = s.EndLostSessions(ctx, airlock.LostFilter{Self: "self", Identity: "h3:/c"}, at(3*time.Minute))
	must(t, err)
	if !reflect.DeepEqual(sortedIDs(got), want(onPast)) {
		t.Fatalf("EndLostSessions(identity) = %v, want %v", sortedIDs(got), want(onPast))
	}
	// Once ended, a session is never returned again.
	got, err = s.EndLostSessions(ctx, airlock.LostFilter{Self: "nobody", StaleBefore: at(time.Hour), Identity: "h3:/c"}, at(4*time.Minute))
	must(t, err)
	if !reflect.DeepEqual(sortedIDs(got), want(onLive, onLive2, onSelf)) {
		t.Fatalf("EndLostSessions(all stale, other self) = %v, want %v", sortedIDs(got), want(onLive, onLive2, onSelf))
	}
	act, err := s.ListSessions(ctx, airlock.SessionFilter{Active: true})
	must(t, err)
	if len(act) != 0 {
		t.Fatalf("active sessions left: %v", ids(act))
	}
}

// testLostSessionsConcurrent: survivors ending the same lost node's
// sessions at once each get a disjoint share, together all of them.
func testLostSessionsConcurrent(t *testing.T, s airlock.Store) {
	ctx := t.Context()
	must(t, s.HeartbeatNode(ctx, airlock.Node{Name: "dead", HeartbeatAt: at(0)}))
	const n = 40
	all := map[string]bool{}
	for i := range n {
		all[mkNodeSession(t, s, "dead", time.Duration(i)).ID] = true
	}
	var mu sync.Mutex
	seen := map[string]int{}
	parallel(8, func(i int) {
		got, err := s.EndLostSessions(ctx, airlock.LostFilter{Self: "survivor", StaleBefore: at(time.Minute)}, at(time.Hour))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("EndLostSessions: %v", err)
		}
		for _, x := range got {
			seen[x.ID]++
		}
	})
	for id := range all {
		if seen[id] != 1 {
			t.Errorf("session %s returned %d times, want exactly once", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d sessions returned, want %d", len(seen), n)
	}
}
