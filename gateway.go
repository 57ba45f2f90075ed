package airlock

import "context"

// Gateway is the contract every gateway (pgproxy, sshproxy, …) implements
// so that the server can end its sessions without knowing which gateway it
// is: cmd/airlock keeps one list of them and applies every Revocation to
// each (Revocation.Apply).
//
// Close methods end the matching live sessions on this gateway only (this
// node); each session records reason as its end reason and tells the user
// reason.Text(). They do not block on the sessions finishing, and are safe
// for concurrent use.
type Gateway interface {
	// CloseGrant closes the live sessions under the grant and returns how
	// many it closed.
	CloseGrant(grantID string, reason EndReason) int
	// CloseUser closes the live sessions of the user and returns how many
	// it closed.
	CloseUser(userID string, reason EndReason) int
	// CloseSession closes the one live session and reports whether this
	// gateway held it.
	CloseSession(id string, reason EndReason) bool
	// ActiveSessions returns a snapshot of the live sessions on this
	// gateway, each with its Node.
	ActiveSessions() []Session
	// Shutdown stops accepting connections, closes every live session with
	// EndServerShutdown and waits for them to end or ctx to be done.
	Shutdown(ctx context.Context) error
}

// Apply closes on g the sessions r names, with r.Reason, and returns how
// many it closed. A revocation naming several things is applied by the
// narrowest: SessionID, then GrantID, then UserID.
func (r Revocation) Apply(g Gateway) int {
	switch {
	case r.Node != "":
		n := 0
		for _, x := range g.ActiveSessions() {
			if g.CloseSession(x.ID, r.Reason) {
				n++
			}
		}
		return n
	case r.SessionID != "":
		if g.CloseSession(r.SessionID, r.Reason) {
			return 1
		}
		return 0
	case r.GrantID != "":
		return g.CloseGrant(r.GrantID, r.Reason)
	case r.UserID != "":
		return g.CloseUser(r.UserID, r.Reason)
	}
	return 0
}

// KubePathPrefix starts every path on the Kubernetes gateway:
// /k8s/RESOURCE/api/v1/… is the API of kubernetes resource RESOURCE, so a
// kubeconfig's server is https://GATEWAY/k8s/RESOURCE.
const KubePathPrefix = "/k8s/"
