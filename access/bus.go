package access

import "sync"

// Revocation tells gateways to close sessions: those under GrantID, those
// of UserID, or the one SessionID (whichever are set).
type Revocation struct {
	GrantID   string
	UserID    string
	SessionID string
	// Reason is shown to the user: "grant expired", "grant revoked", …
	Reason string
}

// Bus fans revocations out to subscribers (the gateways). It is in-process;
// replicas on PostgreSQL additionally rely on each gateway enforcing its
// sessions' ends_at locally.
type Bus struct {
	mu   sync.RWMutex
	subs []func(Revocation)
}

// Subscribe registers fn to receive every revocation. fn must not block.
func (b *Bus) Subscribe(fn func(Revocation)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, fn)
}

// Publish delivers r to every subscriber synchronously.
func (b *Bus) Publish(r Revocation) {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, fn := range subs {
		fn(r)
	}
}
