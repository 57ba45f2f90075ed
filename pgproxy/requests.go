package pgproxy

import (
	"sync"

	"github.com/airlockhq/airlock/internal/dbgw"
)

// unit is one request awaiting its response.
type unit struct {
	kind byte // 'Q' query, 'P' parse, 'B' bind, 'D' describe, 'E' execute, 'S' sync, 'F' function call
	stmt int64
	// copyIn: the request may start a COPY FROM STDIN (the copy gate
	// below).
	copyIn bool
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
//
// It is also the copy gate. In copy-in mode the server answers nothing it
// reads: it ignores Sync and Flush, and takes any other message but
// CopyData, CopyDone and CopyFail as the end of the copy, with an error
// (the message itself is lost). A request queued for such a message would
// be matched to the response of the one after it. So while a request
// that may start a COPY FROM STDIN is outstanding, the client→server
// direction waits, before each message, until the server either asked for
// copy data (copying) or finished the request (copyMode).
type requestQueue struct {
	mu   sync.Mutex
	q    []unit
	next int // q[next] is the oldest outstanding request
	// open counts the outstanding requests with copyIn; copying: the
	// server asked for copy data (CopyInResponse) and the client has not
	// ended the copy since; wake, when set, is closed at the next change
	// of either.
	open    int
	copying bool
	wake    chan struct{}
}

// push queues a request awaiting its response.
func (r *requestQueue) push(u unit) {
	r.mu.Lock()
	r.q = append(r.q, u)
	if u.copyIn {
		r.open++
	}
	r.mu.Unlock()
}

// notify wakes a copyMode waiting for a change (r.mu held).
func (r *requestQueue) notify() {
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// setCopying records that the server asked for copy data (true), or
// that the copy ended: the client sent CopyDone or CopyFail, or the
// server ended it (CommandComplete, ErrorResponse).
func (r *requestQueue) setCopying(on bool) {
	r.mu.Lock()
	if r.copying != on {
		r.copying = on
		r.notify()
	}
	r.mu.Unlock()
}

// copyMode reports whether the server reads the client's next message in
// copy-in mode. While that is not known yet it calls flush (the server
// may need what was forwarded to answer) and waits, until done closes
// (ok false). The wait is as long as the server takes to answer what the
// client already sent (a client that leaves meanwhile is seen after it);
// the grant's end, a revocation or a kill end it at once.
func (r *requestQueue) copyMode(flush func() error, done <-chan struct{}) (copying, ok bool, err error) {
	flushed := false
	for {
		r.mu.Lock()
		if r.open == 0 || r.copying {
			copying = r.copying
			r.mu.Unlock()
			return copying, true, nil
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		w := r.wake
		r.mu.Unlock()
		if !flushed {
			if err := flush(); err != nil {
				return false, false, err
			}
			flushed = true
		}
		select {
		case <-w:
		case <-done:
			return false, false, nil
		}
	}
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
	open := r.open
	for r.next < len(r.q) {
		u := r.q[r.next]
		if last != nil && last(u) {
			r.next++
			popped, ok = u, true
			if u.copyIn {
				r.open--
			}
			break
		}
		if !drop(u) {
			break
		}
		r.next++
		if u.copyIn {
			r.open--
		}
	}
	if r.open != open {
		r.notify()
	}
	r.q, r.next = dbgw.CompactFIFO(r.q, r.next)
	return popped, ok
}

func never(unit) bool { return false }
