package airlock

// Revocation says which live gateway sessions must end, why, and on whose
// word. Exactly one of GrantID, UserID and SessionID names what ended: every
// session under the grant, every session of the user, or the one session.
// The access service publishes revocations on a RevocationBus; gateways
// apply them through Apply.
type Revocation struct {
	GrantID   string `json:"grant_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
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
func (r Revocation) Empty() bool { return r.GrantID == "" && r.UserID == "" && r.SessionID == "" }
