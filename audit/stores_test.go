package audit

import (
	"bytes"
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
	"github.com/airlockhq/airlock/internal/eventblock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/airlockhq/airlock/sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for tampering
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

// blockTamper edits a store's event blocks directly, as an attacker with
// write access to the database would: it decodes the blocks,
// changes events and writes the blocks back (the checkpoints table is
// edited by SQL).
type blockTamper struct {
	airlock.AuditStore
	raw      *sql.DB
	dollarPH bool // PostgreSQL placeholders ($1) instead of ?
}

func sqliteTamper(t *testing.T) tamperStore {
	db, raw := openSQLite(t)
	return &blockTamper{AuditStore: db, raw: raw}
}

func postgresTamper(t *testing.T) tamperStore {
	db, pg, name := openPostgres(t)
	raw, err := sql.Open("pgx", pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &blockTamper{AuditStore: db, raw: raw, dollarPH: true}
}

// exec runs q with ? placeholders on the raw connection.
func (s *blockTamper) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if s.dollarPH {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := s.raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// edit rewrites every stored block after fn changed their events; a block
// left empty is deleted.
func (s *blockTamper) edit(t *testing.T, fn func(blocks [][]airlock.Event)) {
	t.Helper()
	rows, err := s.raw.Query(`SELECT first_seq, data FROM event_blocks ORDER BY first_seq`)
	if err != nil {
		t.Fatal(err)
	}
	var firsts []int64
	var blocks [][]airlock.Event
	for rows.Next() {
		var first int64
		var data []byte
		if err := rows.Scan(&first, &data); err != nil {
			t.Fatal(err)
		}
		evs, err := eventblock.Decode(nil, data)
		if err != nil {
			t.Fatal(err)
		}
		firsts, blocks = append(firsts, first), append(blocks, evs)
	}
	rows.Close()
	fn(blocks)
	for i, evs := range blocks {
		if len(evs) == 0 {
			s.exec(t, `DELETE FROM event_blocks WHERE first_seq = ?`, firsts[i])
		} else {
			s.exec(t, `UPDATE event_blocks SET data = ? WHERE first_seq = ?`, eventblock.Append(nil, evs), firsts[i])
		}
	}
}

// each calls fn with a pointer to every stored event.
func each(blocks [][]airlock.Event, fn func(e *airlock.Event)) {
	for _, b := range blocks {
		for i := range b {
			fn(&b[i])
		}
	}
}

func (s *blockTamper) setAction(t *testing.T, seq int64, action string) {
	s.edit(t, func(blocks [][]airlock.Event) {
		each(blocks, func(e *airlock.Event) {
			if e.Seq == seq {
				e.Action = action
			}
		})
	})
}

func (s *blockTamper) deleteEvent(t *testing.T, seq int64) {
	s.truncate(t, func(e *airlock.Event) bool { return e.Seq == seq })
}

func (s *blockTamper) truncateAfter(t *testing.T, seq int64) {
	s.truncate(t, func(e *airlock.Event) bool { return e.Seq > seq })
}

func (s *blockTamper) truncate(t *testing.T, drop func(e *airlock.Event) bool) {
	s.edit(t, func(blocks [][]airlock.Event) {
		for i, b := range blocks {
			kept := b[:0]
			for _, e := range b {
				if !drop(&e) {
					kept = append(kept, e)
				}
			}
			blocks[i] = kept
		}
	})
}

func (s *blockTamper) swapContents(t *testing.T, a, b int64) {
	s.edit(t, func(blocks [][]airlock.Event) {
		var ea, eb *airlock.Event
		each(blocks, func(e *airlock.Event) {
			switch e.Seq {
			case a:
				ea = e
			case b:
				eb = e
			}
		})
		*ea, *eb = *eb, *ea
		ea.Seq, eb.Seq = a, b
	})
}

func (s *blockTamper) replace(t *testing.T, r airlock.Event) {
	s.edit(t, func(blocks [][]airlock.Event) {
		each(blocks, func(e *airlock.Event) {
			if e.Seq == r.Seq {
				e.Outcome, e.Details, e.PrevHash, e.Hash = r.Outcome, r.Details, r.PrevHash, r.Hash
			}
		})
	})
}

func (s *blockTamper) setSignature(t *testing.T, seq int64, sig string) {
	s.exec(t, `UPDATE checkpoints SET signature = ? WHERE seq = ?`, sig, seq)
}

func (s *blockTamper) event(t *testing.T, seq int64) airlock.Event {
	return readEvent(t, s, seq)
}

func readEvent(t *testing.T, s airlock.AuditStore, seq int64) airlock.Event {
	evs, err := s.ListEvents(context.Background(), airlock.EventFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Seq != seq {
		t.Fatalf("read event %d: %v %v", seq, evs, err)
	}
	return evs[0]
}

// TestVerifyCorruptBlock damages the bytes of one stored block so that it
// no longer decodes: verify names the block's first seq as modified
// instead of failing with a read error.
func TestVerifyCorruptBlock(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) tamperStore{"sqlite": sqliteTamper, "postgres": postgresTamper} {
		t.Run(name, func(t *testing.T) {
			s := open(t).(*blockTamper)
			fillLogBatch(t, s, 3000, 1000, 1024)
			var first int64
			if err := s.raw.QueryRow(`SELECT first_seq FROM event_blocks WHERE first_seq > 1 ORDER BY first_seq LIMIT 1`).Scan(&first); err != nil {
				t.Fatal(err)
			}
			s.exec(t, `UPDATE event_blocks SET data = substr(data, 1, length(data) - 7) WHERE first_seq = ?`, first)
			rep, err := Verify(t.Context(), s, testPub())
			checkReport(t, rep, err, ProblemModified, first)
			if !strings.Contains(rep.Message, "cannot be decoded") {
				t.Fatalf("message = %q", rep.Message)
			}
		})
	}
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

// TestVerifyHeadBeyondStoredEvents deletes the events after the last
// checkpoint (and the checkpoints that named them) from a real store, as
// issue 13 found: the store's own head still names the last seq, so verify
// reports the deletion instead of OK.
func TestVerifyHeadBeyondStoredEvents(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) tamperStore{"sqlite": sqliteTamper, "postgres": postgresTamper} {
		t.Run(name, func(t *testing.T) {
			s := open(t).(*blockTamper)
			fillLogBatch(t, s, 189, 50, 20)
			s.exec(t, `DELETE FROM checkpoints WHERE seq > ?`, 185)
			s.truncateAfter(t, 185)
			rep, err := Verify(t.Context(), s, testPub())
			checkReport(t, rep, err, ProblemTruncated, 186)
			if !strings.Contains(rep.Message, "189") || !strings.Contains(rep.Message, "186..189") {
				t.Fatalf("message = %q, want it to name the head (189) and the deleted seqs", rep.Message)
			}
		})
	}
}

// TestVerifyExportWithoutCheckpoint: an export that carries no checkpoint
// verifies, with a warning that nothing proves its end.
func TestVerifyExportWithoutCheckpoint(t *testing.T) {
	db, raw := openSQLite(t)
	fillLogBatch(t, db, 30, 1000, 10)
	exp := exportBytes(t, db, airlock.EventFilter{})
	rep, err := VerifyExport(strings.NewReader(string(exp)), testPub())
	checkReport(t, rep, err, "", 0)
	if len(rep.Warnings) != 0 {
		t.Fatalf("an export with its checkpoint warns: %q", rep.Warnings)
	}
	if _, err := raw.Exec(`DELETE FROM checkpoints`); err != nil {
		t.Fatal(err)
	}
	exp = exportBytes(t, db, airlock.EventFilter{})
	rep, err = VerifyExport(strings.NewReader(string(exp)), testPub())
	checkReport(t, rep, err, "", 0)
	if len(rep.Warnings) != 1 || rep.Warnings[0] != WarnNoCheckpoint {
		t.Fatalf("warnings = %q, want the no-checkpoint warning", rep.Warnings)
	}
}

// TestWitnessCatchesTruncatedStore: on a real store, the events after a
// checkpoint are deleted with the checkpoints that named them and the
// head row is moved back to match, so the store verifies on its own; the
// file witness, which holds the newest checkpoint, shows the truncation.
func TestWitnessCatchesTruncatedStore(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) tamperStore{"sqlite": sqliteTamper, "postgres": postgresTamper} {
		t.Run(name, func(t *testing.T) {
			s := open(t).(*blockTamper)
			path := filepath.Join(t.TempDir(), "witness.jsonl")
			l := openLog(t, s, Options{CheckpointEvery: 50, MaxBatch: 20, Witnesses: []Witness{&FileWitness{Path: path}}})
			for i := range 189 {
				if _, err := l.Append(context.Background(), sampleEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			newest, n, err := ReadWitnessed(f, testPub())
			f.Close()
			if err != nil || newest.Seq != 189 || n < 4 {
				t.Fatalf("witness: newest %+v of %d, %v", newest, n, err)
			}
			evs, err := s.ListEvents(t.Context(), airlock.EventFilter{AfterSeq: 149, Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatal(err)
			}
			s.exec(t, `DELETE FROM checkpoints WHERE seq > ?`, 150)
			s.truncateAfter(t, 150)
			s.exec(t, `UPDATE audit_head SET seq = ?, hash = ?, tree_size = ?`, 150, evs[0].Hash, 150)
			rep, err := Verify(t.Context(), s, testPub())
			checkReport(t, rep, err, "", 0)
			rep, err = VerifyExportWitnessed(bytes.NewReader(exportBytes(t, s, airlock.EventFilter{})), testPub(), []airlock.Checkpoint{newest})
			checkReport(t, rep, err, ProblemTruncated, 151)
		})
	}
}
