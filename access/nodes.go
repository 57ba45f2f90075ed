package access

import (
	"context"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// Liveness configures this node's heartbeats and how the sessions of lost
// nodes are ended (see StartNode and RunNode).
type Liveness struct {
	// Node names this process; its sessions record it as Session.Node.
	Node string
	// Identity names this server across restarts (host and data dir): the
	// nodes recorded under it are its previous lives.
	Identity string
	// Interval is the heartbeat period (default 2 s).
	Interval time.Duration
	// LostAfter is how long a node may go without a heartbeat before its
	// sessions are ended as node_lost (default 15 s). On a store with a
	// clock of its own (PostgreSQL) heartbeats are judged on that clock, so
	// replicas' clocks need not agree.
	LostAfter time.Duration
	// Wall is the liveness clock (default time.Now). It is apart from the
	// clock of record (Deps.Now): heartbeats measure real time even where
	// tests move the clock of record.
	Wall func() time.Time
}

// Default liveness settings.
const (
	DefaultHeartbeat = 2 * time.Second
	DefaultLostAfter = 15 * time.Second
)

// nodeState is the Service's liveness state.
type nodeState struct {
	mu sync.Mutex
	l  Liveness
	// beatingSince is when this node's current run of successful
	// heartbeats began (zero after a failure): only a node that has seen
	// the store for a whole LostAfter may call another one lost, or after
	// a store outage the first replica back would end the others'
	// sessions before they had a chance to beat again.
	beatingSince time.Time
	// unaudited are sessions this node ended whose session.ended event
	// could not be written yet; each beat retries them.
	unaudited []lostEnd
	// skew is the store's clock minus Wall, measured at the last beat
	// when the store has a clock of its own (replicas on one PostgreSQL):
	// heartbeats and staleness are then both on the store's clock, so a
	// replica whose clock runs ahead does not take the others for lost.
	skew time.Duration
}

// storeClock is a store shared by replicas that tells its own time.
type storeClock interface {
	Clock(ctx context.Context) (time.Time, error)
}

func (s *Service) liveness() Liveness {
	s.nodes.mu.Lock()
	defer s.nodes.mu.Unlock()
	return s.nodes.l
}

// StartNode records this node's first heartbeat and ends the sessions of
// its previous lives (the same Identity under another Node name: a process
// that was killed or crashed holding them). Call it before the gateways
// serve, then RunNode.
func (s *Service) StartNode(ctx context.Context, l Liveness) error {
	if l.Interval <= 0 {
		l.Interval = DefaultHeartbeat
	}
	if l.LostAfter <= 0 {
		l.LostAfter = DefaultLostAfter
	}
	if l.Wall == nil {
		l.Wall = time.Now
	}
	s.nodes.mu.Lock()
	s.nodes.l = l
	s.nodes.mu.Unlock()
	if err := s.beat(ctx); err != nil {
		return err
	}
	if l.Identity != "" {
		s.endLost(ctx, airlock.LostFilter{Self: l.Node, Identity: l.Identity}, "previous life of this server")
	}
	return nil
}

// RunNode beats every Interval until ctx ends. Once its own heartbeats have
// succeeded without a gap for LostAfter, each beat also ends the sessions
// of nodes that have not beaten for LostAfter (or never did), with an audit
// event each. Only sessions this node actually ended are audited by it.
//
// A node that has not beaten for half of LostAfter closes every session it
// holds on the wire (a local Revocation with Node set, end reason
// audit_unavailable): the others may soon end their records as node_lost, and a
// session must not go on after its record and audit say it ended. Each
// beat is bounded to a quarter of LostAfter, so a store that hangs rather
// than refuses cannot hold this off.
func (s *Service) RunNode(ctx context.Context) {
	l := s.liveness()
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	fence := time.AfterFunc(l.LostAfter/2, func() {
		s.log.Error("no heartbeat reached the store for half of --node-lost-after; closing this node's sessions before the others end them as node_lost",
			"node", l.Node, "lost_after", l.LostAfter)
		s.bus.Publish(airlock.Revocation{Node: l.Node, Reason: airlock.EndAuditUnavailable, Detail: "this node could not reach the store"})
	})
	defer fence.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, l.LostAfter/4)
		err := s.beat(bctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("node heartbeat failed", "node", l.Node, "err", err)
			}
			continue
		}
		fence.Reset(l.LostAfter / 2)
		s.reapLost(ctx)
	}
}

// beat records a heartbeat and keeps beatingSince.
func (s *Service) beat(ctx context.Context) error {
	l := s.liveness()
	now := l.Wall()
	at, skew := now, time.Duration(0)
	var err error
	if c, ok := s.store.(storeClock); ok {
		if at, err = c.Clock(ctx); err == nil {
			skew = at.Sub(now)
		}
	}
	if err == nil {
		err = s.store.HeartbeatNode(ctx, airlock.Node{Name: l.Node, Identity: l.Identity, HeartbeatAt: at})
	}
	s.nodes.mu.Lock()
	defer s.nodes.mu.Unlock()
	if err == nil {
		s.nodes.skew = skew
	}
	switch {
	case err != nil:
		s.nodes.beatingSince = time.Time{}
	case s.nodes.beatingSince.IsZero():
		s.nodes.beatingSince = now
	}
	return err
}

// reapLost retries unaudited ends, then ends the sessions of lost nodes
// when this node has beaten long enough to judge.
func (s *Service) reapLost(ctx context.Context) {
	s.nodes.mu.Lock()
	pending := s.nodes.unaudited
	s.nodes.unaudited = nil
	s.nodes.mu.Unlock()
	s.auditLost(ctx, pending)
	if f, ok := s.lostFilter(); ok {
		s.endLost(ctx, f, "no heartbeat for "+s.liveness().LostAfter.String())
	}
}

// lostFilter selects the sessions of nodes silent for LostAfter. ok is
// false while this node cannot judge: liveness not started, or its own
// heartbeats have not succeeded without a gap for LostAfter.
func (s *Service) lostFilter() (f airlock.LostFilter, ok bool) {
	s.nodes.mu.Lock()
	l, since, skew := s.nodes.l, s.nodes.beatingSince, s.nodes.skew
	s.nodes.mu.Unlock()
	if l.Node == "" || since.IsZero() {
		return f, false
	}
	now := l.Wall()
	if now.Sub(since) < l.LostAfter {
		return f, false
	}
	return airlock.LostFilter{Self: l.Node, StaleBefore: now.Add(skew - l.LostAfter)}, true
}

// endLost ends the sessions f selects and audits each one ended here; it
// returns them.
func (s *Service) endLost(ctx context.Context, f airlock.LostFilter, why string) []*airlock.Session {
	ended, err := s.store.EndLostSessions(ctx, f, s.now().UTC())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("end sessions of lost nodes", "err", err)
		}
		return nil
	}
	ends := make([]lostEnd, len(ended))
	for i, x := range ended {
		ends[i] = lostEnd{x, why}
	}
	s.auditLost(ctx, ends)
	return ended
}

// lostEnd is a session this node ended as node_lost, and why.
type lostEnd struct {
	s   *airlock.Session
	why string
}

// auditLost records session.ended for sessions this node ended as
// node_lost. The store change comes first (only then is it known which
// sessions this node ended, of several survivors); an event that fails is
// kept and retried at the next beat, so no session ended here goes
// unaudited while this process runs.
func (s *Service) auditLost(ctx context.Context, ended []lostEnd) {
	if len(ended) == 0 {
		return
	}
	l := s.liveness()
	events := make([]airlock.Event, len(ended))
	for i, e := range ended {
		x := e.s
		events[i] = airlock.Event{Actor: airlock.SystemActor, Action: "session.ended", Resource: x.Resource, GrantID: x.GrantID, SessionID: x.ID,
			SourceAddr: x.SourceAddr, Outcome: airlock.OutcomeSuccess,
			Details: airlock.EventDetails("end_reason", airlock.EndNodeLost, "node", x.Node, "ended_by", l.Node, "why", e.why, "user", x.UserName,
				"duration_ms", x.EndedAt.Sub(x.StartedAt).Milliseconds(), "bytes_in", x.BytesIn, "bytes_out", x.BytesOut, "statements", x.Statements)}
	}
	// recordBatch waits for every event whatever ctx does (a sessions
	// kill whose client went away): an event given up on while it could
	// still become durable would be written twice by the retry.
	var failed []lostEnd
	seqs, _ := s.recordBatch(ctx, events)
	for i, seq := range seqs {
		if seq == 0 {
			failed = append(failed, ended[i])
			continue
		}
		s.log.Info("ended session of a lost node", "session", ended[i].s.ID, "node", ended[i].s.Node, "user", ended[i].s.UserName, "why", ended[i].why)
	}
	if len(failed) > 0 {
		s.log.Error("audit sessions ended as node_lost; retrying at the next heartbeat", "sessions", len(failed))
		s.nodes.mu.Lock()
		s.nodes.unaudited = append(s.nodes.unaudited, failed...)
		s.nodes.mu.Unlock()
	}
}
