package airlock

import (
	"context"
	"time"
)

// StreamCursor is where one SIEM stream (package audit/stream) stands: the
// last audit seq its sink acknowledged, and which server holds its lease.
type StreamCursor struct {
	// Sink is the sink's configured name.
	Sink string
	// Seq is the last seq the sink acknowledged: the stream resumes after
	// it (0: from the start of the log).
	Seq int64
	// Holder names the server streaming to the sink ("" when nobody has
	// yet); it holds the lease until LeaseUntil.
	Holder     string
	LeaseUntil time.Time
}

// StreamStore persists the cursors and leases of SIEM streams, so that a
// restart resumes where the sink last acknowledged and, across replicas,
// one server at a time streams to each sink.
type StreamStore interface {
	// LeaseStream gives holder the lease on sink until until when nobody
	// holds it, its lease ended at or before now, or holder holds it
	// already (a renewal), creating the sink's cursor (Seq 0) the first
	// time. It returns the cursor as it stands and reports whether holder
	// holds the lease. It must be atomic across processes: of concurrent
	// callers with different holders at most one gets true.
	LeaseStream(ctx context.Context, sink, holder string, now, until time.Time) (StreamCursor, bool, error)
	// AdvanceStream moves sink's Seq up to seq, only while holder's lease
	// is valid at now (a lease-fenced write: a server that lost the lease
	// cannot move the cursor). A seq at or below the cursor leaves it. It
	// reports whether holder still held the lease.
	AdvanceStream(ctx context.Context, sink, holder string, seq int64, now time.Time) (bool, error)
	// ReleaseStream ends holder's lease on sink, if it holds it, so that
	// another server may take it at once. Its cursor stays.
	ReleaseStream(ctx context.Context, sink, holder string) error
	// StreamCursors returns every sink's cursor, ordered by sink.
	StreamCursors(ctx context.Context) ([]StreamCursor, error)
}
