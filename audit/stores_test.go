package audit

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/sqlite"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// openSQLite opens a fresh SQLite store and a second, raw database/sql
// handle on the same file for tampering.
func openSQLite(t testing.TB) (*sqlite.DB, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "airlock.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

// openPostgres opens a store on a fresh database of the throwaway cluster.
func openPostgres(t testing.TB) (*postgres.DB, *testenv.PG, string) {
	t.Helper()
	pg := testenv.Postgres(t)
	name := pg.NewDatabase(t)
	db, err := postgres.Open(context.Background(), pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, pg, name
}

// sqlTamper edits a real store's tables directly, as an attacker with
// database access would.
type sqlTamper struct {
	airlock.AuditStore
	exec func(t *testing.T, query string)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (s *sqlTamper) setAction(t *testing.T, seq int64, action string) {
	s.exec(t, fmt.Sprintf("UPDATE events SET action = %s WHERE seq = %d", quote(action), seq))
}
func (s *sqlTamper) deleteEvent(t *testing.T, seq int64) {
	s.exec(t, fmt.Sprintf("DELETE FROM events WHERE seq = %d", seq))
}
func (s *sqlTamper) swapContents(t *testing.T, a, b int64) {
	s.exec(t, fmt.Sprintf("UPDATE events SET seq = -1 WHERE seq = %d", a))
	s.exec(t, fmt.Sprintf("UPDATE events SET seq = %d WHERE seq = %d", a, b))
	s.exec(t, fmt.Sprintf("UPDATE events SET seq = %d WHERE seq = -1", b))
}
func (s *sqlTamper) replace(t *testing.T, e airlock.Event) {
	s.exec(t, fmt.Sprintf("UPDATE events SET outcome = %s, details = %s, prev_hash = %s, hash = %s WHERE seq = %d",
		quote(e.Outcome), quote(string(e.Details)), quote(e.PrevHash), quote(e.Hash), e.Seq))
}
func (s *sqlTamper) truncateAfter(t *testing.T, seq int64) {
	s.exec(t, fmt.Sprintf("DELETE FROM events WHERE seq > %d", seq))
}
func (s *sqlTamper) setSignature(t *testing.T, seq int64, sig string) {
	s.exec(t, fmt.Sprintf("UPDATE checkpoints SET signature = %s WHERE seq = %d", quote(sig), seq))
}
func (s *sqlTamper) event(t *testing.T, seq int64) airlock.Event {
	evs, err := s.ListEvents(context.Background(), airlock.EventFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Seq != seq {
		t.Fatalf("read event %d: %v %v", seq, evs, err)
	}
	return evs[0]
}

func sqliteTamper(t *testing.T) tamperStore {
	db, raw := openSQLite(t)
	return &sqlTamper{AuditStore: db, exec: func(t *testing.T, q string) {
		t.Helper()
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}}
}

func postgresTamper(t *testing.T) tamperStore {
	db, pg, name := openPostgres(t)
	return &sqlTamper{AuditStore: db, exec: func(t *testing.T, q string) { t.Helper(); pg.Exec(t, name, q) }}
}

func TestVerifyDetectsTamperedRealStore(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { runStoreTamper(t, sqliteTamper) })
	t.Run("postgres", func(t *testing.T) { runStoreTamper(t, postgresTamper) })
}

// TestVerifyUntouchedSQLite verifies an untouched 100,000-event log online
// and offline. It keeps the full size under -race too (≈80 s here), so CI
// checks the size the issue names.
func TestVerifyUntouchedSQLite(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	db, _ := openSQLite(t)
	fillLogBatch(t, db, n, 1000, 4096)
	rep, err := Verify(t.Context(), db, testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != int64(n) || rep.Checkpoints == 0 {
		t.Fatalf("online report = %+v", rep)
	}
	rep, err = VerifyExport(strings.NewReader(string(exportBytes(t, db, airlock.EventFilter{}))), testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != int64(n) {
		t.Fatalf("offline report = %+v", rep)
	}
}

// TestAppendFailureSQLite closes the store under a running Log: appends
// fail closed and Healthy reports it.
func TestAppendFailureSQLite(t *testing.T) {
	db, _ := openSQLite(t)
	l := openLog(t, db, Options{})
	if _, err := l.Append(t.Context(), sampleEvent(1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := l.Append(t.Context(), sampleEvent(2)); airlock.ErrorCode(err) != airlock.EUNAVAILABLE {
		t.Fatalf("Append on a closed store = %v, want EUNAVAILABLE", err)
	}
	if err := l.Healthy(); airlock.ErrorCode(err) != airlock.EUNAVAILABLE {
		t.Fatalf("Healthy = %v", err)
	}
}

func TestConcurrentAppendsSQLite(t *testing.T) {
	db, _ := openSQLite(t)
	l := openLog(t, db, Options{CheckpointEvery: 1000})
	const writers, each = 64, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(context.Background(), sampleEvent(w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(t.Context(), db, testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != writers*each || rep.LastSeq != writers*each {
		t.Fatalf("report = %+v", rep)
	}
}

// TestTwoLogsOnePostgres runs two Logs on two connection pools against one
// database, as two replicas would: the chain stays one and verifies.
func TestTwoLogsOnePostgres(t *testing.T) {
	db1, pg, name := openPostgres(t)
	db2, err := postgres.Open(t.Context(), pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l1 := openLog(t, db1, Options{CheckpointEvery: 500})
	l2 := openLog(t, db2, Options{CheckpointEvery: 500})
	const writers, each = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		l := l1
		if w%2 == 1 {
			l = l2
		}
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(context.Background(), sampleEvent(w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, l := range []*Log{l1, l2} {
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(t.Context(), db1, testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != writers*each || rep.Checkpoints < 2 {
		t.Fatalf("report = %+v", rep)
	}
}

func benchAppendStores(b *testing.B, bench func(*testing.B, airlock.AuditStore)) {
	b.Run("sqlite", func(b *testing.B) {
		db, _ := openSQLite(b)
		bench(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		db, _, _ := openPostgres(b)
		bench(b, db)
	})
}

func BenchmarkVerifySQLite(b *testing.B) {
	db, _ := openSQLite(b)
	fillLogBatch(b, db, 100_000, 1000, 4096)
	benchVerify(b, db, 100_000)
}

// TestTwoProcessesOnePostgres re-executes this test binary twice; each
// child process appends to the same database through its own Log, as two
// airlock replicas would. The chain they leave behind must verify.
func TestTwoProcessesOnePostgres(t *testing.T) {
	if os.Getenv("AIRLOCK_AUDIT_CHILD_DSN") != "" {
		t.Skip("child process")
	}
	db, pg, name := openPostgres(t)
	const each = 400
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestAuditChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AIRLOCK_AUDIT_CHILD_DSN="+pg.DSN(name), fmt.Sprintf("AIRLOCK_AUDIT_CHILD_N=%d", each), fmt.Sprintf("AIRLOCK_AUDIT_CHILD_ID=%d", i))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("child %d output:\n%s", i, out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	rep, err := Verify(t.Context(), db, testPub())
	checkReport(t, rep, err, "", 0)
	if rep.Events != 2*each || rep.Checkpoints < 2 {
		t.Fatalf("report = %+v, want %d events and a checkpoint from each process", rep, 2*each)
	}
	evs, err := db.ListEvents(t.Context(), airlock.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byProc := map[string]int{}
	for _, e := range evs {
		byProc[e.Actor.ID]++
	}
	if byProc["proc0"] != each || byProc["proc1"] != each {
		t.Fatalf("events per process = %v", byProc)
	}
}

// TestAuditChildProcess is the body of a child of TestTwoProcessesOnePostgres.
func TestAuditChildProcess(t *testing.T) {
	dsn := os.Getenv("AIRLOCK_AUDIT_CHILD_DSN")
	if dsn == "" {
		t.Skip("only runs as a child of TestTwoProcessesOnePostgres")
	}
	n, _ := strconv.Atoi(os.Getenv("AIRLOCK_AUDIT_CHILD_N"))
	id := "proc" + os.Getenv("AIRLOCK_AUDIT_CHILD_ID")
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := openLog(t, db, Options{CheckpointEvery: 100})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				e := sampleEvent(i)
				e.Actor = airlock.Actor{ID: id, Name: id}
				if _, err := l.Append(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
