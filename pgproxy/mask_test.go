package pgproxy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/policy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const card1, card2 = "4111111111111111", "5500000000000004"

// maskEnv is a gateway whose write-token target masks orders.card_number
// (and its partitioned twin), hashes users.email and denies salaries.
func maskEnv(t testing.TB, unknown string) *env {
	e := newEnv(t)
	e.pg.Exec(t, e.db, `
		CREATE TABLE orders (id int PRIMARY KEY, card_number text, amount int, note text);
		INSERT INTO orders VALUES (1, '`+card1+`', 10, 'first'), (2, '`+card2+`', 20, NULL);
		CREATE TABLE orders_p (id int, card_number text) PARTITION BY RANGE (id);
		CREATE TABLE orders_p1 PARTITION OF orders_p FOR VALUES FROM (0) TO (100);
		INSERT INTO orders_p VALUES (1, '`+card1+`');
		CREATE TABLE users (id int, email text);
		INSERT INTO users VALUES (1, 'ann@example.com'), (2, 'ann@example.com'), (3, NULL);
		CREATE TABLE salaries (id int, amount int);
		INSERT INTO salaries VALUES (1, 100000);
		CREATE TABLE ledger (id int, card_number text);
		CREATE TABLE ledger_2026 () INHERITS (ledger);
		INSERT INTO ledger_2026 VALUES (1, '`+card1+`');
		CREATE VIEW order_view AS SELECT id, card_number FROM orders;
		CREATE FUNCTION get_cards() RETURNS SETOF text LANGUAGE sql STABLE AS 'SELECT card_number FROM orders';
		CREATE FUNCTION keep(v text) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT v';
		GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO `+e.writer+`;
		GRANT CREATE ON SCHEMA public TO `+e.writer+`;`)
	e.target("write-token", func(tg *Target) {
		tg.Statements = &policy.Statements{OnUnknown: policy.StatementAllow, UnknownColumns: unknown, Columns: []policy.ColumnMask{
			{Pattern: "orders.card_number", Action: policy.ColumnMaskValue},
			{Pattern: "public.orders_p.card_number", Action: policy.ColumnMaskValue},
			{Pattern: "users.email", Action: policy.ColumnHash},
			{Pattern: "salaries.*", Action: policy.ColumnDeny},
			{Pattern: "ledger_2026.card_number", Action: policy.ColumnMaskValue},
		}}
	})
	return e
}

// psqlMany runs psql with one -c per statement (each its own simple Query).
func psqlMany(t *testing.T, e *env, token string, stmts ...string) (string, error) {
	args := []string{"-X", "-At", "-d", "host=127.0.0.1 port=" + itoa(e.port) + " user=alice dbname=prod-db sslmode=disable"}
	for _, s := range stmts {
		args = append(args, "-c", s)
	}
	cmd := exec.CommandContext(t.Context(), psqlPath(t), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// noCard fails when a card number is in s.
func noCard(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, card1) || strings.Contains(s, card2) || strings.Contains(s, "411111") {
		t.Errorf("%s: a card number reached the client: %q", what, s)
	}
}

// Through psql (the simple protocol): masked values, what is proved to
// be another column passes, what cannot be proved is masked, errors and
// notices keep no value, and statements that would copy a masked value
// out of reach are refused before they reach the server.
func TestMaskPsql(t *testing.T) {
	e := maskEnv(t, "")
	cases := []struct{ sql, want string }{
		{"SELECT id, card_number, amount, note FROM orders ORDER BY id", "1|****|10|first\n2|****|20|\n"},
		{"SELECT count(*) FROM items", "2\n"},
		{"SELECT id, name FROM items ORDER BY id", "1|one\n2|two\n"},
		{"SELECT 1 + 1", "2\n"},
		// Not proved to be a plain column, in a statement that reads orders.
		{"SELECT count(*) FROM orders", "****\n"},
		{"SELECT upper(card_number), length(card_number) FROM orders WHERE id = 1", "****|****\n"},
		{"SELECT row_to_json(o) FROM orders o WHERE id = 1", "****\n"},
		{"SELECT o FROM orders o WHERE id = 1", "****\n"},
		{"SELECT o.* FROM orders o WHERE id = 1", "1|****|10|first\n"},
		{"SELECT card_number::text || '' FROM orders WHERE id = 1", "****\n"},
		{"SELECT format('%s', card_number) FROM orders WHERE id = 1", "****\n"},
		{"SELECT string_agg(card_number, ',') FROM orders", "****\n"},
		{"SELECT (SELECT card_number FROM orders WHERE id = 1)", "****\n"},
		{"WITH c AS (SELECT card_number FROM orders WHERE id = 1) SELECT * FROM c", "****\n"},
		{`SELECT "card_number" FROM "orders" WHERE id = 1`, "****\n"},
		{"SELECT card_number FROM public.orders WHERE id = 1 UNION ALL SELECT 'x'", "****\n****\n"}, // a UNION's columns have no origin
		{"/* comment */ select CARD_NUMBER from ORDERS where id = 1", "****\n"},
		{"SELECT * FROM order_view WHERE id = 1", "****|****\n"},
		{"SELECT get_cards() LIMIT 1", "****\n"},
		{"SELECT * FROM get_cards() LIMIT 1", "****\n"},
		{"SELECT card_number FROM orders_p1", "****\n"},
		{"SELECT card_number FROM orders_p", "****\n"},
		// A parent's scan returns its children's rows.
		{"SELECT card_number FROM ledger", "****\n"},
		{"SELECT id, card_number FROM ledger_2026", "1|****\n"},
		{"SELECT id FROM items WHERE id BETWEEN 1 AND 1", "1\n"},
		{"SELECT id, card_number FROM items JOIN orders USING (id) WHERE id = 1", "1|****\n"},
		// Hash: equal values, equal pseudonyms; NULL stays NULL.
		{"SELECT count(DISTINCT email) FROM users", "****\n"},
	}
	for _, c := range cases {
		out, err := psqlMany(t, e, "write-token", c.sql)
		noCard(t, c.sql, out)
		if err != nil || out != c.want {
			t.Errorf("%s: %v\n%q, want %q", c.sql, err, out, c.want)
		}
	}
	out, err := psqlMany(t, e, "write-token", "SELECT email FROM users ORDER BY id")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err != nil || len(lines) != 3 || lines[0] != lines[1] || !strings.HasPrefix(lines[0], "h:") || len(lines[0]) != 34 || lines[2] != "" || strings.Contains(out, "ann@") {
		t.Errorf("hash: %v %q", err, out)
	}

	// Errors and notices of a statement that touches masked data keep
	// their SQLSTATE and lose their text.
	out, err = psqlMany(t, e, "write-token", "SELECT card_number::int FROM orders")
	noCard(t, "cast error", out)
	if err == nil || !strings.Contains(out, "message text is withheld") {
		t.Errorf("cast error: %v %q", err, out)
	}
	out, _ = psqlMany(t, e, "write-token", "SELECT card_number::int FROM items")
	if !strings.Contains(out, "does not exist") {
		t.Errorf("an error of a statement that touches nothing masked keeps its text: %q", out)
	}

	// Refused: each would copy a masked value past the mask, or run code
	// the gateway does not see.
	for _, sql := range []string{
		"CREATE TABLE t2 AS SELECT * FROM orders",
		"SELECT card_number INTO t3 FROM orders",
		"INSERT INTO items SELECT id + 10, card_number FROM orders",
		"UPDATE orders SET note = card_number",
		"CREATE VIEW v2 AS SELECT card_number FROM orders",
		"COPY orders TO STDOUT",
		"COPY (SELECT card_number FROM orders) TO STDOUT",
		"BEGIN; DECLARE c CURSOR FOR SELECT card_number || '' FROM orders; FETCH c",
		"CREATE FUNCTION f2() RETURNS text LANGUAGE sql AS 'SELECT card_number FROM orders LIMIT 1'",
		"DO $$BEGIN RAISE NOTICE '%', (SELECT card_number FROM orders LIMIT 1); END$$",
		"WITH d AS (UPDATE items SET name = 'x' RETURNING id) SELECT card_number FROM orders",
		// Volatile functions could keep the value for a later statement
		// that names nothing masked.
		"SELECT set_config('x.c', card_number, false) FROM orders WHERE id = 1",
		"SELECT keep(card_number) FROM orders",
		"SELECT pg_notify('ch', card_number) FROM orders",
		"PREPARE pq AS SELECT id, card_number FROM orders; CREATE TEMP TABLE t4 AS EXECUTE pq",
		// A text the parser rejects, although on_unknown allows.
		"SELEC card_number FROM orders",
	} {
		out, err := psqlMany(t, e, "write-token", sql)
		noCard(t, sql, out)
		if err == nil || !strings.Contains(out, "airlock: statement denied by rule columns") {
			t.Errorf("%s: not refused: %v %q", sql, err, out)
		}
	}
	sc, err := pgx.Connect(t.Context(), e.pg.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	var n int
	if err := sc.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM pg_class WHERE relname IN ('t2', 't3', 'v2')) + (SELECT count(*) FROM pg_proc WHERE proname = 'f2') + (SELECT count(*) FROM items WHERE id > 2)").Scan(&n); err != nil || n != 0 {
		t.Errorf("a refused statement ran: %d %v", n, err)
	}

	// SQL PREPARE / EXECUTE, each its own Query: EXECUTE is judged by
	// what it runs.
	out, err = psqlMany(t, e, "write-token", "PREPARE p AS SELECT card_number || '' FROM orders WHERE id = 1", "EXECUTE p")
	noCard(t, "EXECUTE", out)
	if err != nil || out != "PREPARE\n****\n" {
		t.Errorf("PREPARE/EXECUTE: %v %q", err, out)
	}
	out, err = psqlMany(t, e, "write-token", "PREPARE w AS INSERT INTO items SELECT id + 20, card_number FROM orders")
	if err == nil || !strings.Contains(out, "rule columns") {
		t.Errorf("PREPARE of a copying write: %v %q", err, out)
	}

	// A denied column ends the session.
	out, err = psqlMany(t, e, "write-token", "SELECT id FROM salaries", "SELECT 1")
	if err == nil || !strings.Contains(out, "a column the policy denies (id)") || strings.Contains(out, "100000") {
		t.Errorf("denied column: %v %q", err, out)
	}
	if ev := e.sink.Find("session.ended", ""); len(ev) == 0 {
		t.Error("no session.ended")
	}

	// The audit log has the decisions, and no card number.
	var masked, denied int
	for _, ev := range e.sink.Find("db.guard", "") {
		if detail(ev, "rule") != "columns" {
			continue
		}
		switch detail(ev, "action") {
		case "mask":
			masked++
		case "deny":
			denied++
		}
	}
	if masked == 0 || denied == 0 {
		t.Errorf("db.guard events: %d mask, %d deny", masked, denied)
	}
	b, _ := json.Marshal(e.sink.Events())
	noCard(t, "audit", string(b))
}

// Through pgx (the extended protocol, binary formats, statements
// described before they are bound, pipelines): masked columns are
// reported as text so the client decodes what it gets.
func TestMaskExtendedProtocol(t *testing.T) {
	e := maskEnv(t, "")
	ctx := t.Context()
	c := e.connect(t, "write-token")
	var id, amount int
	var cardv string
	if err := c.QueryRow(ctx, "SELECT id, card_number, amount FROM orders WHERE id = $1", 1).Scan(&id, &cardv, &amount); err != nil || id != 1 || cardv != maskedText || amount != 10 {
		t.Fatalf("pgx: %v %d %q %d", err, id, cardv, amount)
	}
	// An int expression over a masked table: text "****", not an int.
	var cnt string
	if err := c.QueryRow(ctx, "SELECT count(*) FROM orders WHERE amount > $1", 0).Scan(&cnt); err != nil || cnt != maskedText {
		t.Fatalf("count: %v %q", err, cnt)
	}
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM items WHERE id > $1", 0).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count of an unmasked table: %v %d", err, n)
	}
	if _, err := c.Prepare(ctx, "s1", "SELECT card_number, id FROM orders ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rows, err := c.Query(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for rows.Next() {
			var s string
			var i int
			if err := rows.Scan(&s, &i); err != nil {
				t.Fatal(err)
			}
			got += s + "/" + itoa(i) + " "
		}
		if rows.Err() != nil || got != "****/1 ****/2 " {
			t.Fatalf("prepared: %v %q", rows.Err(), got)
		}
	}
	// A pipeline of several statements.
	b := &pgx.Batch{}
	b.Queue("SELECT card_number FROM orders WHERE id = $1", 2)
	b.Queue("SELECT name FROM items WHERE id = $1", 1)
	b.Queue("SELECT email FROM users WHERE id = $1", 1)
	br := c.SendBatch(ctx, b)
	var a1, a2, a3 string
	if err := br.QueryRow().Scan(&a1); err != nil {
		t.Fatal(err)
	}
	if err := br.QueryRow().Scan(&a2); err != nil {
		t.Fatal(err)
	}
	if err := br.QueryRow().Scan(&a3); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if a1 != maskedText || a2 != "one" || !strings.HasPrefix(a3, "h:") {
		t.Fatalf("batch: %q %q %q", a1, a2, a3)
	}
	// A refused write in the extended protocol: an error, the session goes on.
	_, err := c.Exec(ctx, "INSERT INTO items SELECT id + $1, card_number FROM orders", 30)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != sqlstateDenied {
		t.Fatalf("copying write: %v", err)
	}
	// The error of an Execute that touches masked data keeps no value.
	_, err = c.Exec(ctx, "SELECT card_number::int FROM orders WHERE id = $1", 1)
	if !errors.As(err, &pe) || strings.Contains(pe.Message, "411111") || pe.Code != "22003" {
		t.Fatalf("cast error: %v", err)
	}
	// A denied column ends the session, before a row of it is relayed.
	var sal int
	err = c.QueryRow(ctx, "SELECT amount FROM salaries WHERE id = $1", 1).Scan(&sal)
	if err == nil || sal == 100000 || !strings.Contains(err.Error(), "policy denies") {
		t.Fatalf("denied column: %v %d", err, sal)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Fatal("session still open after a denied column")
	}
}

// unknown_columns: deny ends the session at a column whose origin is not
// proved, in a statement that reads a masked table.
func TestMaskUnknownDeny(t *testing.T) {
	e := maskEnv(t, policy.ColumnDeny)
	out, err := psqlMany(t, e, "write-token", "SELECT id, card_number FROM orders WHERE id = 1", "SELECT count(*) FROM orders")
	if err == nil || !strings.HasPrefix(out, "1|****\n") || !strings.Contains(out, "policy denies (count)") {
		t.Fatalf("%v %q", err, out)
	}
}
