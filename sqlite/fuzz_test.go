package sqlite_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sqlite"
)

// FuzzEventRoundTrip pins that the store returns audit events byte-exactly
// as appended (the hash chain is verified over what comes back), whatever
// the text fields and details hold.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add("grant.create", "alice", "prod-db", []byte(`{"a":1}`), int64(1700000000123456))
	f.Add("", "", "", []byte(nil), int64(0))
	f.Add("x'; DROP TABLE events; --", "ü\u2028", "%_*", []byte(`{"q":"SELECT '\u0000'"}`), int64(-1))
	db, err := sqlite.Open(f.Context(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	f.Fuzz(func(t *testing.T, action, actor, resource string, details []byte, micros int64) {
		if !utf8.ValidString(action+actor+resource) || !utf8.Valid(details) {
			t.Skip("audit text is UTF-8")
		}
		var ts time.Time
		if micros != 0 {
			ts = time.UnixMicro(micros % (1 << 52)).UTC()
		}
		var in airlock.Event
		err := db.AppendEvents(t.Context(), func(h airlock.AuditHead) ([]airlock.Event, error) {
			in = airlock.Event{Seq: h.Seq + 1, Time: ts, Actor: airlock.Actor{ID: actor, Name: actor}, Action: action, Resource: resource,
				Outcome: airlock.OutcomeSuccess, Details: json.RawMessage(details), PrevHash: h.Hash, Hash: action + "#" + actor}
			return []airlock.Event{in}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := db.ListEvents(t.Context(), airlock.EventFilter{AfterSeq: in.Seq - 1, Limit: 1})
		if err != nil || len(out) != 1 {
			t.Fatalf("ListEvents = %d events, %v", len(out), err)
		}
		got := out[0]
		if !bytes.Equal(got.Details, in.Details) || (got.Details == nil) != (in.Details == nil) {
			t.Fatalf("details = %q, want %q", got.Details, in.Details)
		}
		if !got.Time.Equal(in.Time) || got.Time.IsZero() != in.Time.IsZero() {
			t.Fatalf("time = %v, want %v", got.Time, in.Time)
		}
		got.Details, got.Time, in.Details, in.Time = nil, time.Time{}, nil, time.Time{}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("event = %+v, want %+v", got, in)
		}
	})
}
