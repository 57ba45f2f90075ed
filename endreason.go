package airlock

// EndReason says why a gateway session ended. It is what a session's
// EndReason and its session.ended event record, on every gateway. The set
// is closed: gateways use only the constants below, and docs/audit.md lists
// them once.
type EndReason string

// The reasons a session ends.
const (
	// EndClientClosed: the client closed its connection (or it broke)
	// without saying goodbye.
	EndClientClosed EndReason = "client_closed"
	// EndClientTerminated: the client ended the session in its protocol
	// (PostgreSQL Terminate, the SSH client closing its channels).
	EndClientTerminated EndReason = "client_terminated"
	// EndUpstreamClosed: the database or host closed the connection.
	EndUpstreamClosed EndReason = "upstream_closed"
	// EndGrantExpired: the grant's ends_at was reached.
	EndGrantExpired EndReason = "grant_expired"
	// EndGrantRevoked: someone revoked the grant, or a policy change
	// removed the eligibility it stood on.
	EndGrantRevoked EndReason = "grant_revoked"
	// EndUserDisabled: the user was disabled.
	EndUserDisabled EndReason = "user_disabled"
	// EndSessionKilled: someone killed this session (airlock sessions kill:
	// its own user, or an admin).
	EndSessionKilled EndReason = "session_killed"
	// EndIdleTimeout: nothing moved for the policy's idle timeout.
	EndIdleTimeout EndReason = "idle_timeout"
	// EndProtocolViolation: the client sent something malformed or too large.
	EndProtocolViolation EndReason = "protocol_violation"
	// EndUpstreamProtocolViolation: the upstream sent something malformed.
	EndUpstreamProtocolViolation EndReason = "upstream_protocol_violation"
	// EndAuditUnavailable: the audit pipeline or the session store failed,
	// so the session could not go on being recorded (fail closed).
	EndAuditUnavailable EndReason = "audit_unavailable"
	// EndServerShutdown: the server holding the session shut down.
	EndServerShutdown EndReason = "server_shutdown"
	// EndColumnDenied: a result carried a column the policy's column masks
	// deny (PostgreSQL gateway).
	EndColumnDenied EndReason = "column_denied"
	// EndNodeLost: the server holding the session stopped without ending it
	// (killed, crashed, lost); another node, or the same one at its next
	// start, ended the record.
	EndNodeLost EndReason = "node_lost"
)

// EndReasons lists every EndReason, in the order docs/audit.md gives them.
var EndReasons = []EndReason{
	EndClientClosed, EndClientTerminated, EndUpstreamClosed, EndGrantExpired, EndGrantRevoked,
	EndUserDisabled, EndSessionKilled, EndIdleTimeout, EndProtocolViolation,
	EndUpstreamProtocolViolation, EndAuditUnavailable, EndServerShutdown, EndColumnDenied, EndNodeLost,
}

// Valid reports whether r is one of the EndReason constants.
func (r EndReason) Valid() bool {
	for _, x := range EndReasons {
		if r == x {
			return true
		}
	}
	return false
}

// Text is r as a short phrase for people ("grant revoked"), used in the
// notices and FATAL messages gateways send to the user.
func (r EndReason) Text() string {
	switch r {
	case EndClientClosed:
		return "client disconnected"
	case EndClientTerminated:
		return "client ended the session"
	case EndUpstreamClosed:
		return "target closed the connection"
	case EndGrantExpired:
		return "grant expired"
	case EndGrantRevoked:
		return "grant revoked"
	case EndUserDisabled:
		return "user disabled"
	case EndSessionKilled:
		return "session killed by an administrator"
	case EndIdleTimeout:
		return "idle timeout"
	case EndProtocolViolation:
		return "protocol violation"
	case EndUpstreamProtocolViolation:
		return "target protocol violation"
	case EndAuditUnavailable:
		return "audit log unavailable"
	case EndServerShutdown:
		return "server shutting down"
	case EndColumnDenied:
		return "a result carried a denied column"
	case EndNodeLost:
		return "the server holding the session was lost"
	}
	return string(r)
}
