package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaVersion is the newest schema version this package knows: the
// number of the last embedded migration.
const SchemaVersion = 9

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations of replicas starting at once ("airlock" in ASCII).
const migrationLock = 0x6169726c6f636b

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an airlock.Store on a PostgreSQL database. It is safe for
// concurrent use, and several DBs (in several processes) may share one
// database.
type DB struct {
	pool *pgxpool.Pool
	edge sqlstore.Edge // the audit tree's partial tiles as the last append left them
}

var _ airlock.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), checks it is reachable and migrates its schema. An unreachable
// server gives an EUNAVAILABLE error naming host:port; a schema newer than
// SchemaVersion gives EINVALID.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: do not wrap it.
		return nil, airlock.Errorf(airlock.EINVALID, "invalid PostgreSQL DSN (want postgres://user@host:port/db?…)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		addr := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
		return nil, &airlock.Error{Code: airlock.EUNAVAILABLE,
			Message: fmt.Sprintf("cannot reach PostgreSQL at %s (database %q, user %q); check that the server is running and reachable and that the DSN is right",
				addr, cfg.ConnConfig.Database, cfg.ConnConfig.User),
			Err: err}
	}
	db := &DB{pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close releases the store's connections.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping reports an error when the store cannot serve reads and writes.
func (db *DB) Ping(ctx context.Context) error {
	var ro string
	if err := db.pool.QueryRow(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
		return outage(err, airlock.MsgStoreUnavailable)
	}
	if ro == "on" {
		return airlock.Errorf(airlock.EUNAVAILABLE, "store is read-only (connected to a standby?)")
	}
	return nil
}

// SchemaVersion returns the schema version recorded in the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v *int64
	if err := db.pool.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}

// migrate applies the embedded migrations the database lacks, in one
// transaction holding an advisory lock.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := sqlstore.Migrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cur > SchemaVersion {
		return airlock.Errorf(airlock.EINVALID, "store schema version %d is newer than this airlock (%d); upgrade airlock", cur, SchemaVersion)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if step := goMigrations[m.Version]; step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Value helpers.

// dialect is PostgreSQL's side of the shared statements (internal/sqlstore).
var dialect = sqlstore.Dialect{Time: tm, Seq: "pos"}

// tm converts t to the stored form: microsecond precision, NULL for zero.
func tm(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

type execer interface {
	Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error)
}

type queryer interface {
	QueryRow(ctx context.Context, query string, args ...any) pgx.Row
	Query(ctx context.Context, query string, args ...any) (pgx.Rows, error)
}

// exec runs s on ex.
func exec(ctx context.Context, ex execer, s sqlstore.Stmt) (pgconn.CommandTag, error) {
	return ex.Exec(ctx, s.SQL, s.Args...)
}

// row runs s, which returns one row, on qr.
func row(ctx context.Context, qr queryer, s sqlstore.Stmt) pgx.Row {
	return qr.QueryRow(ctx, s.SQL, s.Args...)
}

// rowFunc runs the shared one-row queries on qr.
func rowFunc(qr queryer) sqlstore.RowFunc {
	return func(ctx context.Context, query string, args ...any) sqlstore.Scanner {
		return qr.QueryRow(ctx, query, args...)
	}
}

// list runs s on qr and scans every row.
func list[T any](ctx context.Context, qr queryer, s sqlstore.Stmt, scan func(sqlstore.Scanner) (T, error)) ([]T, error) {
	rows, err := qr.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, scan)
}

func init() { airlock.RegisterOutage(classify) }

// classify is the store's outage table (see airlock.RegisterOutage):
// SQLSTATE 53100 (disk full) is StoreFull; the rest of class 53
// (insufficient resources), class 08 (connection exception), 57P01–57P03
// (administrator or crash shutdown, cannot connect now), 25006 (read-only
// transaction: a standby), 58030 (I/O error), a failed connect, a lost or
// closed connection are StoreUnavailable. A cancelled
// or timed-out context is the caller's and is not an outage.
func classify(err error) *airlock.Error {
	if err == nil {
		return nil
	}
	if code := pgCode(err); code != "" {
		switch {
		case code == "53100":
			return airlock.StoreFull(err)
		case strings.HasPrefix(code, "53"), strings.HasPrefix(code, "08"),
			code == "57P01", code == "57P02", code == "57P03", code == "25006", code == "58030":
			return airlock.StoreUnavailable(err)
		}
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return nil
	}
	var ce *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, pgconn.ErrConnClosed),
		errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return airlock.StoreUnavailable(err)
	}
	return nil
}

// outage returns err as classify's EUNAVAILABLE error when it is an
// outage, and otherwise wrapped as EUNAVAILABLE with message.
func outage(err error, message string) error { return sqlstore.Outage(classify, err, message) }

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// violation reads the constraint a failed write broke (or the invalid
// text it carried: NUL bytes, bad UTF-8).
func violation(err error) sqlstore.Violation {
	switch pgCode(err) {
	case "23505":
		return sqlstore.Unique
	case "23503":
		return sqlstore.ForeignKey
	case "22021", "22P05":
		return sqlstore.InvalidText
	}
	return sqlstore.NoViolation
}

// writeErr maps an insert/update error: unique violation → ECONFLICT with
// conflict, foreign-key violation → ENOTFOUND with missing, invalid text
// (NUL bytes, bad UTF-8) → EINVALID.
func writeErr(err error, conflict, missing string) error {
	return sqlstore.WriteErr(err, violation(err), conflict, missing)
}

// affected returns ENOTFOUND (with the message) when tag changed no row.
func affected(tag pgconn.CommandTag, err error, format string, args ...any) error {
	return sqlstore.Affected(tag.RowsAffected(), err, format, args...)
}

// queryFunc runs the shared queries on qr.
func queryFunc(qr queryer) sqlstore.QueryFunc {
	return func(ctx context.Context, query string, args ...any) (sqlstore.Rows, func(), error) {
		rows, err := qr.Query(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	}
}
