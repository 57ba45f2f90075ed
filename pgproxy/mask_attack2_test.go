package pgproxy

// A second attack review of column masking (and holds), against the fixes
// of the first one (mask_attack_test.go). Each TestMaskAttack2… test named
// a bypass failed while the attack worked (volatile calls the gateway did
// not see, records of statements and portals the server skipped after an
// error, a gateway-injected Close that has since been removed); the
// others assert that normal driver traffic (pgx in every exec mode,
// batches, pipelines, rebinds) keeps working and stays masked.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// --- A. Volatile side effects that are not a FuncCall node.

// A domain's CHECK constraint runs on every cast to the domain. CREATE
// DOMAIN names no relation and calls only pg_catalog's set_config, so it
// does not touch and is allowed; the cast is a TypeCast, not a FuncCall,
// so the volatile-call refusal does not see set_config run on the card.
func TestMaskAttack2DomainCheckSetConfig(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "domain CHECK set_config + current_setting",
		"CREATE DOMAIN atk_d AS text CHECK (set_config('x.c', VALUE, false) IS NOT NULL)",
		"SELECT card_number::atk_d FROM orders WHERE id = 1",
		"SELECT current_setting('x.c')")
	t.Logf("%q", out)
	// The same through a composite type with a domain field, and for the
	// denied table.
	out = psqlSession(t, e, "domain CHECK (denied salary)",
		"CREATE DOMAIN atk_i AS int CHECK (set_config('x.s', VALUE::text, false) IS NOT NULL)",
		"SELECT count(*) FROM salaries WHERE amount::atk_i > 0",
		"SELECT current_setting('x.s')")
	t.Logf("%q", out)
}

// Functional notation: (x).f is a call of f(x), parsed as an
// A_Indirection, not a FuncCall. keep(text) is volatile (maskEnv), so a
// statement that touches may not call it; stash writes its argument into
// a setting.
func TestMaskAttack2AttributeNotationVolatile(t *testing.T) {
	e := maskEnv(t, "")
	e.pg.Exec(t, e.db, `CREATE FUNCTION stash(v text) RETURNS text LANGUAGE sql VOLATILE AS $$SELECT set_config('x.c', v, false)$$;
		CREATE FUNCTION stash_row(o orders) RETURNS text LANGUAGE sql VOLATILE AS $$SELECT set_config('x.r', o.card_number, false)$$`)
	out, _ := psqlMany(t, e, "write-token", "SELECT keep(card_number) FROM orders WHERE id = 1")
	if !strings.Contains(out, "volatile function (keep)") {
		t.Errorf("keep(card_number) not refused: %q", out)
	}
	out = psqlSession(t, e, "(card_number).stash + current_setting",
		"SELECT (card_number).stash FROM orders WHERE id = 1",
		"SELECT current_setting('x.c')")
	t.Logf("(x).f: %q", out)
	out = psqlSession(t, e, "o.stash_row + current_setting",
		"SELECT o.stash_row FROM orders o WHERE id = 1",
		"SELECT current_setting('x.r')")
	t.Logf("o.f: %q", out)
}

// An operator is a call of its function: a user operator backed by a
// volatile function is not refused (only FuncCalls are checked, and the
// catalog reads no provolatile for operators).
func TestMaskAttack2VolatileOperator(t *testing.T) {
	e := maskEnv(t, "")
	e.pg.Exec(t, e.db, `CREATE FUNCTION stash2(a text, b text) RETURNS bool LANGUAGE sql VOLATILE AS $$SELECT set_config('x.o', a, false) IS NOT NULL$$;
		CREATE OPERATOR ### (FUNCTION = stash2, LEFTARG = text, RIGHTARG = text)`)
	out := psqlSession(t, e, "volatile operator + current_setting",
		"SELECT count(*) FROM orders WHERE card_number ### 'x' AND id = 1",
		"SELECT current_setting('x.o')")
	t.Logf("%q", out)
}

// An operator of a SubLink (x op ANY (SELECT …), ALL, a row comparison
// with a subquery) is not an A_Expr: the gateway does not see that the
// statement calls a user operator, so it does not touch, and an error the
// operator's function raises keeps its text. Its A_Expr form touches.
func TestMaskAttack2SubLinkUserOperator(t *testing.T) {
	e := maskEnv(t, "")
	e.pg.Exec(t, e.db, `CREATE FUNCTION peek(a int, b int) RETURNS bool LANGUAGE sql STABLE AS $$SELECT (SELECT card_number FROM orders WHERE id = 1)::int > a$$;
		CREATE OPERATOR #< (FUNCTION = peek, LEFTARG = int, RIGHTARG = int)`)
	out, _ := psqlMany(t, e, "write-token", "SELECT 1 #< 1")
	noLeak(t, "SELECT 1 #< 1", out)
	if !strings.Contains(out, "withheld") {
		t.Errorf("A_Expr user operator: not withheld: %q", out)
	}
	for _, sql := range []string{
		"SELECT 1 WHERE 1 #< ANY (SELECT 1)",
		"SELECT 1 WHERE 1 #< ALL (SELECT 1)",
	} {
		out, _ := psqlMany(t, e, "write-token", sql)
		noLeak(t, sql, out)
		t.Logf("%s → %q", sql, out)
	}
}

// --- The gateway updates its records of statements and portals as it
// forwards a message; after an error the server skips every message up
// to Sync, the gateway's injected Close among them.

// The fix's "the portal is the new one or none" fails when the Bind (and
// the Close the gateway puts before it) follow an error in the same
// pipeline: the server skips both, the gateway records the new portal.
func TestMaskAttack2RebindSkippedAfterError(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "bad", Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"},
		&pgproto3.Parse{Name: "good", Query: "SELECT name AS c FROM items ORDER BY id"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "bad"},
		&pgproto3.Sync{})
	out += r.send(1, q("SAVEPOINT sp"))
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails: the rest is skipped
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "good"},
		&pgproto3.Sync{})
	out += r.send(1, q("ROLLBACK TO SAVEPOINT sp"))
	out += r.send(1, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "error-skipped Close+Bind, savepoint, Execute", out)
}

// The unnamed statement: a Parse of it after an error is skipped, the old
// one stays; the gateway takes the new text's verdict (no transaction is
// needed, prepared statements outlive it).
func TestMaskAttack2UnnamedParseSkippedAfterError(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Parse{Query: "SELECT name AS c FROM items"},             // skipped
		&pgproto3.Sync{})
	out += r.send(1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "error-skipped Parse of the unnamed statement", out)
}

// A client Close of a named statement skipped after an error: the gateway
// forgets the statement, the server keeps it and refuses the next Parse of
// the name (42P05), which the gateway records as the name's statement.
func TestMaskAttack2CloseStatementSkippedAfterError(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Name: "s", Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Close{ObjectType: 'S', Name: "s"},                       // skipped
		&pgproto3.Sync{})
	out += r.send(1, &pgproto3.Parse{Name: "s", Query: "SELECT name AS c FROM items"}, &pgproto3.Sync{}) // 42P05
	out += r.send(1, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "error-skipped Close S, refused re-Parse", out)
}

// The same for a portal: a skipped client Close P makes the gateway forget
// the portal, so the next Bind of the name gets no injected Close and the
// server refuses it (42P03); after ROLLBACK TO SAVEPOINT the old portal
// runs under the new record.
func TestMaskAttack2ClosePortalSkippedAfterError(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "bad", Query: "SELECT card_number || '' AS c FROM orders ORDER BY id"},
		&pgproto3.Parse{Name: "good", Query: "SELECT name AS c FROM items ORDER BY id"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "bad"},
		&pgproto3.Sync{})
	out += r.send(1, q("SAVEPOINT sp"))
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Close{ObjectType: 'P', Name: "c1"},                      // skipped
		&pgproto3.Sync{})
	out += r.send(1, q("ROLLBACK TO SAVEPOINT sp"))
	out += r.send(1, q("SAVEPOINT sp2"))
	out += r.send(1, &pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "good"}, &pgproto3.Sync{}) // 42P03
	out += r.send(1, q("ROLLBACK TO SAVEPOINT sp2"))
	out += r.send(1, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "error-skipped Close P, refused re-Bind, savepoint", out)
}

// Protocol Parse of a name, SQL DEALLOCATE and PREPARE of it: a protocol
// Bind of the name is judged by the protocol record (the first text),
// not by what SQL PREPARE put there (fix 4 covers SQL EXECUTE only).
func TestMaskAttack2ProtocolParseSQLReprepareBind(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Name: "p", Query: "SELECT 'x'::text AS c"}, &pgproto3.Sync{})
	out += r.send(1, q("DEALLOCATE p"))
	out += r.send(1, q("PREPARE p AS SELECT card_number || '' AS c FROM orders ORDER BY id"))
	out += r.send(1, &pgproto3.Bind{PreparedStatement: "p"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	noLeak(t, "protocol Parse, SQL DEALLOCATE/PREPARE, protocol Bind", out)
}

// Holds: the same skipped messages run a held statement unheld. With no
// Holder a held statement is refused, so DELETE FROM items must not run.
func TestMaskAttack2HoldUnnamedParseSkippedAfterError(t *testing.T) {
	e := holdEnv(t, nil)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "DELETE FROM items"}, &pgproto3.Sync{})
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Parse{Query: "SELECT 1"},                                // skipped
		&pgproto3.Sync{})
	out += r.send(1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	if n := e.count(t); n != 2 {
		t.Errorf("BYPASS held DELETE FROM items ran unheld (%d rows left):\n%s", n, out)
	}
}

func TestMaskAttack2HoldRebindSkippedAfterError(t *testing.T) {
	e := holdEnv(t, nil)
	r := dialRaw(t, e)
	out := r.send(1, q("BEGIN"))
	out += r.send(1,
		&pgproto3.Parse{Name: "wipe", Query: "DELETE FROM items"},
		&pgproto3.Parse{Name: "one", Query: "SELECT 1"},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "wipe"},
		&pgproto3.Sync{})
	out += r.send(1, q("SAVEPOINT sp"))
	out += r.send(1,
		&pgproto3.Bind{DestinationPortal: "x", PreparedStatement: "nope"}, // fails
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "one"}, // skipped, with the gateway's Close
		&pgproto3.Sync{})
	out += r.send(1, q("ROLLBACK TO SAVEPOINT sp"))
	out += r.send(1, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
	out += r.send(1, q("COMMIT"))
	t.Logf("%s", out)
	if n := e.count(t); n != 2 {
		t.Errorf("BYPASS held DELETE FROM items ran unheld (%d rows left):\n%s", n, out)
	}
}

// --- B. The injected Close and the client's own Close messages.

// kinds sends msgs on a raw connection and returns the message kinds that
// come back until n ReadyForQuery (errors with their SQLSTATE).
func kinds(t *testing.T, fe *pgproto3.Frontend, setDeadline func(time.Time) error, n int, msgs ...pgproto3.FrontendMessage) string {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = setDeadline(time.Now().Add(10 * time.Second))
	var out []string
	for n > 0 {
		m, err := fe.Receive()
		if err != nil {
			out = append(out, fmt.Sprintf("[recv: %v]", err))
			break
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			n--
			out = append(out, "Z"+string(m.TxStatus))
		case *pgproto3.ParseComplete:
			out = append(out, "1")
		case *pgproto3.BindComplete:
			out = append(out, "2")
		case *pgproto3.CloseComplete:
			out = append(out, "3")
		case *pgproto3.RowDescription:
			out = append(out, "T")
		case *pgproto3.NoData:
			out = append(out, "n")
		case *pgproto3.ParameterDescription:
			out = append(out, "t")
		case *pgproto3.DataRow:
			out = append(out, "D")
		case *pgproto3.CommandComplete:
			out = append(out, "C")
		case *pgproto3.PortalSuspended:
			out = append(out, "s")
		case *pgproto3.EmptyQueryResponse:
			out = append(out, "I")
		case *pgproto3.ErrorResponse:
			out = append(out, "E"+m.Code)
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			out = append(out, fmt.Sprintf("%T", m))
		}
	}
	return strings.Join(out, " ")
}

type wire struct {
	fe *pgproto3.Frontend
	dl func(time.Time) error
}

func dialWire(t *testing.T, dsn string) wire {
	t.Helper()
	pc, err := pgconn.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return wire{hc.Frontend, hc.Conn.SetReadDeadline}
}

// sameAsDirect runs the same batches through the gateway and directly on
// the server and fails where the message kinds differ.
func sameAsDirect(t *testing.T, gwDSN, directDSN string, batches [][]pgproto3.FrontendMessage) {
	t.Helper()
	gw, direct := dialWire(t, gwDSN), dialWire(t, directDSN)
	for i, b := range batches {
		n := 0
		for _, m := range b {
			switch m.(type) {
			case *pgproto3.Sync, *pgproto3.Query:
				n++
			}
		}
		want := kinds(t, direct.fe, direct.dl, n, b...)
		got := kinds(t, gw.fe, gw.dl, n, b...)
		if got != want {
			t.Errorf("batch %d: the gateway answers\n\t%s\nthe server directly\n\t%s", i, got, want)
		}
	}
}

// A client's Close just before a rebind: the gateway swallows the first
// CloseComplete while its own Close is the oldest request, whichever Close
// it answers. When the gateway's Close is then skipped (an error between),
// the client's CloseComplete is lost; with a BindComplete between, the
// client's arrives after it.
func TestMaskAttack2ClientCloseBeforeRebind(t *testing.T) {
	e := maskEnv(t, "")
	setup := []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: "s1", Query: "SELECT id FROM items ORDER BY id"},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{},
		&pgproto3.Sync{},
	}
	t.Run("lost", func(t *testing.T) {
		sameAsDirect(t, e.dsn("write-token", "disable"), e.pg.DSN(e.db), [][]pgproto3.FrontendMessage{setup, {
			&pgproto3.Close{ObjectType: 'S', Name: "zz"},
			&pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "nope"}, // fails
			&pgproto3.Bind{PreparedStatement: "s1"},                            // a portal seen: the gateway's Close first
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		}})
	})
	t.Run("lost in a holds session", func(t *testing.T) {
		h := holdEnv(t, nil)
		sameAsDirect(t, h.dsn("write-token", "disable"), h.pg.DSN(h.db), [][]pgproto3.FrontendMessage{setup, {
			&pgproto3.Close{ObjectType: 'P', Name: "zz"},
			&pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "nope"},
			&pgproto3.Bind{PreparedStatement: "s1"},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		}})
	})
	t.Run("reordered", func(t *testing.T) {
		sameAsDirect(t, e.dsn("write-token", "disable"), e.pg.DSN(e.db), [][]pgproto3.FrontendMessage{setup, {
			&pgproto3.Close{ObjectType: 'S', Name: "zz"},
			&pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "s1"},
			&pgproto3.Bind{PreparedStatement: "s1"},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		}})
	})
}

// Pipelines that rebind portals the gateway has seen answer as the server
// does: several Binds of one portal in a batch, a client Close of it in
// the same batch, errors between, a failed transaction, a portal
// suspended by a row limit and bound again.
func TestMaskAttack2RebindPipelines(t *testing.T) {
	e := maskEnv(t, "")
	card := "SELECT id, card_number FROM orders ORDER BY id"
	items := "SELECT id, name FROM items ORDER BY id"
	batches := [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Name: "a", Query: card}, &pgproto3.Parse{Name: "b", Query: items}, &pgproto3.Sync{}},
		// Several Binds of the unnamed and of a named portal.
		{
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{},
			&pgproto3.Bind{DestinationPortal: "n", PreparedStatement: "a"}, &pgproto3.Execute{Portal: "n"},
			&pgproto3.Sync{},
			// The named portal ended with the implicit transaction.
			&pgproto3.Bind{DestinationPortal: "n", PreparedStatement: "b"}, &pgproto3.Execute{Portal: "n"},
			&pgproto3.Sync{},
		},
		// The client closes the portal itself in the same batch.
		{
			&pgproto3.Bind{DestinationPortal: "n", PreparedStatement: "a"}, &pgproto3.Close{ObjectType: 'P', Name: "n"},
			&pgproto3.Bind{DestinationPortal: "n", PreparedStatement: "b"}, &pgproto3.Describe{ObjectType: 'P', Name: "n"},
			&pgproto3.Execute{Portal: "n"}, &pgproto3.Close{ObjectType: 'P', Name: "n"},
			&pgproto3.Sync{},
		},
		// An error before the rebinds, then the next batch.
		{
			&pgproto3.Bind{PreparedStatement: "nope"},
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{},
			&pgproto3.Sync{},
		},
		// A failed transaction: the gateway's Close runs, the Bind fails.
		{q("BEGIN"), q("SELECT 1/0")},
		{&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{}, &pgproto3.Sync{}, q("ROLLBACK")},
		// Row limits: suspended, executed again, then bound again (the
		// unnamed portal may be; a named one only after it ended: a
		// direct connection refuses an open one, 42P03, the gateway
		// closes it first, as documented).
		{
			q("BEGIN"),
			&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "a"}, &pgproto3.Execute{Portal: "r", MaxRows: 1},
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{MaxRows: 1},
			&pgproto3.Sync{},
			&pgproto3.Execute{Portal: "r", MaxRows: 1},
			&pgproto3.Execute{MaxRows: 1},
			&pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{MaxRows: 1},
			&pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{},
			&pgproto3.Close{ObjectType: 'P', Name: "r"},
			&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "b"}, &pgproto3.Execute{Portal: "r", MaxRows: 1},
			&pgproto3.Sync{},
			q("COMMIT"),
			q("BEGIN"),
			&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "a"}, &pgproto3.Execute{Portal: "r", MaxRows: 1},
			&pgproto3.Execute{Portal: "r"},
			&pgproto3.Sync{},
			q("COMMIT"),
		},
		// A Bind that fails at the server for its parameters.
		{
			&pgproto3.Parse{Name: "c", Query: "SELECT card_number FROM orders WHERE id = $1", ParameterOIDs: []uint32{23}},
			&pgproto3.Bind{PreparedStatement: "c", Parameters: [][]byte{[]byte("x")}}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "c", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{},
			&pgproto3.Sync{},
		},
	}
	sameAsDirect(t, e.dsn("write-token", "disable"), e.pg.DSN(e.db), batches)

	// And the values are still masked through it all.
	r := dialRaw(t, e)
	var out string
	for _, b := range batches {
		n := 0
		for _, m := range b {
			switch m.(type) {
			case *pgproto3.Sync, *pgproto3.Query:
				n++
			}
		}
		out += r.send(n, b...)
	}
	noLeak(t, "rebind pipelines", out)
	if !strings.Contains(out, `"****"`) {
		t.Errorf("nothing masked:\n%s", out)
	}
}

// pgx binds the unnamed portal for every query: with the gateway's Close
// before each, ordinary sessions (queries, batches, pipelines, errors,
// transactions) still work and are still masked.
func TestMaskAttack2PgxSessions(t *testing.T) {
	e := maskEnv(t, "")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(e.dsn("write-token", "disable"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			cfg.StatementCacheCapacity = 4 // evictions: pgx closes statements
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			for i := range 40 {
				var s string
				if err := c.QueryRow(ctx, fmt.Sprintf("SELECT card_number FROM orders WHERE id = $1 AND %d = %d", i%7, i%7), 1).Scan(&s); err != nil || s != "****" {
					t.Fatalf("query %d: %q %v", i, s, err)
				}
				var n string
				if err := c.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 1).Scan(&n); err != nil || n != "one" {
					t.Fatalf("items %d: %q %v", i, n, err)
				}
				if i%5 == 0 {
					_, err := c.Exec(ctx, "SELECT 1/0")
					var pe *pgconn.PgError
					if !errors.As(err, &pe) || pe.Code != "22012" {
						t.Fatalf("error %d: %v", i, err)
					}
				}
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "UPDATE items SET name = name WHERE id = $1", 1); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "SELECT 1/0")
			if err == nil {
				t.Fatal("no error")
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			b := &pgx.Batch{}
			for i := range 10 {
				b.Queue("SELECT card_number FROM orders WHERE id = $1", 1+i%2)
				b.Queue("SELECT name FROM items WHERE id = $1", 1+i%2)
			}
			br := c.SendBatch(ctx, b)
			for i := range 10 {
				var s, n string
				if err := br.QueryRow().Scan(&s); err != nil || s != "****" {
					t.Fatalf("batch card %d: %q %v", i, s, err)
				}
				if err := br.QueryRow().Scan(&n); err != nil || (n != "one" && n != "two") {
					t.Fatalf("batch items %d: %q %v", i, n, err)
				}
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			// A batch with an error in the middle.
			b = &pgx.Batch{}
			b.Queue("SELECT card_number FROM orders WHERE id = 1")
			b.Queue("SELECT 1/0")
			b.Queue("SELECT name FROM items WHERE id = 1")
			br = c.SendBatch(ctx, b)
			var s string
			if err := br.QueryRow().Scan(&s); err != nil || s != "****" {
				t.Fatalf("batch 2 first: %q %v", s, err)
			}
			if _, err := br.Exec(); err == nil {
				t.Fatal("batch 2: no error")
			}
			_ = br.Close()
			if err := c.QueryRow(ctx, "SELECT card_number FROM orders WHERE id = 2").Scan(&s); err != nil || s != "****" {
				t.Fatalf("after batch: %q %v", s, err)
			}
		})
	}
	// pgconn's pipeline mode: unnamed portals, a deallocate, an error.
	pc, err := pgconn.Connect(t.Context(), e.dsn("write-token", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := pc.StartPipeline(ctx)
	p.SendPrepare("ps", "SELECT card_number FROM orders WHERE id = $1", nil)
	p.SendQueryPrepared("ps", [][]byte{[]byte("1")}, nil, nil)
	p.SendQueryParams("SELECT name FROM items WHERE id = $1", [][]byte{[]byte("1")}, nil, nil, nil)
	p.SendDeallocate("ps")
	p.SendQueryParams("SELECT card_number FROM orders WHERE id = $1", [][]byte{[]byte("2")}, nil, nil, nil)
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		res, err := p.GetResults()
		if err != nil {
			t.Fatalf("pipeline: %v (after %v)", err, got)
		}
		if res == nil {
			break
		}
		switch r := res.(type) {
		case *pgconn.StatementDescription:
			got = append(got, "prepare")
		case *pgconn.ResultReader:
			rr := r.Read()
			if rr.Err != nil {
				t.Fatalf("pipeline result: %v", rr.Err)
			}
			for _, row := range rr.Rows {
				got = append(got, string(row[0]))
			}
		case *pgconn.CloseComplete:
			got = append(got, "closed")
		case *pgconn.PipelineSync:
			got = append(got, "sync")
		}
		if len(got) > 0 && got[len(got)-1] == "sync" {
			break
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "prepare **** one closed **** sync"; strings.Join(got, " ") != want {
		t.Errorf("pipeline: %q, want %q", strings.Join(got, " "), want)
	}
}

// Holds sessions bind the unnamed portal again too: pgx traffic works, a
// held statement is still refused without a holder, and the session goes
// on.
func TestMaskAttack2HoldsPgxRebinds(t *testing.T) {
	e := holdEnv(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := e.connect(t, "write-token")
	for i := range 30 {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM items WHERE id > $1", i%3-3).Scan(&n); err != nil || n != 2 {
			t.Fatalf("query %d: %d %v", i, n, err)
		}
		if i%10 == 0 {
			if _, err := c.Exec(ctx, "DELETE FROM items"); err == nil {
				t.Fatalf("held DELETE ran")
			}
		}
	}
	b := &pgx.Batch{}
	for range 5 {
		b.Queue("SELECT count(*) FROM items")
	}
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t); n != 2 {
		t.Errorf("items: %d rows", n)
	}
}

// query_to_xml (and ts_stat) run the query in their string: a volatile
// call inside it is not a FuncCall of the statement, so the refusal of
// volatile calls does not see it. The result is masked (the statement
// touches) but the query's side effect stays.
func TestMaskAttack2QueryToXMLVolatileInside(t *testing.T) {
	e := maskEnv(t, "")
	out := psqlSession(t, e, "query_to_xml(set_config) + current_setting",
		"SELECT query_to_xml('SELECT set_config(''x.c'', card_number, false) FROM orders WHERE id = 1', true, false, '')",
		"SELECT current_setting('x.c')")
	t.Logf("query_to_xml: %q", out)
	out = psqlSession(t, e, "ts_stat(set_config) + current_setting",
		"SELECT count(*) FROM ts_stat('SELECT to_tsvector(''simple'', set_config(''x.t'', card_number, false)) FROM orders WHERE id = 1')",
		"SELECT current_setting('x.t')")
	t.Logf("ts_stat: %q", out)
	if strings.Count(out, "volatile function") != 1 {
		t.Errorf("ts_stat not refused: %q", out)
	}
}

// The error of a Bind is withheld by the request at the head of the
// gateway's queue: Bind itself is not queued. Bind plans the statement,
// and the planner runs an immutable function of constants (here a user
// function reading orders, which makes the statement touch). A Bind
// followed by Execute has the gateway's Describe at the head (withheld);
// a Bind followed by Sync has the Sync there, and a Bind followed by a
// Bind of a portal seen has the gateway's own Close there: neither
// touches, and the text arrives.
func TestMaskAttack2BindErrorNotWithheld(t *testing.T) {
	e := maskEnv(t, "")
	e.pg.Exec(t, e.db, `CREATE FUNCTION card_of(i int) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT card_number FROM orders WHERE id = i'`)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Name: "s", Query: "SELECT card_of(1)::int AS c"}, &pgproto3.Sync{})
	first := r.send(1, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	second := r.send(1, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("%s\nfirst Bind:\n%s\nsecond Bind:\n%s", out, first, second)
	noLeak(t, "first Bind's error", first)
	noLeak(t, "second Bind's error (the gateway's Close at the head)", second)
	alone := r.send(1, &pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "s"}, &pgproto3.Sync{})
	t.Logf("Bind, Sync:\n%s", alone)
	noLeak(t, "Bind, Sync error (the Sync at the head)", alone)
	beforeRebind := r.send(1, &pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "s"},
		&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("Bind, Bind of a portal seen:\n%s", beforeRebind)
	noLeak(t, "Bind error before a rebind (the gateway's Close at the head)", beforeRebind)
}
