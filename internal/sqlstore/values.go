package sqlstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dialect is what differs between the engines in the shared statements.
type Dialect struct {
	// Time converts t to its bound form (SQLite: unix microseconds;
	// PostgreSQL: a timestamptz); a zero time is NULL.
	Time func(t time.Time) any
	// Seq is the column that orders a table's rows by insertion, the
	// tie-break of every newest-first listing.
	Seq string
}

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows are.
type Scanner interface{ Scan(dest ...any) error }

// Rows is a result set being read (*sql.Rows, pgx.Rows). The caller
// closes it.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect scans every row of rows with scan.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Time returns a scan target for a stored time: NULL is the zero time, an
// integer is unix microseconds (SQLite), a time is itself (PostgreSQL).
// Times come back in UTC.
func Time(t *time.Time) timeCol { return timeCol{t} }

type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.UnixMicro(x).UTC()
	case time.Time:
		*c.t = x.UTC()
	default:
		return fmt.Errorf("time column: unexpected %T", v)
	}
	return nil
}

// JSON returns a scan target decoding a JSON text column into dst; empty
// collections decode to nil.
func JSON(dst any) jsonCol { return jsonCol{dst} }

type jsonCol struct{ dst any }

func (j jsonCol) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return fmt.Errorf("json column: unexpected %T", v)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, j.dst); err != nil {
		return err
	}
	switch d := j.dst.(type) {
	case *[]string:
		if len(*d) == 0 {
			*d = nil
		}
	case *map[string]string:
		if len(*d) == 0 {
			*d = nil
		}
	case *map[string][]byte:
		if len(*d) == 0 {
			*d = nil
		}
	}
	return nil
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain strings/maps/slices are passed
	}
	return string(b)
}

// JSONList is the stored form of a list: a JSON array, [] when empty.
func JSONList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	return js(v)
}

// JSONMap is the stored form of a map (labels, credentials): a JSON
// object, {} when empty.
func JSONMap[V any](m map[string]V) string {
	if len(m) == 0 {
		return "{}"
	}
	return js(m)
}

// Blob returns b as stored: NULL for nil.
func Blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// Limit is the LIMIT clause for n rows; none for n <= 0.
func Limit(n int) string {
	if n > 0 {
		return " LIMIT " + strconv.Itoa(n)
	}
	return ""
}

// Filter builds a WHERE clause and its arguments.
type Filter struct {
	conds []string
	Args  []any
}

// Add adds cond, whose ? marks are bound, in order, to vs.
func (f *Filter) Add(cond string, vs ...any) {
	for _, v := range vs {
		f.Args = append(f.Args, v)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(f.Args)), 1)
	}
	f.conds = append(f.conds, cond)
}

// Where is the clause: empty without conditions.
func (f *Filter) Where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// One scans the one row s with scan; no row is ENOTFOUND with the message.
func One[T any](s Scanner, scan func(Scanner) (T, error), format string, args ...any) (T, error) {
	v, err := scan(s)
	if err != nil {
		var zero T
		return zero, NotFound(err, format, args...)
	}
	return v, nil
}
