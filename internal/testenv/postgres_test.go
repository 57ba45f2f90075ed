package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { RunMain(m) }

func TestPostgres(t *testing.T) {
	pg := Postgres(t)
	if pg.Host != "127.0.0.1" || pg.Port <= 0 {
		t.Fatalf("bad address %s:%d", pg.Host, pg.Port)
	}
	if _, err := os.Stat(filepath.Join(pg.Dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("cluster dir: %v", err)
	}
	if again := Postgres(t); again != pg {
		t.Fatal("Postgres started a second cluster; want one per test binary")
	}

	db := pg.NewDatabase(t)
	pg.Exec(t, db, "CREATE TABLE x (v int); INSERT INTO x VALUES (41), (1)")

	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sum int
	if err := conn.QueryRow(ctx, "SELECT sum(v) FROM x").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 42 {
		t.Fatalf("sum = %d, want 42", sum)
	}
	var enc, maxConn, listen string
	conn.QueryRow(ctx, "SHOW password_encryption").Scan(&enc)
	conn.QueryRow(ctx, "SHOW max_connections").Scan(&maxConn)
	conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen)
	if enc != "scram-sha-256" || maxConn != "300" || listen != "127.0.0.1" {
		t.Fatalf("settings: password_encryption=%q max_connections=%q listen_addresses=%q", enc, maxConn, listen)
	}
}

// TestPostgresSCRAM pins that non-superuser roles authenticate with real
// SCRAM over TCP: the right password connects, a wrong one is refused.
func TestPostgresSCRAM(t *testing.T) {
	pg := Postgres(t)
	db := pg.NewDatabase(t)
	role := "r_" + strings.TrimPrefix(db, "t_")
	pg.Exec(t, db, "CREATE ROLE "+role+" LOGIN PASSWORD 'right-pw'")
	t.Cleanup(func() { pg.Exec(t, "postgres", "DROP ROLE IF EXISTS "+role) })

	ctx := t.Context()
	url := "postgres://" + role + ":%s@127.0.0.1:" + itoa(pg.Port) + "/" + db + "?sslmode=disable"
	conn, err := pgx.Connect(ctx, strings.Replace(url, "%s", "right-pw", 1))
	if err != nil {
		t.Fatalf("connect with right password: %v", err)
	}
	conn.Close(ctx)
	if c, err := pgx.Connect(ctx, strings.Replace(url, "%s", "wrong-pw", 1)); err == nil {
		c.Close(ctx)
		t.Fatal("connect with wrong password succeeded")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: got %v, want password authentication failed", err)
	}
}

// TestNewDatabaseDropped pins that a database created by NewDatabase is
// gone after its test's cleanup ran, even with an open connection.
func TestNewDatabaseDropped(t *testing.T) {
	pg := Postgres(t)
	var name string
	t.Run("create", func(t *testing.T) {
		name = pg.NewDatabase(t)
		conn, err := pgx.Connect(t.Context(), pg.DSN(name))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn // left open on purpose: DROP … WITH (FORCE) must still work
	})
	conn, err := pgx.Connect(t.Context(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after cleanup", name)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
