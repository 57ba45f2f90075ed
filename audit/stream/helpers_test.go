package stream_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/audit/stream"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/sqlite"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// storeDB is what the tests need of a store.
type storeDB interface {
	stream.Store
	airlock.AuditStore
}

// world is a real store and a real audit log on it.
type world struct {
	store storeDB
	log   *audit.Log
}

// openLog opens an audit log on db, closed when the test ends.
func openLog(t testing.TB, db storeDB) *audit.Log {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), db, audit.Options{Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// newPostgresWorlds returns n servers' worlds on one fresh PostgreSQL
// database: each its own store connection and audit log, like replicas.
func newPostgresWorlds(t testing.TB, n int) []*world {
	t.Helper()
	pg := testenv.Postgres(t)
	name := pg.NewDatabase(t)
	var out []*world
	for range n {
		db, err := postgres.Open(context.Background(), pg.DSN(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		out = append(out, &world{store: db, log: openLog(t, db)})
	}
	return out
}

func newWorld(t testing.TB) *world {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &world{store: db, log: openLog(t, db)}
}

// appendN appends n events from w goroutines and waits until all are durable.
func (w *world) appendN(t testing.TB, n, writers int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rs []*audit.Receipt
			for i := g; i < n; i += writers {
				rs = append(rs, w.log.Submit(testEvent(i)))
			}
			w.log.Flush()
			for _, r := range rs {
				if _, err := r.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func testEvent(i int) airlock.Event {
	actions := []string{"login.succeeded", "user.created", "db.query", "grant.created", "mfa.verify_failed"}
	e := airlock.Event{Actor: airlock.Actor{ID: "us_alice", Name: "alice"}, Action: actions[i%len(actions)],
		Resource: "prod-db", SourceAddr: "192.0.2.7:50412", Outcome: airlock.OutcomeSuccess,
		Details: airlock.EventDetails("query", fmt.Sprintf("SELECT %d FROM accounts WHERE id = $1", i), "n", i)}
	if i%7 == 0 {
		e.Outcome = airlock.OutcomeDenied
	}
	return e
}

func (w *world) head(t testing.TB) int64 {
	t.Helper()
	h, err := w.store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// cursor returns sink's stored cursor (0 before the first lease).
func (w *world) cursor(t testing.TB, sink string) int64 {
	t.Helper()
	cs, err := w.store.StreamCursors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Sink == sink {
			return c.Seq
		}
	}
	return 0
}

// waitCursor waits until sink's cursor reaches seq.
func (w *world) waitCursor(t testing.TB, sink string, seq int64, timeout time.Duration) {
	t.Helper()
	if !testenv.Poll(timeout, func() bool { return w.cursor(t, sink) >= seq }) {
		t.Fatalf("sink %s: cursor %d did not reach %d within %s", sink, w.cursor(t, sink), seq, timeout)
	}
}

// start starts streams for c on w, stopped when the test ends.
func (w *world) start(t testing.TB, c *stream.Config, holder string, logs *bytes.Buffer) *stream.Streams {
	t.Helper()
	var lg *slog.Logger
	if logs != nil {
		lg = slog.New(slog.NewTextHandler(&lockedWriter{b: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ss, err := stream.Start(context.Background(), c, stream.Options{Store: w.store, Auditor: w.log, Holder: holder, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	return ss
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func parse(t testing.TB, yaml string) *stream.Config {
	t.Helper()
	c, err := stream.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// actions counts the events of the log with each action.
func (w *world) actions(t testing.TB) map[string]int {
	t.Helper()
	evs, err := w.store.ListEvents(context.Background(), airlock.EventFilter{Action: "audit.stream.*"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range evs {
		out[e.Action]++
	}
	return out
}
