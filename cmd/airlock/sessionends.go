package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

// sessionEnds is how both gateways record the end of a session: the row
// (EndSession) and its session.ended event. A write of either that fails
// (the store is down, the disk full) is retried in the background, with
// backoff, until it succeeds or the server stops; a session this process
// could not end before it stopped is ended as node_lost by the heartbeat
// path (the other replicas, or this server's next start). Without this a
// failed write left the session "active" for good.
//
// A session ends once. The row is ended only while still active
// (EndSession's ECONFLICT otherwise), so a late retry never overwrites a
// node_lost end that another replica recorded meanwhile; and a retried
// session.ended waits until the row has ended and is dropped when it
// ended as node_lost, whose ender wrote the session's session.ended.
type sessionEnds struct {
	store airlock.SessionStore
	audit *audit.Log
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newSessionEnds(store airlock.SessionStore, al *audit.Log, log *slog.Logger) *sessionEnds {
	ctx, cancel := context.WithCancel(context.Background())
	return &sessionEnds{store: store, audit: al, log: log, ctx: ctx, cancel: cancel}
}

// CreateSession records a new session (no retry: the gateway refuses a
// session it cannot record).
func (e *sessionEnds) CreateSession(ctx context.Context, s *airlock.Session) error {
	return e.store.CreateSession(ctx, s)
}

// EndSession records the end of s; when that fails it returns the error
// and keeps retrying in the background.
func (e *sessionEnds) EndSession(ctx context.Context, s *airlock.Session) error {
	err := e.store.EndSession(ctx, s)
	if err != nil && !endedElsewhere(err) {
		snap := *s
		e.retry("session end", s.ID, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			err := e.store.EndSession(ctx, &snap)
			if endedElsewhere(err) {
				e.log.Warn("session ended elsewhere while its end was retried; the first end stands", "session", snap.ID, "err", err)
				return nil
			}
			return err
		})
	}
	return err
}

// endedElsewhere reports whether err from EndSession means there is
// nothing to retry: the session is gone or has already ended.
func endedElsewhere(err error) bool {
	return airlock.IsCode(err, airlock.ENOTFOUND) || airlock.IsCode(err, airlock.ECONFLICT)
}

// errRowActive makes an event retry wait for the session's row to end.
var errRowActive = errors.New("session row not ended yet")

// event retries ev, a session.ended event whose write failed, once the
// session's row has ended; when the row ended as node_lost the event is
// dropped: whoever ended it so wrote its session.ended.
func (e *sessionEnds) event(ev airlock.Event) {
	e.retry("session.ended event", ev.SessionID, func(ctx context.Context) error {
		row, err := e.store.SessionByID(ctx, ev.SessionID)
		switch {
		case airlock.IsCode(err, airlock.ENOTFOUND):
			// No row to settle it: the event alone records the end.
		case err != nil:
			return err
		case row.Active():
			return errRowActive
		case row.EndReason == string(airlock.EndNodeLost):
			e.log.Warn("session ended as node_lost while its session.ended was retried; dropping this node's event", "session", ev.SessionID)
			return nil
		}
		// No timeout per attempt: an append that timed out might still
		// become durable, and a second attempt would duplicate it.
		_, err = e.audit.Append(ctx, ev)
		return err
	})
}

// retry runs fn until it returns nil or the server stops, backing off
// from 100 ms to 2 s between attempts.
func (e *sessionEnds) retry(what, session string, fn func(context.Context) error) {
	e.log.Warn("recording the end of a session failed; retrying in the background", "what", what, "session", session)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		wait := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			t := time.NewTimer(wait)
			select {
			case <-e.ctx.Done():
				t.Stop()
				e.log.Error("server stopping with a session end unrecorded; the next start or another replica ends it as node_lost",
					"what", what, "session", session)
				return
			case <-t.C:
			}
			err := fn(e.ctx)
			if err == nil {
				e.log.Info("recorded the end of a session after retrying", "what", what, "session", session, "attempts", attempt)
				return
			}
			wait = min(2*wait, 2*time.Second)
		}
	}()
}

// close stops the retries and waits for them.
func (e *sessionEnds) close() {
	e.cancel()
	e.wg.Wait()
}

// endAuditor is the SSH gateway's auditor: the audit log, with failed
// session.ended events retried.
type endAuditor struct {
	l    *audit.Log
	ends *sessionEnds
}

func (a endAuditor) Record(ctx context.Context, ev airlock.Event) (int64, error) {
	seq, err := a.l.Record(ctx, ev)
	if err != nil && ev.Action == "session.ended" && airlock.ErrorCode(err) == airlock.EUNAVAILABLE {
		a.ends.event(ev)
	}
	return seq, err
}

// submitEnd is the PostgreSQL gateway's Submit for session.ended: a
// failed receipt hands the event to the retries.
func (a auditSink) submitEnd(ev airlock.Event) airlock.AuditPending {
	r := a.l.Submit(ev)
	go func() {
		<-r.Done()
		if r.Err() != nil {
			a.ends.event(ev)
		}
	}()
	return r
}
