package netguard

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of Limits and of the gateways' handshake deadline.
const (
	DefaultMaxPending          = 512
	DefaultMaxPendingPerSource = 32
	DefaultHandshakeTimeout    = 10 * time.Second
)

// RefusalLogInterval is the least time between two refusal log lines of
// one Pending.
const RefusalLogInterval = 10 * time.Second

// Errors of Pending.Admit.
var (
	ErrTooManyPending           = errors.New("netguard: too many pending connections on this listener")
	ErrTooManyPendingFromSource = errors.New("netguard: too many pending connections from this source")
)

// Limits bounds the unauthenticated connections of one listener. A zero
// or negative field takes its default.
type Limits struct {
	// MaxPending bounds connections still in their handshake on the
	// listener (default DefaultMaxPending).
	MaxPending int
	// MaxPendingPerSource bounds them per source address: one IPv4
	// address or one IPv6 /64 (default DefaultMaxPendingPerSource).
	MaxPendingPerSource int
}

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.MaxPendingPerSource <= 0 {
		l.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	return l
}

// Stats are a Pending's counters.
type Stats struct {
	Pending          int    // connections holding a slot now
	Sources          int    // distinct sources holding a slot now
	RefusedListener  uint64 // refused since start: listener bound reached
	RefusedPerSource uint64 // refused since start: per-source bound reached
}

// Pending counts the connections of one listener that have not
// authenticated yet and refuses those over its Limits. Use NewPending.
type Pending struct {
	name string
	lim  Limits
	log  *slog.Logger

	mu       sync.Mutex
	total    int
	bySource map[string]int
	stats    Stats
	// refusal log state
	lastLog    time.Time
	unlogged   [2]int // listener, per-source refusals since the last line
	lastSource string
}

// NewPending returns a Pending for the listener called name (for logs)
// with lim (defaults filled in). log may be nil to discard.
func NewPending(name string, lim Limits, log *slog.Logger) *Pending {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pending{name: name, lim: lim.WithDefaults(), log: log, bySource: map[string]int{}}
}

// Limits returns the bounds in force.
func (p *Pending) Limits() Limits { return p.lim }

// Admit takes a slot for a new connection from remote. On success it
// returns release, which gives the slot back; call it when the connection
// has authenticated or has ended (it may be called any number of times,
// from any goroutine; only the first call counts). Otherwise it returns
// ErrTooManyPending or ErrTooManyPendingFromSource, and the caller should
// close the connection at once.
func (p *Pending) Admit(remote net.Addr) (release func(), err error) {
	src := SourceKey(remote)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.total >= p.lim.MaxPending:
		p.refusedLocked(0, src)
		return nil, ErrTooManyPending
	case p.bySource[src] >= p.lim.MaxPendingPerSource:
		p.refusedLocked(1, src)
		return nil, ErrTooManyPendingFromSource
	}
	p.total++
	p.bySource[src]++
	var once sync.Once
	return func() { once.Do(func() { p.release(src) }) }, nil
}

func (p *Pending) release(src string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	if n := p.bySource[src] - 1; n > 0 {
		p.bySource[src] = n
	} else {
		delete(p.bySource, src)
	}
}

func (p *Pending) refusedLocked(kind int, src string) {
	if kind == 0 {
		p.stats.RefusedListener++
	} else {
		p.stats.RefusedPerSource++
	}
	p.unlogged[kind]++
	p.lastSource = src
	now := time.Now()
	if !p.lastLog.IsZero() && now.Sub(p.lastLog) < RefusalLogInterval {
		return
	}
	p.log.Warn("refused unauthenticated connections over the pending-handshake limits",
		"listener", p.name, "over_listener_limit", p.unlogged[0], "over_source_limit", p.unlogged[1],
		"last_source", p.lastSource, "pending", p.total, "max_pending", p.lim.MaxPending,
		"max_pending_per_source", p.lim.MaxPendingPerSource)
	p.lastLog, p.unlogged = now, [2]int{}
}

// Stats returns a snapshot of the counters.
func (p *Pending) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Pending, s.Sources = p.total, len(p.bySource)
	return s
}

// SourceKey names the source a connection is counted under: the IP
// address for IPv4 (and IPv4-mapped IPv6), the /64 prefix for IPv6, and
// the address's string for anything else (pipes, Unix sockets).
func SourceKey(a net.Addr) string {
	var ap netip.AddrPort
	switch v := a.(type) {
	case *net.TCPAddr:
		ap = v.AddrPort()
	case *net.UDPAddr:
		ap = v.AddrPort()
	default:
		if a == nil {
			return ""
		}
		p, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return a.String()
		}
		ap = p
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if pfx, err := ip.Prefix(64); err == nil {
			return pfx.String()
		}
	}
	return ip.String()
}
