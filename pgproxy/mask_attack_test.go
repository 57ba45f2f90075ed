package pgproxy

// Attacks on column masking, from an attack review of the feature: each
// TestMaskAttack… test is a way a client under a rule with masks tried
// to get a clear masked (or denied) value through the gateway, and fails
// if the value arrives. The comments describe each attack as it worked
// before the fix that now holds it (session side channels through
// volatile functions, functions that read what a string names, FETCH,
// names prepared again, nested EXECUTE, a refused re-Bind, relations
// created since the session began).

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

const email1, salary1 = "ann@example.com", "100000"

// leaks reports which protected values are in s.
func leaks(s string) []string {
	var out []string
	for _, v := range []string{card1, card2, email1, salary1} {
		if strings.Contains(s, v) {
			out = append(out, v)
		}
	}
	return out
}

// noLeak fails when s holds a clear card number, email or salary.
func noLeak(t *testing.T, what, s string) {
	t.Helper()
	if l := leaks(s); len(l) > 0 {
		t.Errorf("BYPASS %s: %v reached the client:\n%s", what, l, s)
	}
}

// psqlSession runs the statements in one psql session (each -c its own
// simple Query, on one connection) and fails on a leak.
func psqlSession(t *testing.T, e *env, what string, stmts ...string) string {
	t.Helper()
	out, _ := psqlMany(t, e, "write-token", stmts...)
	noLeak(t, what, out)
	return out
}

// --- Session state written by a "touching" statement, read back by one
// that touches nothing (so its result columns and errors are as is).

func TestMaskAttackSetConfigCurrentSetting(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "set_config/current_setting (card)",
		"SELECT set_config('x.c', card_number, false) FROM orders WHERE id = 1",
		"SELECT current_setting('x.c')")
	t.Logf("card: %q", out)
	out = psqlSession(t, e, "set_config/current_setting (hashed email)",
		"SELECT set_config('x.e', email, false) FROM users WHERE id = 1",
		"SELECT current_setting('x.e')")
	t.Logf("email: %q", out)
	// A denied table: the set_config column has no origin, so it is only
	// masked; the session goes on.
	out = psqlSession(t, e, "set_config/current_setting (denied salary)",
		"SELECT set_config('x.s', amount::text, false) FROM salaries WHERE id = 1",
		"SELECT current_setting('x.s')")
	t.Logf("salary: %q", out)
	// Through an error of a statement that touches nothing.
	out = psqlSession(t, e, "set_config + error text",
		"SELECT set_config('x.c', card_number, false) FROM orders WHERE id = 1",
		"SELECT current_setting('x.c')::int")
	t.Logf("error: %q", out)
}

func TestMaskAttackSequenceCurrval(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "setval/currval",
		"CREATE SEQUENCE atk_seq",
		"SELECT setval('atk_seq', card_number::bigint) FROM orders WHERE id = 1",
		"SELECT currval('atk_seq'), lastval()")
	// Held: a relation name the catalog does not have touches, so the
	// CREATE SEQUENCE (DDL) is refused. (A temporary sequence named like
	// a known table is not: TestMaskAttackSearchPathKnownNameSequence.)
	if !strings.Contains(out, "denied by rule columns") {
		t.Errorf("CREATE SEQUENCE of a new name not refused: %q", out)
	}
}

func TestMaskAttackLargeObject(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "lo_from_bytea/lo_get",
		"SELECT lo_from_bytea(424242, convert_to(card_number, 'UTF8')) FROM orders WHERE id = 1",
		"SELECT convert_from(lo_get(424242), 'UTF8')")
	t.Logf("%q", out)
}

func TestMaskAttackAdvisoryLock(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "advisory lock key via pg_lock_status()",
		"SELECT pg_advisory_lock(card_number::bigint) FROM orders WHERE id = 1",
		"SELECT (classid::bigint << 32) | objid::bigint FROM pg_lock_status() WHERE locktype = 'advisory'",
		"SELECT pg_advisory_unlock_all()",
		"SELECT pg_advisory_lock(amount) FROM salaries WHERE id = 1",
		"SELECT objid FROM pg_lock_status() WHERE locktype = 'advisory'")
	t.Logf("%q", out)
}

// --- pg_catalog functions that run SQL given as a string or read a
// relation named by a regclass: the statement names no relation.

func TestMaskAttackQueryToXML(t *testing.T) {
	e := maskEnv(t, "")
	for _, sql := range []string{
		"SELECT query_to_xml('SELECT card_number FROM orders', true, false, '')",
		"SELECT table_to_xml('orders', true, false, '')",
		"SELECT table_to_xml('salaries', true, false, '')",
		"SELECT query_to_xml('SELECT email FROM users', true, false, '')",
		"SELECT schema_to_xml('public', true, false, '')",
		"SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', card_number) FROM orders')",
	} {
		out := psqlSession(t, e, sql, sql)
		if len(out) > 300 {
			out = out[:300]
		}
		t.Logf("%s → %q", sql, out)
	}
}

// --- SQL PREPARE after DEALLOCATE: the gateway keeps the first text of a
// name (the "stricter" of two allowed statements is the first) and judges
// EXECUTE by it, while the server runs the second.

func TestMaskAttackDeallocateReprepare(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "PREPARE/DEALLOCATE/PREPARE/EXECUTE",
		"PREPARE p AS SELECT 'x'::text",
		"DEALLOCATE p",
		"PREPARE p AS SELECT card_number || '' FROM orders WHERE id = 1",
		"EXECUTE p")
	t.Logf("%q", out)
	out = psqlSession(t, e, "PREPARE/DEALLOCATE ALL/PREPARE/EXECUTE (denied)",
		"PREPARE q AS SELECT 1",
		"DEALLOCATE ALL",
		"PREPARE q AS SELECT amount + 0 FROM salaries",
		"EXECUTE q")
	t.Logf("%q", out)
	out = psqlSession(t, e, "PREPARE/DEALLOCATE/PREPARE/EXECUTE error text",
		"PREPARE r AS SELECT 1",
		"DEALLOCATE r",
		"PREPARE r AS SELECT card_number::int FROM orders WHERE id = 1",
		"EXECUTE r")
	t.Logf("%q", out)
}

// --- Raw protocol helpers.

type rawConn struct {
	t    *testing.T
	fe   *pgproto3.Frontend
	conn net.Conn
}

func dialRaw(t *testing.T, e *env) *rawConn {
	t.Helper()
	pc, err := pgconn.Connect(t.Context(), e.dsn("write-token", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return &rawConn{t: t, fe: hc.Frontend, conn: hc.Conn}
}

// send sends msgs, then reads until n ReadyForQuery (or the connection
// ends), and returns a dump of what came back.
func (r *rawConn) send(n int, msgs ...pgproto3.FrontendMessage) string {
	r.t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	r.flush()
	return r.read(n)
}

// flush sends what was queued with r.fe.Send.
func (r *rawConn) flush() {
	r.t.Helper()
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read(n int) string {
	var b strings.Builder
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n > 0 {
		m, err := r.fe.Receive()
		if err != nil {
			fmt.Fprintf(&b, "[recv: %v]\n", err)
			return b.String()
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			n--
			fmt.Fprintf(&b, "Z%c\n", m.TxStatus)
		case *pgproto3.RowDescription:
			b.WriteString("T")
			for _, f := range m.Fields {
				fmt.Fprintf(&b, " %s(rel=%d,att=%d,type=%d)", f.Name, f.TableOID, f.TableAttributeNumber, f.DataTypeOID)
			}
			b.WriteString("\n")
		case *pgproto3.DataRow:
			b.WriteString("D")
			for _, v := range m.Values {
				if v == nil {
					b.WriteString(" NULL")
				} else {
					fmt.Fprintf(&b, " %q", v)
				}
			}
			b.WriteString("\n")
		case *pgproto3.ErrorResponse:
			fmt.Fprintf(&b, "E %s %s %q detail=%q hint=%q where=%q\n", m.Severity, m.Code, m.Message, m.Detail, m.Hint, m.Where)
			if m.Severity == "FATAL" {
				return b.String()
			}
		case *pgproto3.NoticeResponse:
			fmt.Fprintf(&b, "N %s %q detail=%q where=%q\n", m.Code, m.Message, m.Detail, m.Where)
		case *pgproto3.NotificationResponse:
			fmt.Fprintf(&b, "A %s %q\n", m.Channel, m.Payload)
		case *pgproto3.ParameterStatus:
			fmt.Fprintf(&b, "S %s=%q\n", m.Name, m.Value)
		case *pgproto3.CommandComplete:
			fmt.Fprintf(&b, "C %s\n", m.CommandTag)
		case *pgproto3.CopyData:
			fmt.Fprintf(&b, "d %q\n", m.Data)
		default:
			fmt.Fprintf(&b, "%T\n", m)
		}
	}
	return b.String()
}

func q(s string) *pgproto3.Query { return &pgproto3.Query{String: s} }

// --- A portal bound through the protocol and never Executed is a cursor
// the server keeps until the transaction ends: SQL FETCH (a utility that
// names nothing) reads it, and so does cursor_to_xml.

func TestMaskAttackProtocolPortalFetch(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "s1", Query: "SELECT card_number || '' AS c, card_number FROM orders ORDER BY id"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "s1"},
		&pgproto3.Sync{})
	out += r.send(1, q("FETCH ALL FROM c1"))
	t.Logf("FETCH:\n%s", out)
	noLeak(t, "protocol portal + SQL FETCH", out)
	out = r.send(1, q("ROLLBACK"))

	out += r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "c2", PreparedStatement: "s1"},
		&pgproto3.Sync{})
	out += r.send(1, q("SELECT cursor_to_xml('c2', 10, false, false, '')"))
	t.Logf("cursor_to_xml:\n%s", out)
	noLeak(t, "protocol portal + cursor_to_xml", out)
	r.send(1, q("ROLLBACK"))

	// The error of a FETCH keeps its text.
	out = r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "s2", Query: "SELECT card_number::int FROM orders"},
		&pgproto3.Bind{DestinationPortal: "c3", PreparedStatement: "s2"},
		&pgproto3.Sync{})
	out += r.send(1, q("FETCH 1 FROM c3"))
	t.Logf("FETCH error:\n%s", out)
	noLeak(t, "protocol portal + SQL FETCH error", out)
	r.send(1, q("ROLLBACK"))

	// Denied table: FETCH of a portal over salaries.
	out = r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "s3", Query: "SELECT amount + 0 AS a FROM salaries"},
		&pgproto3.Bind{DestinationPortal: "c4", PreparedStatement: "s3"},
		&pgproto3.Sync{})
	out += r.send(1, q("FETCH ALL FROM c4"))
	t.Logf("FETCH salaries:\n%s", out)
	noLeak(t, "protocol portal + SQL FETCH (denied table)", out)
}

// A FETCH sent as a protocol Parse/Bind/Execute is judged as a statement
// that names nothing, whatever portal it reads.
func TestMaskAttackProtocolFetchExecute(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "s1", Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "s1"},
		&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c1"},
		&pgproto3.Bind{PreparedStatement: "f"},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "protocol portal + protocol FETCH", out)
}

// A second Bind of an existing named portal fails on the server (42P03)
// but the gateway records the new statement's verdict for the name; after
// ROLLBACK TO SAVEPOINT the first portal lives on.
func TestMaskAttackPortalRebindSavepoint(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "bad", Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"},
		&pgproto3.Parse{Name: "good", Query: "SELECT name FROM items"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "bad"},
		&pgproto3.Sync{})
	out += r.send(1, q("SAVEPOINT sp"))
	out += r.send(1, &pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "good"}, &pgproto3.Sync{})
	out += r.send(1, q("ROLLBACK TO SAVEPOINT sp"))
	out += r.send(1, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "portal rebind + savepoint", out)
}

// Protocol Parse of a name, Close, Parse of the same name again: an SQL
// EXECUTE of it is judged by the first text.
func TestMaskAttackProtocolCloseReparseSQLExecute(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1,
		&pgproto3.Parse{Name: "p", Query: "SELECT 'x'::text"},
		&pgproto3.Close{ObjectType: 'S', Name: "p"},
		&pgproto3.Parse{Name: "p", Query: "SELECT card_number || '' FROM orders WHERE id = 1"},
		&pgproto3.Sync{})
	out += r.send(1, q("EXECUTE p"))
	t.Logf("%s", out)
	noLeak(t, "protocol Close/Parse + SQL EXECUTE", out)
}

// A new relation named like a known unmasked one (here: a temporary
// "items", which pg_temp puts first on search_path) is not "a relation the catalog did
// not have": DDL naming it is allowed, and reads of it touch nothing.
// With it, setval/currval carry a card number across statements.
func TestMaskAttackSearchPathKnownNameSequence(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "search_path + CREATE SEQUENCE items + setval/currval",
		"CREATE TEMP SEQUENCE items",
		"SELECT setval('items', card_number::bigint) FROM orders WHERE id = 1",
		"SELECT currval('items')",
		"SELECT last_value FROM items")
	t.Logf("%q", out)
}

// CREATE TABLE … AS EXECUTE: the EXECUTE is nested, so the statement is
// judged by the names it holds (a temporary "items", a known unmasked
// name) and not by what it runs. A refused copy of masked values (CREATE
// TABLE AS over orders) runs, and reading the copy touches nothing.
func TestMaskAttackCreateTableAsExecute(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "CREATE TEMP TABLE items AS EXECUTE",
		"PREPARE p AS SELECT id, card_number FROM orders",
		"CREATE TEMP TABLE items AS EXECUTE p",
		"SELECT * FROM items ORDER BY 1")
	t.Logf("%q", out)
	out = psqlSession(t, e, "CREATE TEMP TABLE items AS EXECUTE (denied table)",
		"PREPARE s AS SELECT id, amount FROM salaries",
		"CREATE TEMP TABLE items AS EXECUTE s",
		"SELECT * FROM items")
	t.Logf("%q", out)
}

// The gateway remembers a PREPARE the server rejected: a later PREPARE of
// the same name (which the server accepts) is judged as the first.
func TestMaskAttackFailedPrepareRemembered(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "failed PREPARE, PREPARE, EXECUTE",
		"PREPARE p AS SELECT name FROM items WHERE id = 'not an int'",
		"PREPARE p AS SELECT card_number || '' FROM orders WHERE id = 1",
		"EXECUTE p")
	t.Logf("%q", out)
}

// The same through the protocol: a Bind of an SQL-PREPAREd statement is
// judged by the gateway's stale text too.
func TestMaskAttackDeallocateReprepareProtocolBind(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("PREPARE p AS SELECT 'x'::text"))
	out += r.send(1, q("DEALLOCATE p"))
	out += r.send(1, q("PREPARE p AS SELECT card_number || '' FROM orders WHERE id = 1"))
	out += r.send(1, &pgproto3.Bind{PreparedStatement: "p"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "SQL DEALLOCATE/PREPARE + protocol Bind/Execute", out)
}

// application_name set from a card number: the server's ParameterStatus
// carries it (documented: "ParameterStatus ... relayed as they are"), and
// pg_stat_get_activity(), a pg_catalog function, reads it back later.
func TestMaskAttackApplicationNameActivity(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("SELECT set_config('application_name', card_number, false) FROM orders WHERE id = 1"))
	t.Logf("ParameterStatus (documented):\n%s", out)
	out = r.send(1, q("SELECT application_name FROM pg_stat_get_activity(pg_backend_pid())"))
	t.Logf("pg_stat_get_activity:\n%s", out)
	noLeak(t, "application_name via pg_stat_get_activity()", out)
}

// pg_notify is volatile: a statement that touches masked data may not
// call it (NOTIFY itself takes only a literal payload).
func TestMaskAttackNotify(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("LISTEN ch"))
	out += r.send(1, q("SELECT pg_notify('ch', card_number) FROM orders WHERE id = 1"))
	noLeak(t, "pg_notify", out)
	if !strings.Contains(out, "volatile function (pg_notify)") {
		t.Errorf("pg_notify not refused:\n%s", out)
	}
}

// Held: pg_stats (most_common_vals, histogram_bounds) is a view, so a
// statement that reads it touches masked data.
func TestMaskAttackHeldPgStats(t *testing.T) {
	e := maskEnv(t, "")
	e.pg.Exec(t, e.db, "ANALYZE orders; ANALYZE users; ANALYZE salaries")
	out := psqlSession(t, e, "pg_stats",
		"SELECT attname, most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename IN ('orders', 'users', 'salaries') ORDER BY 1",
		"SELECT attname, most_common_vals::text FROM pg_catalog.pg_stats WHERE tablename = 'users'")
	if !strings.Contains(out, "****") {
		t.Errorf("pg_stats: nothing masked: %q", out)
	}
	out = psqlSession(t, e, "pg_statistic", "SELECT stavalues1::text FROM pg_statistic")
	t.Logf("%q", out)
}

// Held: statements that name a masked table, a view or an unknown
// relation get every column without a proved origin masked, and their
// errors lose their text. Each must return no clear value and still
// answer (no leak, and the mask shows).
func TestMaskAttackHeldTouching(t *testing.T) {
	e := maskEnv(t, "")
	for _, sql := range []string{
		"TABLE orders",
		"SELECT ROW(card_number) FROM orders",
		"SELECT ARRAY[card_number] FROM orders",
		"SELECT array_agg(card_number) FROM orders",
		"SELECT to_json(o) FROM orders o",
		"SELECT jsonb_build_object('c', card_number) FROM orders",
		"SELECT (o).card_number FROM orders o",
		"SELECT x.c FROM orders, LATERAL (SELECT card_number AS c) x",
		"SELECT c FROM items, LATERAL (SELECT card_number || '' AS c FROM orders LIMIT 1) x",
		"SELECT c FROM orders AS o(i, c)",
		"SELECT card_number COLLATE \"C\" FROM orders",
		"SELECT card_number FROM ONLY orders",
		"SELECT * FROM orders_p",
		"SELECT * FROM ledger",
		"SELECT * FROM ledger_2026",
		"SELECT format('%s', email) FROM users",
		"SELECT email::varchar FROM users",
		"SELECT query_to_xml('SELECT 1', true, false, '') FROM orders",
		"SELECT set_config('x.c', card_number, false) FROM orders WHERE id = 1",
		"SELECT xmin, ctid, tableoid FROM orders",
		"EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM orders WHERE card_number = '4111111111111111'",
		"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) SELECT * FROM orders",
		"SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'orders'",
		"SELECT card_number::int FROM orders",
		"SELECT card_number::numeric::int FROM orders",
		"SELECT to_date(card_number, 'YYYY') FROM orders",
		"SELECT jsonb_path_query(to_jsonb(card_number), '$.a ? (@ == 1)', '{}', false) FROM orders",
		"SELECT xmlparse(document card_number) FROM orders",
		"SELECT 1/(length(card_number)-16) FROM orders",
		"SELECT * FROM users WHERE email::int = 1",
		"SELECT amount::text::bool FROM salaries",
		"SELECT regexp_match(card_number, '(') FROM orders",
		"SELECT * FROM order_view",
		"SELECT get_cards()",
		"WITH RECURSIVE r(c) AS (SELECT card_number FROM orders) SELECT * FROM r",
		"SELECT * FROM (VALUES (1)) v(x), orders",
		"SELECT card_number FROM orders UNION SELECT name FROM items",
		"SELECT c FROM (SELECT card_number AS c FROM orders) s",
		"SELECT c FROM (SELECT card_number || '' AS c FROM orders) s GROUP BY c",
		"COPY (SELECT card_number FROM orders) TO STDOUT",
		"COPY (SELECT 1) TO STDOUT; SELECT card_number::int FROM orders",
		"SELECT pg_notify('nobody', card_number) FROM orders",
		"PREPARE h AS SELECT card_number || '' FROM orders",
		"BEGIN; DECLARE c CURSOR FOR SELECT 1 FROM orders; FETCH c",
		"BEGIN; DECLARE c CURSOR FOR SELECT card_number FROM orders; FETCH c",
		"UPDATE items SET name = name WHERE id = 1 RETURNING (SELECT card_number FROM orders LIMIT 1)",
		"INSERT INTO items VALUES (77, 'x') RETURNING (SELECT card_number FROM orders LIMIT 1)",
		"DELETE FROM items WHERE id = 99 RETURNING (SELECT card_number FROM orders LIMIT 1)",
		"SELECT card_number INTO TEMP t FROM orders",
		"CREATE TEMP TABLE t AS SELECT card_number FROM orders",
		"ALTER TABLE orders RENAME TO orders_old",
		"ALTER TABLE orders RENAME COLUMN card_number TO cn",
		"CREATE RULE r AS ON SELECT TO items DO INSTEAD SELECT * FROM orders",
		"SELECT lo_from_bytea(0, convert_to(card_number, 'UTF8')) FROM orders",
	} {
		out, _ := psqlMany(t, e, "write-token", sql)
		noLeak(t, sql, out)
		if !strings.Contains(out, "****") && !strings.Contains(out, "withheld") && !strings.Contains(out, "denied") && !strings.Contains(out, "h:") {
			t.Logf("held? %s → %q", sql, out)
		}
	}
}
