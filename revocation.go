package airlock

import "context"

// Revocation says which live gateway sessions must end, why, and on whose
// word. One of GrantID, UserID and SessionID names what ended: every
// session under the grant, every session of the user, or the one session
// (when several are set, the narrowest counts; see Apply).
// The access service publishes revocations on a RevocationBus; gateways
// apply them through Apply.
type Revocation struct {
	GrantID   string `json:"grant_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	// Node, set only on a replica's own bus (never sent to others),
	// closes every session this node holds: it could not reach the store
	// for long enough that the others may end them as node_lost.
	Node string `json:"-"`
	// Reason is the end reason the closed sessions record; gateways
	// derive the message the user sees from it (EndReason.Text).
	Reason EndReason `json:"reason,omitempty"`
	// By names who caused it: an actor's name, or "system"
	// (SystemActor.Name) for expiry, sweeps and policy changes.
	By string `json:"by,omitempty"`
	// Detail says more for logs ("revoked by bob", "policy change
	// removed eligibility: …"); it is never a session's end reason.
	Detail string `json:"detail,omitempty"`
	// Origin names the replica that published it (set by the bus).
	Origin string `json:"origin,omitempty"`
}

// Empty reports whether r names nothing to end.
func (r Revocation) Empty() bool {
	return r.GrantID == "" && r.UserID == "" && r.SessionID == "" && r.Node == ""
}

// RevocationBus carries revocations from the services that decide them
// (the access service) to the gateways that enforce them. The access
// package's Bus is the implementation: in-process, and shared by the
// replicas on one store when that store is a RevocationTransport.
type RevocationBus interface {
	// Publish delivers r to every subscriber on this node before it
	// returns, then sends it to the other replicas when the bus is shared
	// (never a revocation with Node set: that one is this node's alone).
	Publish(r Revocation)
	// Subscribe registers fn to receive every revocation, published on
	// this node or on another replica. fn must not block.
	Subscribe(fn func(Revocation))
}

// RevocationTransport is the capability of a store shared by several
// replicas to carry encoded revocations between them (the PostgreSQL
// store: LISTEN/NOTIFY). cmd/airlock finds it by asserting the store to
// this interface, never to a concrete store. Delivery is best effort:
// what is sent while a replica is not receiving is lost, which is why
// gateways also enforce every session's ends_at locally.
type RevocationTransport interface {
	// SendRevocation sends payload to every replica receiving, this one
	// included.
	SendRevocation(ctx context.Context, payload []byte) error
	// ReceiveRevocations calls fn for every payload any replica sends,
	// until ctx ends; then it returns nil. It recovers from a lost
	// connection by itself. ready, when not nil, is closed once receiving
	// is in effect.
	ReceiveRevocations(ctx context.Context, fn func(payload []byte), ready chan<- struct{}) error
}
