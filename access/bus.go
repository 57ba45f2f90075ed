package access

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// Bus fans revocations out to subscribers (the gateways): the
// airlock.RevocationBus. In-process by default; Replicate shares it with
// the other replicas over the store's airlock.RevocationTransport
// (PostgreSQL LISTEN/NOTIFY). Gateways also enforce every session's
// ends_at locally, so expiry never waits on the network.
type Bus struct {
	mu     sync.RWMutex
	subs   []func(airlock.Revocation)
	node   string
	remote func(payload []byte)
}

var _ airlock.RevocationBus = (*Bus)(nil)

// Subscribe registers fn to receive every revocation. fn must not block.
func (b *Bus) Subscribe(fn func(airlock.Revocation)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, fn)
}

// remoteSendTimeout bounds sending one revocation to the other replicas.
const remoteSendTimeout = 2 * time.Second

// Replicate shares b with the other replicas on t: from now on Publish
// also sends each revocation to them, and what they publish is delivered
// to b's subscribers. node names this replica, so that its own
// revocations coming back are ignored; failures to send are logged. It
// returns at once; receiving goes on until ctx ends, and the returned
// channel is closed when it has stopped.
func (b *Bus) Replicate(ctx context.Context, node string, t airlock.RevocationTransport, log *slog.Logger) <-chan struct{} {
	return b.replicate(ctx, node, t, log, nil)
}

func (b *Bus) replicate(ctx context.Context, node string, t airlock.RevocationTransport, log *slog.Logger, ready chan<- struct{}) <-chan struct{} {
	b.setRemote(node, func(p []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), remoteSendTimeout)
		defer cancel()
		if err := t.SendRevocation(ctx, p); err != nil {
			log.Error("publish revocation to other replicas", "err", err)
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.ReceiveRevocations(ctx, b.receive, ready)
	}()
	return done
}

// setRemote makes Publish also send each revocation, encoded, to send
// (which must not block for long); node names this replica so its own
// revocations coming back through receive are ignored.
func (b *Bus) setRemote(node string, send func(payload []byte)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.node, b.remote = node, send
}

// Publish delivers r to every local subscriber synchronously, then to the
// other replicas when the bus is replicated — except a revocation of this
// node's own sessions (Node set), which is this node's alone.
func (b *Bus) Publish(r airlock.Revocation) {
	b.deliver(r)
	if r.Node != "" {
		return
	}
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

// receive delivers a revocation published by another replica. Payloads
// that do not decode, name nothing, carry an end reason outside the closed
// set, or that this replica published, are ignored.
func (b *Bus) receive(payload []byte) {
	var r airlock.Revocation
	if err := json.Unmarshal(payload, &r); err != nil {
		return
	}
	b.mu.RLock()
	self := b.node != "" && r.Origin == b.node
	b.mu.RUnlock()
	if self || r.Empty() || !r.Reason.Valid() {
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
