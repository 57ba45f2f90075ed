package access

import (
	"encoding/json"
	"sync"

	"github.com/airlockhq/airlock"
)

// Bus fans revocations out to subscribers (the gateways). In-process by
// default; with SetRemote it also forwards them to other replicas (the
// PostgreSQL store's LISTEN/NOTIFY), and Receive takes theirs in. Gateways
// also enforce every session's ends_at locally, so expiry never waits on
// the network.
type Bus struct {
	mu     sync.RWMutex
	subs   []func(airlock.Revocation)
	node   string
	remote func(payload []byte)
}

// Subscribe registers fn to receive every revocation. fn must not block.
func (b *Bus) Subscribe(fn func(airlock.Revocation)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, fn)
}

// SetRemote makes Publish also send each revocation, encoded, to send
// (which must not block for long); node names this replica so its own
// revocations coming back through Receive are ignored.
func (b *Bus) SetRemote(node string, send func(payload []byte)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.node, b.remote = node, send
}

// Publish delivers r to every local subscriber synchronously, then to the
// other replicas when a remote is set.
func (b *Bus) Publish(r airlock.Revocation) {
	b.deliver(r)
	b.mu.RLock()
	send, node := b.remote, b.node
	b.mu.RUnlock()
	if send != nil {
		r.Origin = node
		if p, err := json.Marshal(r); err == nil {
			send(p)
		}
	}
}

// Receive delivers a revocation published by another replica. Payloads
// that do not decode, or that this replica published, are ignored.
func (b *Bus) Receive(payload []byte) {
	var r airlock.Revocation
	if err := json.Unmarshal(payload, &r); err != nil {
		return
	}
	b.mu.RLock()
	self := b.node != "" && r.Origin == b.node
	b.mu.RUnlock()
	if self || r.Empty() {
		return
	}
	b.deliver(r)
}

func (b *Bus) deliver(r airlock.Revocation) {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, fn := range subs {
		fn(r)
	}
}
