// Package dbgw is the shared core of the database gateways (pgproxy, and
// the MySQL gateway): what every database session needs whatever its wire
// protocol. Today it holds the audit receipts queue (Receipts: events
// submitted in order from both relay directions, confirmed in order by
// one watcher, the first failure ending the session — audit first, fail
// closed — and the wait strict audit does before output reaches the
// client) and the FIFO helper both use. Session registration is
// internal/gwsession's.
package dbgw
