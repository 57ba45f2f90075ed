package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func TestFilterNumbersPlaceholders(t *testing.T) {
	var f Filter
	if got := f.Where(); got != "" {
		t.Fatalf("empty filter = %q", got)
	}
	f.Add("a = ?", 1)
	f.Add("flag")
	f.Add("b <= ? AND c > ?", 2, 3)
	if got, want := f.Where(), " WHERE a = $1 AND flag AND b <= $2 AND c > $3"; got != want {
		t.Fatalf("Where = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(f.Args, []any{1, 2, 3}) {
		t.Fatalf("Args = %v", f.Args)
	}
}

func TestTimeScansBothEngines(t *testing.T) {
	want := time.Date(2026, 12, 2, 10, 0, 0, 123000, time.UTC)
	for _, v := range []any{want.UnixMicro(), want.In(time.FixedZone("x", 3600))} {
		var got time.Time
		if err := Time(&got).Scan(v); err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("Scan(%T) = %v, %v; want %v in UTC", v, got, err, want)
		}
	}
	got := time.Now()
	if err := Time(&got).Scan(nil); err != nil || !got.IsZero() {
		t.Fatalf("Scan(nil) = %v, %v; want the zero time", got, err)
	}
	if err := Time(&got).Scan("x"); err == nil {
		t.Fatal("Scan(string) did not fail")
	}
}

func TestJSONEmptyIsNil(t *testing.T) {
	var l []string
	if err := JSON(&l).Scan("[]"); err != nil || l != nil {
		t.Fatalf("[] = %#v, %v; want nil", l, err)
	}
	var m map[string]string
	if err := JSON(&m).Scan([]byte(`{"a":"b"}`)); err != nil || m["a"] != "b" {
		t.Fatalf("map = %v, %v", m, err)
	}
	if JSONList(nil) != "[]" || JSONMap[string](nil) != "{}" {
		t.Fatal("empty collections are not stored as [] and {}")
	}
}

func TestErrorMapping(t *testing.T) {
	cause := errors.New("driver error")
	for v, code := range map[Violation]string{Unique: airlock.ECONFLICT, ForeignKey: airlock.ENOTFOUND, InvalidText: airlock.EINVALID} {
		if err := WriteErr(cause, v, "conflict", "missing"); airlock.ErrorCode(err) != code || !errors.Is(err, cause) {
			t.Errorf("WriteErr(%d) = %v, want %s wrapping the cause", v, err, code)
		}
	}
	if err := WriteErr(cause, NoViolation, "", ""); err != cause {
		t.Errorf("WriteErr(no violation) = %v, want the cause itself", err)
	}
	if WriteErr(nil, Unique, "", "") != nil {
		t.Error("WriteErr(nil) is not nil")
	}
	// pgx.ErrNoRows wraps sql.ErrNoRows; so does this.
	noRows := fmt.Errorf("no rows in result set: %w", sql.ErrNoRows)
	if err := NotFound(noRows, "thing %q not found", "x"); airlock.ErrorCode(err) != airlock.ENOTFOUND {
		t.Errorf("NotFound(no rows) = %v", err)
	}
	if err := NotFound(cause, "x"); err != cause {
		t.Errorf("NotFound(other) = %v", err)
	}
	if err := Affected(0, nil, "row %d", 1); airlock.ErrorCode(err) != airlock.ENOTFOUND {
		t.Errorf("Affected(0) = %v", err)
	}
	if err := Affected(1, nil, ""); err != nil {
		t.Errorf("Affected(1) = %v", err)
	}
}
