package access

import (
	"encoding/json"
	"sync"

	"github.com/airlockhq/airlock"
)

// Revocation tells gateways to close sessions: those under GrantID, those
// of UserID, or the one SessionID (whichever are set).
type Revocation struct {
	GrantID   string `json:"grant_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	// Node, set only on this replica's own bus (never sent to others),
	// closes every session this node holds: it could not reach the store
	// for long enough that the others may end them as node_lost.
	Node string `json:"-"`
	// Reason is the end reason the closed sessions record; gateways
	// derive the message the user sees from it.
	Reason airlock.EndReason `json:"reason,omitempty"`
	// Detail says more for logs ("revoked by bob", "policy change
	// removed eligibility: …"); it is never a session's end reason.
	Detail string `json:"detail,omitempty"`
	// Origin names the replica that published it (set by the bus).
	Origin string `json:"origin,omitempty"`
}

// Bus fans revocations out to subscribers (the gateways). In-process by
// default; with SetRemote it also forwards them to other replicas (the
// PostgreSQL store's LISTEN/NOTIFY), and Receive takes theirs in. Gateways
// also enforce every session's ends_at locally, so expiry never waits on
// the network.
type Bus struct {
	mu     sync.RWMutex
	subs   []func(Revocation)
	node   string
	remote func(payload []byte)
}

// Subscribe registers fn to receive every revocation. fn must not block.
func (b *Bus) Subscribe(fn func(Revocation)) {
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
func (b *Bus) Publish(r Revocation) {
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
	var r Revocation
	if err := json.Unmarshal(payload, &r); err != nil {
		return
	}
	b.mu.RLock()
	self := b.node != "" && r.Origin == b.node
	b.mu.RUnlock()
	if self || (r.GrantID == "" && r.UserID == "" && r.SessionID == "") {
		return
	}
	b.deliver(r)
}

func (b *Bus) deliver(r Revocation) {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, fn := range subs {
		fn(r)
	}
}
