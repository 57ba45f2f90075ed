// Package postgres implements airlock.Store on PostgreSQL with pgx
// (pgxpool): the store for running several Airlock replicas.
//
// Every invariant that must hold across processes is enforced in the
// database, not in Go: single-use connect tokens, TOTP counters, request
// transitions and grant ends are conditional UPDATEs; approvals run in a
// transaction; the audit chain is appended under a row lock on the
// one-row audit_head table (SELECT … FOR UPDATE), so concurrent appenders
// on any number of replicas keep one contiguous chain. Events are written
// with COPY. Migrations are embedded, numbered SQL files applied at Open in
// one transaction under pg_advisory_xact_lock, so replicas starting at once
// are safe.
//
// DB is also an airlock.RevocationTransport: replicas share revocations
// over LISTEN/NOTIFY on one channel (SendRevocation, ReceiveRevocations).
//
// The driver-free half of the store (statements and their arguments, row
// scanning, column encodings, error mapping), shared with the SQLite store,
// is internal/sqlstore; this package runs it on its driver and keeps what
// the engine does differently.
package postgres
