package netguard

import (
	"net"
	"sync"
	"time"
)

// Budget bounds the audit events unauthenticated clients can cause: at
// most one per source (SourceKey: an IPv4 address or an IPv6 /64) per
// Interval, and it forgets every source once it tracks MaxSources, so its
// memory is bounded too. A refusal over budget is still refused; it is
// only not written again.
type Budget struct {
	Interval   time.Duration
	MaxSources int
	Now        func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

// Allow reports whether an event from remote may be written now, and
// counts it when it may.
func (b *Budget) Allow(remote net.Addr) bool {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	t := now()
	src := SourceKey(remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil || len(b.last) >= max(b.MaxSources, 1) {
		b.last = map[string]time.Time{}
	}
	if prev, ok := b.last[src]; ok && t.Sub(prev) < b.Interval {
		return false
	}
	b.last[src] = t
	return true
}
