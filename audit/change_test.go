package audit

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

// switchStore fails every AppendEvents while down is set, as a full disk
// or a lost database would.
type switchStore struct {
	airlock.AuditStore
	down atomic.Bool
}

func (s *switchStore) AppendEvents(ctx context.Context, build func(airlock.AuditHead) ([]airlock.Event, error)) error {
	if s.down.Load() {
		return airlock.StoreFull(errors.New("disk full (test)"))
	}
	return s.AuditStore.AppendEvents(ctx, build)
}

func listAll(t *testing.T, s airlock.AuditStore) []airlock.Event {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), airlock.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func retractsSeq(t *testing.T, e airlock.Event) int64 {
	t.Helper()
	var d struct {
		Seq  int64  `json:"retracts_seq"`
		Code string `json:"code"`
	}
	if err := json.Unmarshal(e.Details, &d); err != nil {
		t.Fatal(err)
	}
	return d.Seq
}

func TestChange(t *testing.T) {
	ev := airlock.Event{Actor: airlock.Actor{ID: "u1", Name: "alice"}, Action: "user.created", Details: json.RawMessage(`{"user":"bob"}`)}
	t.Run("ok/applied", func(t *testing.T) {
		db, _ := openSQLite(t)
		l := openLog(t, db, Options{})
		applied := false
		if err := Change(t.Context(), l, quietLogger(), ev, func(context.Context) error { applied = true; return nil }); err != nil || !applied {
			t.Fatalf("Change = %v, applied %v", err, applied)
		}
		if evs := listAll(t, db); len(evs) != 1 || evs[0].Outcome != airlock.OutcomeSuccess {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("fail/audit-down-refuses", func(t *testing.T) {
		db, _ := openSQLite(t)
		st := &switchStore{AuditStore: db}
		l := openLog(t, st, Options{})
		st.down.Store(true)
		applied := false
		err := Change(t.Context(), l, quietLogger(), ev, func(context.Context) error { applied = true; return nil })
		if applied || airlock.ErrorCode(err) != airlock.EUNAVAILABLE || airlock.ErrorMessage(err) != "action refused: the audit log cannot be written: "+airlock.MsgStoreFull {
			t.Fatalf("Change = %v (%q), applied %v", err, airlock.ErrorMessage(err), applied)
		}
	})
	t.Run("fail/change-retracted", func(t *testing.T) {
		db, _ := openSQLite(t)
		l := openLog(t, db, Options{})
		boom := airlock.Errorf(airlock.ECONFLICT, "user %q already exists", "bob")
		err := Change(t.Context(), l, quietLogger(), ev, func(context.Context) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("Change = %v, want the change's error", err)
		}
		evs := listAll(t, db)
		if len(evs) != 2 || evs[1].Action != ev.Action || evs[1].Outcome != airlock.OutcomeFailure || evs[1].Actor != ev.Actor ||
			retractsSeq(t, evs[1]) != evs[0].Seq {
			t.Fatalf("events = %+v", evs)
		}
	})
	// The disk fills between the announcement and the change: the change
	// fails and so does the retraction's first write; it is kept and
	// written once the store takes writes again, without another event.
	t.Run("fail/retraction-retained-until-store-back", func(t *testing.T) {
		db, _ := openSQLite(t)
		st := &switchStore{AuditStore: db}
		l := openLog(t, st, Options{})
		err := Change(t.Context(), l, quietLogger(), ev, func(context.Context) error {
			st.down.Store(true)
			return airlock.StoreFull(errors.New("disk full (test)"))
		})
		if airlock.ErrorCode(err) != airlock.EUNAVAILABLE {
			t.Fatalf("Change = %v", err)
		}
		if n := l.Owed(); n != 1 {
			t.Fatalf("owed = %d, want the retraction", n)
		}
		st.down.Store(false)
		// The writer retries on its own timer (retainRetry), against a real store.
		testenv.Eventually(t, 5*time.Second, func() bool { return l.Owed() == 0 }, "retraction never written after the store came back")
		evs := listAll(t, db)
		if len(evs) != 2 || evs[1].Outcome != airlock.OutcomeFailure || retractsSeq(t, evs[1]) != evs[0].Seq {
			t.Fatalf("events = %+v", evs)
		}
		if err := l.Healthy(); err != nil {
			t.Fatalf("Healthy after the retained write = %v", err)
		}
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(t.Context(), db, testPub())
		checkReport(t, rep, err, "", 0)
	})
}
