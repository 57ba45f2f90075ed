package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/sqlstore"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SchemaVersion is the newest schema version this package knows: the
// number of the last embedded migration.
const SchemaVersion = 9

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an airlock.Store on one SQLite database file. It is safe for
// concurrent use.
type DB struct {
	path string
	w    *sql.DB // the single writer connection
	r    *sql.DB // read-only pool

	insertBlock *sql.Stmt     // on w
	insertKey   *sql.Stmt     // on w
	readHead    *sql.Stmt     // on w
	moveHead    *sql.Stmt     // on w
	insertRun   *sql.Stmt     // on w
	readRuns    *sql.Stmt     // on w
	deleteTile  *sql.Stmt     // on w
	readTile    *sql.Stmt     // on r: MerkleTile (every checkpoint's root and every proof)
	edge        sqlstore.Edge // the audit tree's partial tiles as the last append left them

	// The WAL is checkpointed by a background goroutine on its own
	// connection (the writer's automatic checkpoint is off), so that
	// copying pages back into the database file never delays a commit.
	ck     *sql.DB
	ckStop chan struct{}
	ckDone chan struct{}
	ckOnce sync.Once
}

var _ airlock.Store = (*DB)(nil)

// Open opens (creating if needed) the SQLite store at path and migrates its
// schema. A file that is not an SQLite database, or an SQLite database
// that is not an Airlock store, is refused with an EINVALID error naming
// the path; so is a store whose schema is newer than SchemaVersion.
// path ":memory:" opens a private in-memory store (one connection).
func Open(ctx context.Context, path string) (*DB, error) {
	db := &DB{path: path}
	const common = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=synchronous(FULL)"
	if path == ":memory:" {
		w, err := sql.Open("sqlite", "file::memory:?"+common+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		db.w, db.r = w, w
	} else {
		// The store holds sealed credentials and hashed secrets: a new
		// file is created 0600, and SQLite gives its -wal and -shm files
		// the database file's permissions.
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create sqlite store %s: %w", path, err)
		}
		name := "file:" + escapePath(path) + "?"
		w, err := sql.Open("sqlite", name+common+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)")
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxIdleTime(0)
		w.SetConnMaxLifetime(0)
		db.w = w
		// Make sure the file is a database (and in WAL mode) before the
		// read pool touches it.
		if err := w.PingContext(ctx); err != nil {
			w.Close()
			return nil, notAStore(path, err)
		}
		// Refuse foreign files before changing anything in them (even
		// the journal mode).
		if err := db.checkIsStore(ctx); err != nil {
			w.Close()
			return nil, err
		}
		var mode string
		if err := w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
			w.Close()
			return nil, fmt.Errorf("open sqlite store %s: cannot switch to WAL mode (got %q): %v", path, mode, err)
		}
		r, err := sql.Open("sqlite", name+common+"&_pragma=query_only(1)")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		r.SetMaxOpenConns(8)
		r.SetMaxIdleConns(8)
		db.r = r
		ck, err := sql.Open("sqlite", name+common)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		ck.SetMaxOpenConns(1)
		ck.SetMaxIdleConns(1)
		ck.SetConnMaxIdleTime(0)
		ck.SetConnMaxLifetime(0)
		db.ck = ck
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&db.insertBlock, insertBlockSQL}, {&db.insertKey, insertKeySQL},
		{&db.readHead, readHeadSQL}, {&db.moveHead, moveHeadSQL},
		{&db.insertRun, q(sqlstore.InsertRunSQL)}, {&db.readRuns, q(sqlstore.ReadTileSQL)}, {&db.deleteTile, q(sqlstore.DeleteTileSQL)},
	} {
		var err error
		if *p.st, err = db.w.PrepareContext(ctx, p.q); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
	}
	var err error
	if db.readTile, err = db.r.PrepareContext(ctx, q(sqlstore.ReadTileSQL)); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if db.ck != nil {
		db.ckStop, db.ckDone = make(chan struct{}), make(chan struct{})
		go db.checkpointer()
	}
	return db, nil
}

// escapePath escapes the characters that would end the path part of an
// SQLite URI filename.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

func notAStore(path string, err error) error {
	return &airlock.Error{Code: airlock.EINVALID, Message: fmt.Sprintf("%s is not an Airlock SQLite store: %v", path, err)}
}

// Close releases the store's connections.
func (db *DB) Close() error {
	if db.ckStop != nil {
		db.ckOnce.Do(func() { close(db.ckStop) })
		<-db.ckDone
	}
	for _, st := range []*sql.Stmt{db.insertBlock, db.insertKey, db.readHead, db.moveHead, db.insertRun, db.readRuns, db.deleteTile, db.readTile} {
		if st != nil {
			st.Close()
		}
	}
	if db.ck != nil {
		db.ck.Close()
	}
	err := db.w.Close()
	if db.r != db.w {
		if rerr := db.r.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

// checkpointInterval is how often, at most, the checkpointer copies
// committed WAL pages into the database file.
const checkpointInterval = 200 * time.Millisecond

// checkpointer runs a PASSIVE WAL checkpoint every checkpointInterval: it
// never waits for or blocks the writer or readers, and costs next to
// nothing when there is nothing new to copy.
func (db *DB) checkpointer() {
	defer close(db.ckDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-db.ckStop:
			return
		case <-t.C:
			db.checkpoint()
		}
	}
}

// checkpoint runs one PASSIVE checkpoint and returns the WAL's frame count
// and how many of them are now in the database file.
func (db *DB) checkpoint() (frames, done int, err error) {
	var busy int
	err = db.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done)
	return frames, done, err
}

// Ping reports an error when the store cannot serve reads and writes.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return outage(err, airlock.MsgStoreUnavailable)
	}
	var n int
	if err := db.w.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		return outage(err, airlock.MsgStoreUnavailable)
	}
	return nil
}

// SchemaVersion returns the schema version recorded in the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.w.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// checkIsStore refuses a database that has tables but no schema_migrations
// table: some other program's SQLite file.
func (db *DB) checkIsStore(ctx context.Context) error {
	var hasMigrations, tables int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'schema_migrations'), count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&hasMigrations, &tables); err != nil {
		return notAStore(db.path, err)
	}
	if hasMigrations == 0 && tables > 0 {
		return notAStore(db.path, errors.New("it holds other tables and no schema_migrations"))
	}
	return nil
}

// migrate applies the embedded migrations the database lacks, all in one
// transaction.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := sqlstore.Migrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return notAStore(db.path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&cur); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if int(cur.Int64) > SchemaVersion {
		return airlock.Errorf(airlock.EINVALID, "store schema version %d is newer than this airlock (%d); upgrade airlock", cur.Int64, SchemaVersion)
	}
	for _, m := range ms {
		if m.Version <= int(cur.Int64) {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if step := goMigrations[m.Version]; step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", m.Version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// q rewrites PostgreSQL-style $N placeholders into SQLite's ?N.
func q(s string) string { return strings.ReplaceAll(s, "$", "?") }

// Value helpers.

// dialect is SQLite's side of the shared statements (internal/sqlstore).
var dialect = sqlstore.Dialect{Time: tm, Seq: "rowid"}

// tm converts t to the stored form: unix microseconds, NULL for zero.
func tm(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// exec runs s on ex.
func exec(ctx context.Context, ex execer, s sqlstore.Stmt) (sql.Result, error) {
	return ex.ExecContext(ctx, q(s.SQL), s.Args...)
}

// row runs s, which returns one row, on qr.
func row(ctx context.Context, qr queryer, s sqlstore.Stmt) *sql.Row {
	return qr.QueryRowContext(ctx, q(s.SQL), s.Args...)
}

// rowFunc runs the shared one-row queries on qr.
func rowFunc(qr queryer) sqlstore.RowFunc {
	return func(ctx context.Context, query string, args ...any) sqlstore.Scanner {
		return qr.QueryRowContext(ctx, q(query), args...)
	}
}

// list runs s on qr and scans every row.
func list[T any](ctx context.Context, qr queryer, s sqlstore.Stmt, scan func(sqlstore.Scanner) (T, error)) ([]T, error) {
	rows, err := qr.QueryContext(ctx, q(s.SQL), s.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, scan)
}

func init() { airlock.RegisterOutage(classify) }

// classify is the store's outage table (see airlock.RegisterOutage): a
// full disk is StoreFull; an I/O error, a file that cannot be opened, a
// database made read-only underneath (a file system remounted read-only)
// and a lock that stayed busy past busy_timeout are StoreUnavailable.
func classify(err error) *airlock.Error {
	switch sqliteCode(err) & 0xff { // the primary result code
	case sqlite3.SQLITE_FULL:
		return airlock.StoreFull(err)
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return airlock.StoreUnavailable(err)
	}
	return nil
}

// outage returns err as classify's EUNAVAILABLE error when it is an
// outage, and otherwise wrapped as EUNAVAILABLE with message.
func outage(err error, message string) error { return sqlstore.Outage(classify, err, message) }

// sqliteCode returns the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// violation reads the constraint a failed write broke.
func violation(err error) sqlstore.Violation {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqlstore.Unique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sqlstore.ForeignKey
	}
	return sqlstore.NoViolation
}

// writeErr maps an insert/update error: unique violation → ECONFLICT with
// conflict, foreign-key violation → ENOTFOUND with missing.
func writeErr(err error, conflict, missing string) error {
	return sqlstore.WriteErr(err, violation(err), conflict, missing)
}

// affected returns ENOTFOUND (with the message) when res changed no row.
func affected(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	return sqlstore.Affected(n, err, format, args...)
}

// queryFunc runs the shared queries on qr.
func queryFunc(qr queryer) sqlstore.QueryFunc {
	return func(ctx context.Context, query string, args ...any) (sqlstore.Rows, func(), error) {
		rows, err := qr.QueryContext(ctx, q(query), args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}
}
