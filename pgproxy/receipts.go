package pgproxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
)

// receipts is a session's queue of audit receipts. Producers (both relay
// directions) count and queue each receipt under mu; the watcher confirms
// them in order. The queue is bounded by the pipeline's own (Submit blocks
// when that is full) and the watcher wakes once per commit, not per
// statement: wake is signalled only when the queue was empty.
type receipts struct {
	mu        sync.Mutex
	closed    bool
	pend      []airlock.AuditPending
	head      int
	wake      chan struct{}
	submitted atomic.Int64
	confirmed atomic.Int64
	failed    atomic.Bool
	waitMu    sync.Mutex
	waitCh    chan struct{}
}

var (
	errKilled = errors.New("pgproxy: session closed")
	errAudit  = errors.New("pgproxy: audit receipt failed")
)

// submit hands e to the audit pipeline and queues its receipt for the
// watcher.
func (s *session) submit(e airlock.Event) {
	p := s.g.cfg.Audit.Submit(e)
	s.receipts.mu.Lock()
	if s.receipts.closed {
		s.receipts.mu.Unlock()
		return
	}
	s.receipts.submitted.Add(1)
	s.receipts.pend = append(s.receipts.pend, p)
	first := len(s.receipts.pend)-s.receipts.head == 1
	s.receipts.mu.Unlock()
	if first {
		s.wakeWatcher()
	}
}

func (s *session) wakeWatcher() {
	select {
	case s.receipts.wake <- struct{}{}:
	default:
	}
}

// watch confirms receipts in order and closes the session on the first
// failure. It waits for the oldest receipt, then takes every later one
// that is also complete (one commit usually settles them all).
func (s *session) watch() {
	for {
		s.receipts.mu.Lock()
		for s.receipts.head == len(s.receipts.pend) {
			if s.receipts.closed {
				s.receipts.mu.Unlock()
				return
			}
			s.receipts.mu.Unlock()
			<-s.receipts.wake
			s.receipts.mu.Lock()
		}
		p := s.receipts.pend[s.receipts.head]
		s.receipts.mu.Unlock()
		<-p.Done()
		s.receipts.mu.Lock()
		for s.receipts.head < len(s.receipts.pend) && isDone(s.receipts.pend[s.receipts.head]) {
			p := s.receipts.pend[s.receipts.head]
			s.receipts.pend[s.receipts.head] = nil
			s.receipts.head++
			s.settle(p)
		}
		s.receipts.pend, s.receipts.head = compactFIFO(s.receipts.pend, s.receipts.head)
		s.receipts.mu.Unlock()
		s.receipts.waitMu.Lock()
		if s.receipts.waitCh != nil {
			close(s.receipts.waitCh)
			s.receipts.waitCh = nil
		}
		s.receipts.waitMu.Unlock()
	}
}

// settle records the outcome of a completed receipt.
func (s *session) settle(p airlock.AuditPending) {
	if err := p.Err(); err != nil {
		if s.receipts.failed.CompareAndSwap(false, true) {
			s.g.log.Error("pgproxy: audit receipt failed; closing session", "session", s.id, "err", err)
			s.kill(airlock.EndAuditUnavailable, codeAdminShutdown, msgAuditFailed)
		}
		return
	}
	s.receipts.confirmed.Add(1)
}

// killSettleWait is how long a killed strict session waits for its
// receipts before it sends the FATAL message (it drops it otherwise).
const killSettleWait = 200 * time.Millisecond

// settledWithin flushes the audit pipeline and waits up to d for every
// receipt submitted so far to be durable; it reports whether they are.
func (s *session) settledWithin(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.awaitDurable(ctx.Done()) == nil
}

// waitDurable blocks until every receipt submitted so far is durable, or
// the session is killed first.
func (s *session) waitDurable() error { return s.awaitDurable(s.killedCh) }

// awaitDurable waits until every receipt submitted so far is durable
// (nil), one has failed (errAudit) or stop is closed first (errKilled). It
// flushes the audit pipeline once when it has to wait, so the receipts do
// not wait out its group-commit delay.
func (s *session) awaitDurable(stop <-chan struct{}) error {
	target := s.receipts.submitted.Load()
	flushed := false
	for {
		if s.receipts.failed.Load() {
			return errAudit
		}
		if s.receipts.confirmed.Load() >= target {
			return nil
		}
		s.receipts.waitMu.Lock()
		if s.receipts.waitCh == nil {
			s.receipts.waitCh = make(chan struct{})
		}
		ch := s.receipts.waitCh
		s.receipts.waitMu.Unlock()
		if s.receipts.confirmed.Load() >= target || s.receipts.failed.Load() {
			continue
		}
		if !flushed {
			s.g.cfg.Audit.Flush()
			flushed = true
		}
		select {
		case <-ch:
		case <-stop:
			if !s.receipts.failed.Load() && s.receipts.confirmed.Load() >= target {
				return nil
			}
			return errKilled
		}
	}
}

// isDone reports whether p has completed, without waiting.
func isDone(p airlock.AuditPending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}
