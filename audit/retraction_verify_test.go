package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/airlockhq/airlock"
)

// TestVerifyRetractionTargets: a retraction must name an earlier event. A
// log whose chain and checkpoints are intact but that holds a retraction of
// its own, a later or a non-existent seq is not OK, online or exported: it
// would strike a change that did take effect, or leave the real one
// standing.
func TestVerifyRetractionTargets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retract string
		bad     bool
	}{
		{"earlier", `1`, false},
		{"itself", `2`, true},
		{"future", `9`, true},
		{"zero", `0`, true},
		{"negative", `-3`, true},
		{"not-a-number", `"1"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &memStore{}
			l := openLog(t, store, Options{CheckpointEvery: 1})
			ctx := context.Background()
			e := airlock.Event{Actor: airlock.Actor{ID: "u1", Name: "admin"}, Action: "user.created", Outcome: airlock.OutcomeSuccess,
				Details: json.RawMessage(`{"user":"bob"}`)}
			if _, err := l.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
			r := e
			r.Outcome = airlock.OutcomeFailure
			r.Details = json.RawMessage(`{"code":"unavailable","error":"x","retracts_seq":` + tc.retract + `}`)
			if _, err := l.Record(ctx, r); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Record(ctx, sampleEvent(3)); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want, seq := "", int64(0)
			if tc.bad {
				want, seq = ProblemBadRetraction, 2
			}
			rep, err := Verify(ctx, store, testPub())
			checkReport(t, rep, err, want, seq)
			rep, err = VerifyExport(bytes.NewReader(exportBytes(t, store, airlock.EventFilter{})), testPub())
			checkReport(t, rep, err, want, seq)
		})
	}
}

// RetractedSeq reads what Change writes as a retraction, and nothing
// else: a success event naming retracts_seq, or the text in a string
// value, is not one.
func TestRetractedSeq(t *testing.T) {
	done := Retraction(airlock.Event{Action: "grant.revoked"}, 7, errors.New("store down"))
	for _, c := range []struct {
		name string
		e    airlock.Event
		seq  int64
		is   bool
	}{
		{"what Change writes", done, 7, true},
		{"a success naming retracts_seq", airlock.Event{Outcome: airlock.OutcomeSuccess, Details: []byte(`{"retracts_seq":7}`)}, 0, false},
		{"the words in a failure's message", airlock.Event{Outcome: airlock.OutcomeFailure, Details: []byte(`{"message":"\"retracts_seq\": 7"}`)}, 0, false},
		{"not a number", airlock.Event{Outcome: airlock.OutcomeFailure, Details: []byte(`{"retracts_seq":"7"}`)}, 0, true},
		{"a failure without it", airlock.Event{Outcome: airlock.OutcomeFailure, Details: []byte(`{"code":"EIO"}`)}, 0, false},
	} {
		if seq, is := RetractedSeq(&c.e); seq != c.seq || is != c.is {
			t.Errorf("%s: %d, %v; want %d, %v", c.name, seq, is, c.seq, c.is)
		}
	}
}
