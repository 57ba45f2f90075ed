package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// simpleConnect connects through the gateway using only the simple query
// protocol, so that the client itself leaves no prepared statements.
func (e *env) simpleConnect(t *testing.T, token string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), e.dsn(token, "disable")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func backendPID(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var pid int
	if err := c.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitIdle waits until the gateway keeps n idle upstream connections.
func (e *env) waitIdle(t *testing.T, n int) {
	t.Helper()
	if !testenv.Poll(10*time.Second, func() bool { return e.gw.IdleUpstreams() == n }) {
		t.Fatalf("want %d idle upstream connections, have %d", n, e.gw.IdleUpstreams())
	}
}

// TestUpstreamReuseResetsSession: a backend whose client said goodbye
// while idle serves the next session with the same login, and nothing the
// first session changed survives: role, settings, temporary tables,
// prepared statements, LISTEN, advisory locks.
func TestUpstreamReuseResetsSession(t *testing.T) {
	e := newEnv(t)
	e.pg.Exec(t, e.db, fmt.Sprintf("GRANT %s TO %s", e.reader, e.writer))
	c := e.simpleConnect(t, "write-token")
	pid := backendPID(t, c)
	for _, q := range []string{
		"SET search_path = pg_catalog",
		"SET application_name = 'first-session'",
		"CREATE TEMP TABLE scratch (x int)",
		"PREPARE left_over AS SELECT 1",
		"LISTEN left_over",
		"SELECT pg_advisory_lock(42)",
		"SET ROLE " + e.reader,
	} {
		if _, err := c.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(t, 1)

	c2 := e.simpleConnect(t, "write-token")
	if got := backendPID(t, c2); got != pid {
		t.Fatalf("second session got backend %d, want the kept %d", got, pid)
	}
	e.waitIdle(t, 0)
	var user, sessionUser, searchPath, app string
	var temps, prepared, listening, locks int
	err := c2.QueryRow(t.Context(), `SELECT current_user, session_user, current_setting('search_path'),
		current_setting('application_name'),
		(SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'),
		(SELECT count(*) FROM pg_prepared_statements),
		(SELECT count(*) FROM pg_listening_channels()),
		(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')`).
		Scan(&user, &sessionUser, &searchPath, &app, &temps, &prepared, &listening, &locks)
	if err != nil {
		t.Fatal(err)
	}
	if user != e.writer || sessionUser != e.writer || searchPath != `"$user", public` || app != "" ||
		temps+prepared+listening+locks != 0 {
		t.Fatalf("state survived the reset: user=%s session_user=%s search_path=%s application_name=%q temp=%d prepared=%d listen=%d locks=%d",
			user, sessionUser, searchPath, app, temps, prepared, listening, locks)
	}
	if _, err := c2.Exec(t.Context(), "INSERT INTO items VALUES (50, 'fifty')"); err != nil {
		t.Fatalf("write on the reused backend: %v", err)
	}
	started := e.sink.Find("session.started", "")
	if n := len(started); n != 2 || detail(started[0], "upstream_reused") != nil ||
		detail(started[1], "upstream_reused") != true || detail(started[1], "upstream_pid") != float64(pid) {
		t.Fatalf("session.started events: %d, last %s", n, started[n-1].Details)
	}
}

// TestUpstreamReuseKeepsReadOnly: a read-only session never gets a backend
// kept from a read-write one with the same brokered role, nor the reverse.
func TestUpstreamReuseKeepsReadOnly(t *testing.T) {
	e := newEnv(t)
	e.target("read-token", func(tg *Target) {
		tg.UpstreamUser, tg.UpstreamPassword = e.writer, e.targets["write-token"].UpstreamPassword
	})
	w := e.simpleConnect(t, "write-token")
	wpid := backendPID(t, w)
	w.Close(t.Context())
	e.waitIdle(t, 1)

	r := e.simpleConnect(t, "read-token")
	if backendPID(t, r) == wpid {
		t.Fatal("read-only session got the read-write backend")
	}
	_, err := r.Exec(t.Context(), "INSERT INTO items VALUES (60, 'sixty')")
	if pgCode(err) != "25006" {
		t.Fatalf("write in a read-only session: %v", err)
	}
	if _, err := r.Exec(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	r.Close(t.Context())
	e.waitIdle(t, 2)

	w2 := e.simpleConnect(t, "write-token")
	if backendPID(t, w2) != wpid {
		t.Fatal("read-write session did not get its kept backend")
	}
	if _, err := w2.Exec(t.Context(), "INSERT INTO items VALUES (61, 'sixty-one')"); err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamNotReused: backends are closed, not kept, after a session
// that ended inside a transaction, without Terminate, or by a kill; a kept
// backend that went away meanwhile is skipped; UpstreamIdle < 0 keeps none.
func TestUpstreamNotReused(t *testing.T) {
	e := newEnv(t)
	closeWith := map[string]func(t *testing.T, c *pgx.Conn){
		"open transaction": func(t *testing.T, c *pgx.Conn) {
			if _, err := c.Exec(t.Context(), "BEGIN"); err != nil {
				t.Fatal(err)
			}
			c.Close(t.Context())
		},
		"no terminate": func(t *testing.T, c *pgx.Conn) { c.PgConn().Conn().Close() },
		// Parse/Bind/Execute/Flush without Sync: the backend is inside an
		// implicit transaction; its work must be rolled back, not reset
		// into the next session.
		"unsynced pipeline": func(t *testing.T, c *pgx.Conn) {
			fe := c.PgConn().Frontend()
			fe.Send(&pgproto3.Parse{Query: "INSERT INTO items VALUES (70, 'seventy')"})
			fe.Send(&pgproto3.Bind{})
			fe.Send(&pgproto3.Execute{})
			fe.Send(&pgproto3.Flush{})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			for {
				msg, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := msg.(*pgproto3.CommandComplete); ok {
					break
				}
			}
			c.Close(t.Context())
		},
		"killed": func(t *testing.T, c *pgx.Conn) {
			if n := e.gw.CloseGrant("gr_write", airlock.EndGrantRevoked); n != 1 {
				t.Fatalf("closed %d sessions", n)
			}
			_, _ = c.Exec(t.Context(), "SELECT 1")
		},
	}
	for name, end := range closeWith {
		t.Run(name, func(t *testing.T) {
			c := e.simpleConnect(t, "write-token")
			backendPID(t, c)
			e.waitSessions(t, 1)
			end(t, c)
			e.waitSessions(t, 0)
			if n := e.gw.IdleUpstreams(); n != 0 {
				t.Fatalf("%d upstream connections kept", n)
			}
		})
	}
	c := e.simpleConnect(t, "write-token")
	var n int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM items WHERE id = 70").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the unsynced insert survived: %d %v", n, err)
	}
	c.Close(t.Context())
	e.waitIdle(t, 1)
	e.gw.pool.drain(e.targets["write-token"].UpstreamAddr)
	t.Run("backend gone", func(t *testing.T) {
		c := e.simpleConnect(t, "write-token")
		pid := backendPID(t, c)
		c.Close(t.Context())
		e.waitIdle(t, 1)
		admin, err := pgx.Connect(t.Context(), e.pg.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		exited := testenv.Poll(10*time.Second, func() bool {
			var n int
			if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 0
		})
		if !exited {
			t.Fatal("backend did not exit")
		}
		// The kept connection now holds a FATAL message and EOF: the next
		// session gets a fresh backend instead.
		c2 := e.simpleConnect(t, "write-token")
		if got := backendPID(t, c2); got == pid {
			t.Fatal("a terminated backend was handed out")
		}
		if e.gw.IdleUpstreams() != 0 {
			t.Fatal("the dead connection is still kept")
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.UpstreamLifetime = time.Nanosecond })
		c := e.simpleConnect(t, "write-token")
		backendPID(t, c)
		c.Close(t.Context())
		e.waitSessions(t, 0)
		if e.gw.IdleUpstreams() != 0 {
			t.Fatal("a connection past its lifetime was kept")
		}
	})
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.UpstreamIdle = -1 })
		c := e.simpleConnect(t, "write-token")
		pid := backendPID(t, c)
		c.Close(t.Context())
		e.waitSessions(t, 0)
		c2 := e.simpleConnect(t, "write-token")
		if backendPID(t, c2) == pid || e.gw.IdleUpstreams() != 0 {
			t.Fatal("upstream kept with UpstreamIdle < 0")
		}
	})
}

// FuzzUpstreamReset feeds arbitrary server bytes as the reply to DISCARD
// ALL: reset must end with nil only for a complete, successful reply that
// leaves the backend idle, and never panic or hang.
func FuzzUpstreamReset(f *testing.F) {
	msg := func(typ byte, body string) string {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return string(append(b, body...))
	}
	f.Add([]byte(msg('S', "application_name\x00\x00") + msg('C', "DISCARD ALL\x00") + msg('Z', "I")))
	f.Add([]byte(msg('N', "SNOTICE\x00Mhi\x00\x00") + msg('C', "DISCARD ALL\x00") + msg('Z', "T")))
	f.Add([]byte(msg('E', "SERROR\x00C25001\x00Mno\x00\x00") + msg('Z', "E")))
	f.Add([]byte(msg('Z', "I")))
	f.Add([]byte{'C', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		cc, sc := net.Pipe()
		defer cc.Close()
		go func() { _, _ = io.Copy(io.Discard, sc) }()
		go func() { _, _ = sc.Write(data); sc.Close() }()
		up := &upstream{conn: cc, r: bufio.NewReaderSize(cc, readBufSize), params: map[string]string{}}
		err := reset(up, 5*time.Second)
		if err == nil && (!bytes.Contains(data, []byte(msg('C', "DISCARD ALL\x00"))) || !bytes.Contains(data, []byte(msg('Z', "I")))) {
			t.Fatalf("reset accepted %q", data)
		}
	})
}

// TestUpstreamSlotsGiveWay: kept backends hold connection slots; when the
// upstream refuses a login for lack of them (53300, here the role's
// CONNECTION LIMIT 1), the kept ones are closed and the login succeeds.
func TestUpstreamSlotsGiveWay(t *testing.T) {
	e := newEnv(t)
	e.pg.Exec(t, e.db, "ALTER ROLE "+e.writer+" CONNECTION LIMIT 1")
	c := e.simpleConnect(t, "write-token")
	backendPID(t, c)
	c.Close(t.Context())
	e.waitIdle(t, 1)
	// Another login of the same role (a different application_name).
	c2, err := pgx.Connect(t.Context(), e.dsn("write-token", "disable")+"&application_name=other-tool")
	if err != nil {
		t.Fatalf("login refused while a kept backend held the only slot: %v", err)
	}
	defer c2.Close(context.Background())
	backendPID(t, c2)
	if e.gw.IdleUpstreams() != 0 {
		t.Fatal("the kept backend was not given up")
	}
}
