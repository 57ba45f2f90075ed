package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The pieces FuzzMaskSQL builds statements from: ways to get at a masked
// column (card_number of orders, its view, its partitioned twin, a
// function that returns it) and ways to wrap them.
var (
	fuzzCols = []string{"card_number", "id", "o", "o.*", "*", "upper(card_number)", "card_number::int8",
		"length(card_number)", "row_to_json(o)", "to_jsonb(o)", "array[card_number]", "card_number || ''",
		"coalesce(card_number, 'x')", "(SELECT max(card_number) FROM orders)", "format('%s', o)", "md5(card_number)",
		"substr(card_number, 1, 6)", "card_number::int", "string_agg(card_number, ',') OVER ()", "count(*) OVER ()",
		"lower(card_number)", "ctid", "xmin", "card_number COLLATE \"C\"", "(o).card_number", "row(o.*)::text"}
	fuzzFroms = []string{"orders o", "order_view o", "orders_p o", "orders_p1 o", "(SELECT * FROM orders) o",
		"get_cards() AS o(card_number)", "orders o JOIN items i USING (id)", "ONLY orders o",
		"(VALUES ('x')) AS v(a), LATERAL (SELECT * FROM orders) o", "public.orders o", `"orders" o`}
	fuzzShapes = []string{"SELECT %[1]s FROM %[2]s", "WITH x AS (SELECT %[1]s FROM %[2]s) SELECT * FROM x",
		"SELECT * FROM (SELECT %[1]s FROM %[2]s) s", "SELECT %[1]s FROM %[2]s UNION ALL SELECT %[1]s FROM %[2]s",
		"SELECT %[1]s FROM %[2]s ORDER BY 1 LIMIT 1", "SELECT (SELECT %[1]s FROM %[2]s LIMIT 1)",
		"SELECT 1; SELECT %[1]s FROM %[2]s", "EXPLAIN (VERBOSE, COSTS OFF) SELECT %[1]s FROM %[2]s",
		"SELECT %[1]s FROM %[2]s WHERE id = 1 FOR UPDATE", "SELECT array(SELECT %[1]s FROM %[2]s)",
		"PREPARE fz AS SELECT %[1]s FROM %[2]s; EXECUTE fz; DEALLOCATE fz"}
)

func pick[T any](l []T, b byte) T { return l[int(b)%len(l)] }

// FuzzMaskSQL builds statements from its input out of the pieces above
// and runs each through the gateway to a real PostgreSQL, in the simple
// and the extended protocol. The invariant: no card number reaches the
// client — not in a row, an error or a notice.
func FuzzMaskSQL(f *testing.F) {
	for i := 0; i < len(fuzzCols)*2; i++ {
		f.Add([]byte{byte(i), byte(i * 7), byte(i * 3)})
	}
	e := maskEnv(f, "")
	var mu sync.Mutex
	var notices []string
	var conn *pgx.Conn
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		ctx := context.Background()
		if conn == nil || conn.IsClosed() {
			cfg, err := pgx.ParseConfig(e.dsn("write-token", "disable"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
				mu.Lock()
				notices = append(notices, n.Message+n.Detail+n.Hint+n.Where)
				mu.Unlock()
			}
			if conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		sql := fmt.Sprintf(pick(fuzzShapes, in[2]), pick(fuzzCols, in[0]), pick(fuzzFroms, in[1]))
		var seen []string
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
			if mode != pgx.QueryExecModeSimpleProtocol && strings.Contains(sql, ";") {
				continue // one statement per Parse
			}
			rows, err := conn.Query(ctx, sql, mode)
			if err == nil {
				for rows.Next() {
					v, err := rows.Values()
					seen = append(seen, fmt.Sprint(v), fmt.Sprint(err))
				}
				err = rows.Err()
			}
			if err != nil {
				seen = append(seen, err.Error())
				if pe, ok := err.(*pgconn.PgError); ok {
					seen = append(seen, pe.Detail, pe.Hint, pe.Where)
				}
			}
			if conn.IsClosed() {
				break
			}
		}
		mu.Lock()
		seen = append(seen, notices...)
		notices = nil
		mu.Unlock()
		for _, s := range seen {
			if strings.Contains(s, card1) || strings.Contains(s, card2) || strings.Contains(s, "411111") || strings.Contains(s, "550000") {
				t.Fatalf("%s: a card number reached the client: %s", sql, s)
			}
		}
	})
}
