package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/sqlite"
)

// flakyEnds fails the first fails EndSession calls as a store outage.
type flakyEnds struct {
	*sqlite.DB
	fails atomic.Int32
}

func (f *flakyEnds) EndSession(ctx context.Context, s *airlock.Session) error {
	if f.fails.Add(-1) >= 0 {
		return airlock.StoreUnavailable(context.DeadlineExceeded)
	}
	return f.DB.EndSession(ctx, s)
}

// TestSessionEndsOnceWithNodeLost: a session whose end this node is still
// retrying, and that another replica meanwhile ends as node_lost, keeps
// node_lost and gets one session.ended: the retry neither overwrites the
// row nor writes a second event, and stops.
func TestSessionEndsOnceWithNodeLost(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	al, err := audit.Open(ctx, db, audit.Options{Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close(context.Background()) })
	store := &flakyEnds{DB: db}
	store.fails.Store(1)
	ends := newSessionEnds(store, al, slog.New(slog.DiscardHandler))
	t.Cleanup(ends.close)

	start := time.Now().UTC().Truncate(time.Second)
	s := &airlock.Session{ID: airlock.NewID("se"), GrantID: "gr_1", UserID: "us_a", UserName: "alice", Resource: "prod-db",
		Kind: airlock.KindPostgres, Access: "read", Node: "gone", StartedAt: start}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Another replica ends it as node_lost (and writes that end's
	// session.ended itself) while this node's writes fail: its end of the
	// row and its session.ended both go to the retries.
	lost, err := db.EndLostSessions(ctx, airlock.LostFilter{Self: "other", StaleBefore: start.Add(time.Hour)}, start.Add(2*time.Minute))
	if err != nil || len(lost) != 1 {
		t.Fatalf("EndLostSessions = %v, %v; want the session", lost, err)
	}
	end := *s
	end.EndedAt, end.EndReason = start.Add(time.Minute), string(airlock.EndClientClosed)
	if err := ends.EndSession(ctx, &end); err == nil {
		t.Fatal("EndSession: want the injected outage")
	}
	ends.event(airlock.Event{Actor: airlock.Actor{Name: "alice"}, Action: "session.ended", SessionID: s.ID, Outcome: airlock.OutcomeSuccess,
		Details: []byte(`{"end_reason":"client_closed"}`)})

	done := make(chan struct{})
	go func() { ends.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("retries still running: a session ended elsewhere must stop them")
	}
	row, err := db.SessionByID(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.EndReason != string(airlock.EndNodeLost) {
		t.Errorf("end reason = %q, want node_lost (the first end stands)", row.EndReason)
	}
	evs, err := db.ListEvents(ctx, airlock.EventFilter{SessionID: s.ID, Action: "session.ended"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Errorf("this node wrote %d session.ended for a session ended as node_lost elsewhere: %+v", len(evs), evs)
	}
}
