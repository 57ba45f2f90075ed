package dbgw

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
)

// Errors of AwaitDurable.
var (
	// ErrStopped: the stop channel closed before the receipts were durable.
	ErrStopped = errors.New("dbgw: session closed")
	// ErrAudit: a receipt failed.
	ErrAudit = errors.New("dbgw: audit receipt failed")
)

// Receipts is a session's queue of audit receipts. Producers (both relay
// directions) submit events; Watch confirms their receipts in order and
// calls OnFail once for the first failure. The queue is bounded by the
// pipeline's own (Submit blocks when that is full) and the watcher wakes
// once per commit, not per event: wake is signalled only when the queue
// was empty. The zero value is not usable: use NewReceipts.
type Receipts struct {
	audit  airlock.AuditPipeline
	onFail func(error)

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

// NewReceipts returns a queue submitting to audit; onFail is called once,
// from the watcher, with the first receipt's error.
func NewReceipts(audit airlock.AuditPipeline, onFail func(error)) *Receipts {
	return &Receipts{audit: audit, onFail: onFail, wake: make(chan struct{}, 1)}
}

// Submit hands e to the audit pipeline and queues its receipt. After
// Close it still submits e but queues nothing.
func (r *Receipts) Submit(e airlock.Event) {
	p := r.audit.Submit(e)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.submitted.Add(1)
	r.pend = append(r.pend, p)
	first := len(r.pend)-r.head == 1
	r.mu.Unlock()
	if first {
		r.wakeWatcher()
	}
}

func (r *Receipts) wakeWatcher() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops the watcher once the receipts queued so far are confirmed.
func (r *Receipts) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wakeWatcher()
}

// Failed reports whether a receipt has failed.
func (r *Receipts) Failed() bool { return r.failed.Load() }

// Submitted and Confirmed count receipts.
func (r *Receipts) Submitted() int64 { return r.submitted.Load() }
func (r *Receipts) Confirmed() int64 { return r.confirmed.Load() }

// Watch confirms receipts in order until Close; run it in its own
// goroutine. It waits for the oldest receipt, then takes every later one
// that is also complete (one commit usually settles them all).
func (r *Receipts) Watch() {
	for {
		r.mu.Lock()
		for r.head == len(r.pend) {
			if r.closed {
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		p := r.pend[r.head]
		r.mu.Unlock()
		<-p.Done()
		r.mu.Lock()
		for r.head < len(r.pend) && isDone(r.pend[r.head]) {
			p := r.pend[r.head]
			r.pend[r.head] = nil
			r.head++
			r.settle(p)
		}
		r.pend, r.head = CompactFIFO(r.pend, r.head)
		r.mu.Unlock()
		r.waitMu.Lock()
		if r.waitCh != nil {
			close(r.waitCh)
			r.waitCh = nil
		}
		r.waitMu.Unlock()
	}
}

// settle records the outcome of a completed receipt (r.mu held).
func (r *Receipts) settle(p airlock.AuditPending) {
	if err := p.Err(); err != nil {
		if r.failed.CompareAndSwap(false, true) && r.onFail != nil {
			r.onFail(err)
		}
		return
	}
	r.confirmed.Add(1)
}

// SettledWithin flushes the audit pipeline and waits up to d for every
// receipt submitted so far to be durable; it reports whether they are.
func (r *Receipts) SettledWithin(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.AwaitDurable(ctx.Done()) == nil
}

// AwaitDurable waits until every receipt submitted so far is durable
// (nil), one has failed (ErrAudit) or stop is closed first (ErrStopped). It
// flushes the audit pipeline once when it has to wait, so the receipts do
// not wait out its group-commit delay.
func (r *Receipts) AwaitDurable(stop <-chan struct{}) error {
	target := r.submitted.Load()
	flushed := false
	for {
		if r.failed.Load() {
			return ErrAudit
		}
		if r.confirmed.Load() >= target {
			return nil
		}
		r.waitMu.Lock()
		if r.waitCh == nil {
			r.waitCh = make(chan struct{})
		}
		ch := r.waitCh
		r.waitMu.Unlock()
		if r.confirmed.Load() >= target || r.failed.Load() {
			continue
		}
		if !flushed {
			r.audit.Flush()
			flushed = true
		}
		select {
		case <-ch:
		case <-stop:
			if !r.failed.Load() && r.confirmed.Load() >= target {
				return nil
			}
			return ErrStopped
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

// CompactFIFO keeps a slice used as a queue from q[head] on small: empty,
// it is reset (and dropped when it grew large); a long consumed prefix is
// moved out.
func CompactFIFO[T any](q []T, head int) ([]T, int) {
	switch {
	case head == len(q):
		clear(q)
		if cap(q) > 4096 {
			return nil, 0
		}
		return q[:0], 0
	case head > 1024 && head > len(q)/2:
		n := copy(q, q[head:])
		clear(q[n:])
		return q[:n], 0
	}
	return q, head
}
