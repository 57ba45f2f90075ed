package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/airlockhq/airlock"
)

// Streams (SIEM cursors and leases).

// CreateStream inserts sink's cursor (Seq 0, no lease) unless it exists.
func (d Dialect) CreateStream(sink string) Stmt {
	return Stmt{`INSERT INTO stream_cursors (sink, seq, holder, lease_until) VALUES ($1, 0, '', NULL)
ON CONFLICT (sink) DO NOTHING`, []any{sink}}
}

// LeaseStream takes or renews the lease in one conditional UPDATE … RETURNING:
// of concurrent callers, the engine lets one row version satisfy the
// condition for only one holder.
func (d Dialect) LeaseStream(sink, holder string, now, until time.Time) Stmt {
	return Stmt{`UPDATE stream_cursors SET holder = $2, lease_until = $4
WHERE sink = $1 AND (holder = $2 OR holder = '' OR lease_until IS NULL OR lease_until <= $3)
RETURNING sink, seq, holder, lease_until`, []any{sink, holder, d.Time(now), d.Time(until)}}
}

// AdvanceStream moves the cursor up while holder's lease is valid at now.
func (d Dialect) AdvanceStream(sink, holder string, seq int64, now time.Time) Stmt {
	return Stmt{`UPDATE stream_cursors SET seq = CASE WHEN seq < $3 THEN $3 ELSE seq END
WHERE sink = $1 AND holder = $2 AND lease_until > $4`, []any{sink, holder, seq, d.Time(now)}}
}

// ReleaseStream ends holder's lease.
func (d Dialect) ReleaseStream(sink, holder string) Stmt {
	return Stmt{`UPDATE stream_cursors SET holder = '', lease_until = NULL WHERE sink = $1 AND holder = $2`, []any{sink, holder}}
}

// StreamCols are the columns ScanStreamCursor reads.
const StreamCols = `sink, seq, holder, lease_until`

// StreamCursor selects one sink's cursor.
func (d Dialect) StreamCursor(sink string) Stmt {
	return Stmt{`SELECT ` + StreamCols + ` FROM stream_cursors WHERE sink = $1`, []any{sink}}
}

// StreamCursors selects every cursor, ordered by sink.
func (d Dialect) StreamCursors() Stmt {
	return Stmt{`SELECT ` + StreamCols + ` FROM stream_cursors ORDER BY sink`, nil}
}

// ScanStreamCursor reads one row of StreamCols.
func ScanStreamCursor(s Scanner) (airlock.StreamCursor, error) {
	var c airlock.StreamCursor
	err := s.Scan(&c.Sink, &c.Seq, &c.Holder, Time(&c.LeaseUntil))
	return c, err
}

// LeaseStreamWith runs LeaseStream's statements with one-row queries on
// row and statements on exec: create the cursor, try the conditional
// update, and when it matched nothing read the cursor as it stands.
// noRows reports whether an error is "no row".
func (d Dialect) LeaseStreamWith(ctx context.Context, exec func(Stmt) error, row func(Stmt) Scanner, noRows func(error) bool,
	sink, holder string, now, until time.Time) (airlock.StreamCursor, bool, error) {
	if sink == "" || holder == "" {
		return airlock.StreamCursor{}, false, airlock.Errorf(airlock.EINVALID, "stream lease: sink and holder are required")
	}
	if err := exec(d.CreateStream(sink)); err != nil {
		return airlock.StreamCursor{}, false, err
	}
	c, err := ScanStreamCursor(row(d.LeaseStream(sink, holder, now, until)))
	if err == nil {
		return c, true, nil
	}
	if !noRows(err) {
		return airlock.StreamCursor{}, false, err
	}
	c, err = ScanStreamCursor(row(d.StreamCursor(sink)))
	if err != nil {
		return airlock.StreamCursor{}, false, errors.Join(errors.New("read stream cursor"), err)
	}
	return c, false, nil
}
