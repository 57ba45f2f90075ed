package airlock

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Actor is who caused an event: a user, or the system itself.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SystemActor is the actor of events nobody caused directly (expiry, sweeps).
var SystemActor = Actor{ID: "system", Name: "system"}

// Event is one audit record. Seq, Time, PrevHash and Hash are assigned by
// the audit log on append; callers fill in the rest. Details must be a JSON
// object (or empty) and must never contain secrets.
type Event struct {
	Seq        int64           `json:"seq"`
	Time       time.Time       `json:"time"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	GrantID    string          `json:"grant_id,omitempty"`
	SessionID  string          `json:"session_id,omitempty"`
	SourceAddr string          `json:"source_addr,omitempty"`
	Outcome    string          `json:"outcome"`
	Details    json.RawMessage `json:"details,omitempty"`
	PrevHash   string          `json:"prev_hash"` // hex SHA-256
	Hash       string          `json:"hash"`      // hex SHA-256
}

// EventDetails encodes kv, alternating string keys and values, as the JSON
// object an Event's Details holds. A trailing key without a value is
// ignored; a key that is not a string panics; a value that cannot be
// encoded yields nil (no details).
func EventDetails(kv ...any) json.RawMessage {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

// AuditHead is the last event of the chain: its sequence number and hash.
// The zero value is the head of an empty log (Seq 0, Hash "").
type AuditHead struct {
	Seq  int64
	Hash string
}

// Checkpoint is a signed statement of the chain's head at a time.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"` // base64 ed25519 signature
	// Root is the hex RFC 9162 Merkle root of the first Seq events (the
	// tree size is Seq). Empty in a chain-only (version 1) checkpoint,
	// written before the log kept a tree.
	Root string `json:"root,omitempty"`
}

// EventFilter selects audit events. Zero fields match everything.
type EventFilter struct {
	AfterSeq  int64 // events with Seq > AfterSeq
	Since     time.Time
	Until     time.Time
	Action    string // exact, or prefix when it ends in "*" (e.g. "grant.*")
	ActorName string
	Resource  string
	SessionID string
	GrantID   string
	Limit     int // 0 = no limit
	Desc      bool
}

// Auditor is the fail-closed audit sink that services write to.
// Record returns only after the event is durable and returns its sequence
// number; if it returns an error the caller must not go on with the action.
type Auditor interface {
	Record(ctx context.Context, e Event) (int64, error)
}

// AuditPipeline is the audit log's pipelined form (audit.Log.Pipeline),
// for high-rate events (a gateway's statements, a sweep's expiries).
// Submit must enqueue quickly and never block on durability; the returned
// AuditPending reports when the event is durable (or failed). Seq, Time,
// PrevHash and Hash are left for the pipeline to assign. The pipeline may
// hold submitted events back for a while to commit many at once
// (audit.Options.MaxDelay); Flush asks it to commit what it holds now,
// without waiting. Whoever is about to wait for receipts calls Flush first.
type AuditPipeline interface {
	Submit(e Event) AuditPending
	Flush()
}

// AuditPending is the receipt of a submitted event. Done is closed when the
// event is durable or has failed; Err is then nil or the failure, and Seq
// the event's sequence number (0 unless it is durable).
type AuditPending interface {
	Done() <-chan struct{}
	Err() error
	Seq() int64
}

// CorruptEventsError is returned by an AuditStore read when stored events
// cannot be decoded: the storage was edited or damaged. After is the seq
// the damaged storage claims to follow; the audit verifier reports the
// log as modified there.
type CorruptEventsError struct {
	After int64
	Err   error
}

func (e *CorruptEventsError) Error() string {
	return fmt.Sprintf("stored audit events after seq %d cannot be decoded: %v", e.After, e.Err)
}

func (e *CorruptEventsError) Unwrap() error { return e.Err }
