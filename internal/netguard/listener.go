package netguard

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Backoff bounds of Listener.Accept (those of net/http's Server.Serve).
const (
	MinBackoff = 5 * time.Millisecond
	MaxBackoff = time.Second
)

// acceptLogInterval is the least time between two log lines of one
// Listener while it backs off.
const acceptLogInterval = time.Second

// Listener is a net.Listener whose Accept backs off and retries on every
// error except a closed listener. Close wakes an Accept that is waiting.
// The zero value is not usable; use NewListener.
type Listener struct {
	net.Listener
	name string
	log  *slog.Logger

	closeOnce sync.Once
	done      chan struct{}

	mu       sync.Mutex // guards the fields below (Accept may run concurrently)
	lastLog  time.Time
	unlogged int  // errors since the last log line
	failing  bool // the last Accept call saw an error
}

// NewListener wraps ln. name (e.g. "pg") labels its log lines; log may be
// nil to discard them.
func NewListener(ln net.Listener, name string, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, name: name, log: log, done: make(chan struct{})}
}

// Accept waits for and returns the next connection. It returns an error
// only when the listener is closed; the error then matches net.ErrClosed.
// Any other error from the wrapped listener makes it wait (MinBackoff,
// doubling up to MaxBackoff) and try again.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if delay > 0 {
				l.recovered()
			}
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) || l.closed() {
			return nil, l.closedErr(err)
		}
		delay = min(max(2*delay, MinBackoff), MaxBackoff)
		l.backingOff(err, delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return nil, l.closedErr(err)
		}
	}
}

// Close closes the wrapped listener and wakes a waiting Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// closedErr returns err if it already says the listener is closed, else an
// accept error that does.
func (l *Listener) closedErr(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	return &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
}

func (l *Listener) backingOff(err error, delay time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = true
	l.unlogged++
	now := time.Now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < acceptLogInterval {
		return
	}
	l.log.Warn("accept failed; backing off and serving on", "listener", l.name, "err", err,
		"retry_in", delay, "errors", l.unlogged)
	l.lastLog, l.unlogged = now, 0
}

func (l *Listener) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		return
	}
	l.failing = false
	l.log.Info("accepting connections again", "listener", l.name, "errors_since_last_log", l.unlogged)
	l.unlogged = 0
}

// AcceptLoop accepts on l (a Listener: it returns only once l is closed)
// until then. Each connection must first get a pending-handshake slot
// from p: one over the bounds goes to refuse, which answers and closes it;
// an admitted one goes to handle with the func that gives its slot back.
// handle runs on the loop's goroutine and must start its own for the
// connection. AcceptLoop returns nil once closed reports true or ctx is
// done, the accept error otherwise. It is the one accept loop of the
// gateways.
func AcceptLoop(ctx context.Context, l net.Listener, p *Pending, closed func() bool, refuse func(net.Conn), handle func(c net.Conn, release func())) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if closed() || ctx.Err() != nil {
				return nil
			}
			return err
		}
		release, err := p.Admit(c.RemoteAddr())
		if err != nil {
			refuse(c)
			continue
		}
		handle(c, release)
	}
}
