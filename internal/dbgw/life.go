package dbgw

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
)

// Life is the lifecycle every database session shares, whatever its wire
// protocol: it ends once, for one reason, whoever ends it first — the
// relay, the grant's deadline, the idle timer, a revocation through the
// session registry — and its timers end it by themselves. What ending
// does on the wire (a FATAL, an ERR packet, closing both sides) is the
// gateway's, passed to End.
//
// The zero value is not usable: use NewLife.
type Life struct {
	once   sync.Once
	ended  atomic.Bool
	done   chan struct{}
	reason airlock.EndReason // set before ended and done

	lastActive atomic.Int64 // UnixNano of the last Touch

	mu       sync.Mutex
	stopped  bool
	deadline *time.Timer
	idle     *time.Timer
}

// NewLife returns a live session's lifecycle.
func NewLife() *Life {
	l := &Life{done: make(chan struct{})}
	l.Touch()
	return l
}

// End ends the life with reason, if it has not ended yet: it records the
// reason, marks it ended (Ended, Done), and runs then, all before any
// other End returns. It reports whether this call ended it.
func (l *Life) End(reason airlock.EndReason, then func()) bool {
	first := false
	l.once.Do(func() {
		first = true
		l.reason = reason
		l.ended.Store(true)
		close(l.done)
		if then != nil {
			then()
		}
	})
	return first
}

// Ended reports whether End has been called.
func (l *Life) Ended() bool { return l.ended.Load() }

// Done is closed when the life ends.
func (l *Life) Done() <-chan struct{} { return l.done }

// Reason is why the life ended ("" while it has not).
func (l *Life) Reason() airlock.EndReason {
	if !l.ended.Load() {
		return ""
	}
	return l.reason
}

// Touch records activity: the idle timer counts from the last Touch.
func (l *Life) Touch() { l.lastActive.Store(time.Now().UnixNano()) }

// Arm starts the timers: expire is called after d (the time left until
// the grant's ends_at), and when idle is positive idleOut is called once
// nothing has Touched the life for idle while busy (when set) reports
// false. Each is called at most once, never after Stop; they are expected
// to End the life.
func (l *Life) Arm(d time.Duration, expire func(), idle time.Duration, busy func() bool, idleOut func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.deadline = time.AfterFunc(d, expire)
	if idle <= 0 {
		return
	}
	var check func()
	check = func() {
		quiet := time.Since(time.Unix(0, l.lastActive.Load()))
		if quiet >= idle && (busy == nil || !busy()) {
			idleOut()
			return
		}
		next := idle - quiet
		if next <= 0 { // busy: look again a whole idle period on
			next = idle
		}
		l.mu.Lock()
		if !l.stopped {
			l.idle.Reset(next)
		}
		l.mu.Unlock()
	}
	l.idle = time.AfterFunc(idle, check)
}

// Stop stops the timers: neither calls back after Stop returns (one
// already running may still finish).
func (l *Life) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.deadline != nil {
		l.deadline.Stop()
	}
	if l.idle != nil {
		l.idle.Stop()
	}
}

// SessionRecorder persists gateway sessions; airlock.SessionStore
// satisfies it.
type SessionRecorder interface {
	CreateSession(ctx context.Context, s *airlock.Session) error
	EndSession(ctx context.Context, s *airlock.Session) error
}

// Ended is the details of a database session's session.ended event.
type Ended struct {
	DurationMS int64  `json:"duration_ms"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	Statements int64  `json:"statements"`
	EndReason  string `json:"end_reason"`
}

// EndedDetails is info's session.ended details (info.EndedAt and
// EndReason set).
func EndedDetails(info *airlock.Session) Ended {
	return Ended{DurationMS: info.EndedAt.Sub(info.StartedAt).Milliseconds(), BytesIn: info.BytesIn, BytesOut: info.BytesOut,
		Statements: info.Statements, EndReason: info.EndReason}
}

// recordTimeout bounds writing a session's end row.
const recordTimeout = 10 * time.Second

// RecordEnd writes info's end to rec (when set), logging a failure: the
// session.ended event is the record that counts, the row is the console's.
func RecordEnd(rec SessionRecorder, info *airlock.Session, log *slog.Logger, gateway string) {
	if rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := rec.EndSession(ctx, info); err != nil {
		log.Error(gateway+": record session end", "session", info.ID, "err", err)
	}
}
