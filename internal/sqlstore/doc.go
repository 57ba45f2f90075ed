// Package sqlstore is the driver-free half of the two SQL stores (sqlite
// and postgres): the statements and their arguments, row scanning into the
// domain types, the filter and statement builders, the column encodings
// (times, JSON, blobs) and the error mapping both stores share. It imports
// the root package, the standard library and database/sql's interfaces
// only, never a driver: each store runs the statements on its own driver
// and maps its own error codes.
//
// Statements are written with PostgreSQL's $N placeholders; the SQLite
// store rewrites them to ?N. What really differs between the engines is
// a Dialect (how a time is bound, which column orders rows by insertion)
// or stays in the store.
package sqlstore
