// Package sqlite implements airlock.Store on an embedded, pure-Go SQLite
// database (modernc.org/sqlite, no cgo): the one-node default.
//
// The database runs in WAL mode with synchronous=FULL and foreign keys on.
// All writes go through one connection (a *sql.DB with one open
// connection, BEGIN IMMEDIATE), so concurrent writers in the process queue
// instead of failing with SQLITE_BUSY; reads use a separate pool of
// read-only connections. The schema is migrated at Open from numbered SQL
// files embedded in the binary; a database written by a newer Airlock is
// refused. Only one process should open a store file at a time; a second
// one waits on busy_timeout rather than corrupting anything.
//
// Times are stored as INTEGER unix microseconds (NULL is the zero time) and
// returned in UTC; slices and maps are JSON text.
//
// The driver-free half of the store (statements and their arguments, row
// scanning, column encodings, error mapping), shared with the PostgreSQL store,
// is internal/sqlstore; this package runs it on its driver and keeps what
// the engine does differently.
package sqlite
