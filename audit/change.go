package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"

	"github.com/airlockhq/airlock"
)

// Retainer is an airlock.Auditor that keeps an event whose write failed
// and writes it once the store takes writes again (Log does).
type Retainer interface {
	RecordRetained(ctx context.Context, e airlock.Event) (int64, error)
}

// Refused returns the EUNAVAILABLE error that refuses an action because
// its event could not be written (cause is the audit log's error). The
// message says why and what to do: with a store outage under it, the
// store's message ("store unavailable — retry; /readyz shows when it is
// back", or the disk-full one).
func Refused(cause error) *airlock.Error {
	msg := "action refused: the audit log cannot be written — retry; /readyz shows when it is back"
	if o := airlock.Outage(cause); o != nil {
		msg = "action refused: the audit log cannot be written: " + o.Message
	}
	return airlock.WrapError(airlock.EUNAVAILABLE, msg, cause)
}

// Record writes e (Outcome success when empty) and returns nil once it is
// durable, or Refused when the log could not take it: the caller then
// refuses its action (invariant 7). It is for events that are themselves
// the fact (a refusal, a login failure); a state change goes through
// Change.
func Record(ctx context.Context, a airlock.Auditor, log *slog.Logger, e airlock.Event) error {
	if e.Outcome == "" {
		e.Outcome = airlock.OutcomeSuccess
	}
	if _, err := a.Record(ctx, e); err != nil {
		log.Error("audit write failed; refusing action", "action", e.Action, "err", err)
		return Refused(err)
	}
	return nil
}

// Change is the one way a service makes an audited state change, so that
// the log tells the truth (invariants 7 and 11):
//
//  1. It writes e, the announcement of the change (Outcome success when
//     empty), and waits until it is durable. If it cannot be written the
//     change is refused (Refused) and apply never runs.
//  2. It runs apply, which makes the change in the store.
//  3. If apply fails, the announcement was untrue, so it writes the
//     retraction: an event with the same action, actor and context,
//     Outcome failure, and details {"retracts_seq": seq of e, "code",
//     "error": the user-safe message}. With a Retainer (the Log) the
//     retraction is kept and retried until the store takes it, so a full
//     disk that refused the change and then the retraction gets it written
//     as soon as space is back. It returns apply's error unchanged.
//
// Neither the announcement nor apply is cut short by ctx ending (a client
// that goes away): once announced, the change is carried out or retracted.
// docs/audit.md says how an auditor reads a retraction.
func Change(ctx context.Context, a airlock.Auditor, log *slog.Logger, e airlock.Event, apply func(ctx context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	if e.Outcome == "" {
		e.Outcome = airlock.OutcomeSuccess
	}
	seq, err := a.Record(ctx, e)
	if err != nil {
		log.Error("audit write failed; refusing action", "action", e.Action, "err", err)
		return Refused(err)
	}
	aerr := apply(ctx)
	if aerr == nil {
		return nil
	}
	Retract(ctx, a, log, e, seq, aerr)
	return aerr
}

// Retract writes the retraction of e, stored at seq, whose change failed
// with cause (see Change; for callers that announce changes in a batch,
// like the grant sweeper). With a Retainer the retraction is retried
// until the store takes it.
func Retract(ctx context.Context, a airlock.Auditor, log *slog.Logger, e airlock.Event, seq int64, cause error) {
	ctx = context.WithoutCancel(ctx)
	r := Retraction(e, seq, cause)
	var err error
	if ra, ok := a.(Retainer); ok {
		_, err = ra.RecordRetained(ctx, r)
	} else {
		_, err = a.Record(ctx, r)
	}
	if err != nil {
		log.Error("audit: change failed and its retraction is not yet written (retained: written when the store takes writes)",
			"action", e.Action, "retracts_seq", seq, "change_err", cause, "err", err)
		return
	}
	log.Warn("audit: change failed after its event; retracted", "action", e.Action, "retracts_seq", seq, "err", cause)
}

// Retraction returns the event that retracts e, stored at seq, because
// the change it announced failed with cause.
func Retraction(e airlock.Event, seq int64, cause error) airlock.Event {
	return airlock.Event{
		Actor: e.Actor, Action: e.Action, Resource: e.Resource, RequestID: e.RequestID, GrantID: e.GrantID,
		SessionID: e.SessionID, SourceAddr: e.SourceAddr, Outcome: airlock.OutcomeFailure,
		Details: airlock.EventDetails("retracts_seq", seq, "code", airlock.ErrorCode(cause), "error", airlock.ErrorMessage(cause)),
	}
}

// RetractedSeq reads e as a retraction Change writes: is reports a failure
// event whose details carry retracts_seq, whatever its value (an event
// that does not stand, to a reader summing up the log), and seq the
// earlier event it retracts (0 when retracts_seq is not a positive
// number; Verify reports such a retraction as bad).
func RetractedSeq(e *airlock.Event) (seq int64, is bool) {
	if e.Outcome != airlock.OutcomeFailure || !bytes.Contains(e.Details, []byte(`"retracts_seq"`)) {
		return 0, false
	}
	var d struct {
		RetractsSeq json.RawMessage `json:"retracts_seq"`
	}
	if json.Unmarshal(e.Details, &d) != nil || d.RetractsSeq == nil {
		return 0, false
	}
	if json.Unmarshal(d.RetractsSeq, &seq) != nil || seq < 0 {
		seq = 0
	}
	return seq, true
}
