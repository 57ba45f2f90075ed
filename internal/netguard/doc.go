// Package netguard keeps a server's listeners serving when clients misbehave
// or the process runs short of file descriptors, and bounds the connections
// that have not authenticated yet. It is the one owner of Airlock's accept
// loop policy: the PostgreSQL and SSH gateways and the HTTP server use it.
//
// # Accept
//
// Listener wraps a net.Listener. Its Accept never returns an error other
// than one for a closed listener (net.ErrClosed): on any other error —
// EMFILE and ENFILE when the process or the system is out of file
// descriptors, ECONNABORTED, ENOBUFS, … — it waits and tries again, like
// net/http's Server.Serve, starting at MinBackoff and doubling up to
// MaxBackoff, and logs at most one line per second while it backs off
// (with how many errors it saw since the last line) and one line when
// accepting works again. A listener therefore never stops on a temporary
// error, and a Serve loop built on it returns only at shutdown.
//
// # Pending connections
//
// Pending counts the connections of one listener that are still in their
// handshake (TLS, startup, authentication): at most Limits.MaxPending in
// all and Limits.MaxPendingPerSource from one source (one IPv4 address, or
// one IPv6 /64, since a single IPv6 host usually holds a whole /64). A
// connection over either bound is refused at once: the caller closes it
// (the PostgreSQL gateway first writes a FATAL 53300 "too many pending
// connections"). The slot is released as soon as the connection has
// authenticated — from then on it is a session, bounded by its grant and
// the grant's MaxConcurrent — or when it ends. The handshake itself is
// bounded in time by each gateway (DefaultHandshakeTimeout unless
// configured), so a slot held by an idle or slow client comes back after
// at most that long.
//
// # Refusals are counted, not audited
//
// A refused connection has no actor and no resource yet: it is not an audit
// event (a flood would otherwise fill the audit log, and every refusal
// would cost a durable write). Pending counts refusals by reason (Stats)
// and logs one warning line at most every RefusalLogInterval per listener,
// with the counts since the previous line and the last source refused.
// Refusals after authentication (max_concurrent, expired grant, …) remain
// the gateways' audit events.
//
// # File descriptors
//
// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit on Unix.
// The Go runtime already does this at start-up since Go 1.19 (package
// syscall's init); the server calls RaiseFileLimit anyway so the behaviour
// is pinned by our own code and its test, and logs the limit in force.
// MaxPendingFor derives per-listener bounds that leave most descriptors
// for sessions, the store and the HTTP server.
//
// All types are safe for concurrent use.
package netguard
