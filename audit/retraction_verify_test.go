package audit

import (
	"bytes"
	"context"
	"encoding/json"
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
