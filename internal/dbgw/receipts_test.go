package dbgw

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

type pending struct {
	done chan struct{}
	err  error
}

func (p *pending) Done() <-chan struct{} { return p.done }
func (p *pending) Err() error            { return p.err }
func (p *pending) Seq() int64            { return 0 }

// held is a pipeline whose receipts complete when the test says.
type held struct {
	mu      sync.Mutex
	ps      []*pending
	flushes int
}

func (h *held) Submit(airlock.Event) airlock.AuditPending {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := &pending{done: make(chan struct{})}
	h.ps = append(h.ps, p)
	return p
}
func (h *held) Flush() { h.mu.Lock(); h.flushes++; h.mu.Unlock() }
func (h *held) settle(i int, err error) {
	h.mu.Lock()
	p := h.ps[i]
	h.mu.Unlock()
	p.err = err
	close(p.done)
}

func TestReceiptsConfirmInOrder(t *testing.T) {
	h := &held{}
	r := NewReceipts(h, func(error) { t.Error("no receipt failed") })
	go r.Watch()
	defer r.Close()
	for range 3 {
		r.Submit(airlock.Event{})
	}
	done := make(chan error, 1)
	go func() { done <- r.AwaitDurable(make(chan struct{})) }()
	h.settle(2, nil) // the last first: nothing is confirmed before the first
	h.settle(1, nil)
	select {
	case <-done:
		t.Fatal("durable before the oldest receipt")
	case <-time.After(50 * time.Millisecond):
	}
	h.settle(0, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.Confirmed() != 3 || r.Submitted() != 3 {
		t.Fatalf("confirmed %d submitted %d", r.Confirmed(), r.Submitted())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flushes != 1 {
		t.Fatalf("AwaitDurable flushed %d times, want once", h.flushes)
	}
}

func TestReceiptsFailOnce(t *testing.T) {
	h := &held{}
	var mu sync.Mutex
	var fails []error
	r := NewReceipts(h, func(err error) { mu.Lock(); fails = append(fails, err); mu.Unlock() })
	go r.Watch()
	defer r.Close()
	r.Submit(airlock.Event{})
	r.Submit(airlock.Event{})
	boom := errors.New("disk full")
	h.settle(0, boom)
	h.settle(1, errors.New("again"))
	if err := r.AwaitDurable(make(chan struct{})); !errors.Is(err, ErrAudit) {
		t.Fatalf("AwaitDurable = %v, want ErrAudit", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fails) != 1 || fails[0] != boom {
		t.Fatalf("onFail calls %v, want once with the first error", fails)
	}
}

func TestReceiptsStop(t *testing.T) {
	h := &held{}
	r := NewReceipts(h, nil)
	go r.Watch()
	defer r.Close()
	r.Submit(airlock.Event{})
	stop := make(chan struct{})
	close(stop)
	if err := r.AwaitDurable(stop); !errors.Is(err, ErrStopped) {
		t.Fatalf("AwaitDurable = %v, want ErrStopped", err)
	}
	if r.SettledWithin(20 * time.Millisecond) {
		t.Fatal("settled with a receipt outstanding")
	}
}

func TestCompactFIFO(t *testing.T) {
	q := make([]int, 2000)
	q, h := CompactFIFO(q, 1500)
	if h != 0 || len(q) != 500 {
		t.Fatalf("compacted to len %d head %d", len(q), h)
	}
	q, h = CompactFIFO(q, 500)
	if h != 0 || len(q) != 0 {
		t.Fatalf("emptied to len %d head %d", len(q), h)
	}
}
