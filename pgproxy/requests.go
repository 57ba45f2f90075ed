package pgproxy

import (
	"sync"

	"github.com/airlockhq/airlock/internal/dbgw"
)

// unit is one request awaiting its response.
type unit struct {
	kind byte // 'Q' query, 'P' parse, 'B' bind (with masks), 'D' describe, 'E' execute, 'S' sync, 'F' function call
	stmt int64
	// touches: the statement may read masked data (mask.go); injected:
	// a Describe the gateway sent itself, whose answer the client does
	// not get.
	touches, injected bool
	// denied is set when guardrails replaced the request: the server's
	// error for the replacement is rewritten into this message.
	denied string
}

// requestQueue is a session's outstanding requests: pushed by the
// client→server direction as it forwards them, popped by the
// server→client one as their responses pass.
type requestQueue struct {
	mu   sync.Mutex
	q    []unit
	next int // q[next] is the oldest outstanding request
}

// push queues a request awaiting its response.
func (r *requestQueue) push(u unit) {
	r.mu.Lock()
	r.q = append(r.q, u)
	r.mu.Unlock()
}

// head returns the oldest outstanding request.
func (r *requestQueue) head() (unit, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next < len(r.q) {
		return r.q[r.next], true
	}
	return unit{}, false
}

// busy reports whether a request awaits its response.
func (r *requestQueue) busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) > r.next
}

// pop drops outstanding requests from the front while drop reports true
// for them, and then also the first one for which last reports true,
// which it returns.
func (r *requestQueue) pop(drop func(unit) bool, last func(unit) bool) (popped unit, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.next < len(r.q) {
		u := r.q[r.next]
		if last != nil && last(u) {
			r.next++
			popped, ok = u, true
			break
		}
		if !drop(u) {
			break
		}
		r.next++
	}
	r.q, r.next = dbgw.CompactFIFO(r.q, r.next)
	return popped, ok
}

func never(unit) bool { return false }
