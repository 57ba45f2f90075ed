package postgres

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestClassifyOutages pins the outage table: what the API reports as 503
// with a message that says what to do, and what stays the caller's error.
func TestClassifyOutages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, refused := pgconn.Connect(ctx, "postgres://u@"+addr+"/db?sslmode=disable&connect_timeout=2")
	if refused == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	for _, c := range []struct {
		name string
		err  error
		want string // "" (not an outage), MsgStoreUnavailable or MsgStoreFull
	}{
		{"full/53100", &pgconn.PgError{Code: "53100"}, airlock.MsgStoreFull},
		{"unavailable/admin-shutdown", fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P01"}), airlock.MsgStoreUnavailable},
		{"unavailable/cannot-connect-now", &pgconn.PgError{Code: "57P03"}, airlock.MsgStoreUnavailable},
		{"unavailable/too-many-connections", &pgconn.PgError{Code: "53300"}, airlock.MsgStoreUnavailable},
		{"unavailable/standby", &pgconn.PgError{Code: "25006"}, airlock.MsgStoreUnavailable},
		{"unavailable/connection-refused", refused, airlock.MsgStoreUnavailable},
		{"unavailable/conn-closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), airlock.MsgStoreUnavailable},
		{"caller/unique-violation", &pgconn.PgError{Code: "23505"}, ""},
		{"caller/cancelled", context.Canceled, ""},
		{"caller/deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err)
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("classify = %v, want not an outage", got)
			case c.want != "" && (got == nil || got.Message != c.want || got.Code != airlock.EUNAVAILABLE):
				t.Fatalf("classify = %v, want %q", got, c.want)
			}
			if c.want != "" && (airlock.ErrorCode(c.err) != airlock.EUNAVAILABLE || airlock.ErrorMessage(c.err) != c.want) {
				t.Fatalf("ErrorCode/Message = %s/%q", airlock.ErrorCode(c.err), airlock.ErrorMessage(c.err))
			}
		})
	}
}
