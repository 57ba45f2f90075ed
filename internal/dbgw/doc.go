// Package dbgw is the shared core of the database gateways (pgproxy and
// mysqlproxy): what every database session needs whatever its wire
// protocol. It holds the audit receipts queue (Receipts: events submitted
// in order from both relay directions, confirmed in order by one
// watcher, the first failure ending the session — audit first, fail
// closed — and the wait strict audit does before output reaches the
// client), the session lifecycle (Life: ended once for one reason by
// whoever comes first, the grant's deadline and the idle timeout as its
// timers; Ended and RecordEnd for the session.ended event and row) and
// the FIFO helper both use. The Prometheus set every engine exports is
// internal/dbmetrics (apart, so that this package stays a leaf). Session registration, revocation by
// grant, user or session, and the per-grant concurrency limit are
// internal/gwsession's.
package dbgw
