package postgres_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

func TestSchemaVersion(t *testing.T) {
	db, _, _ := openFresh(t)
	v, err := db.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != postgres.SchemaVersion {
		t.Fatalf("SchemaVersion = %d, want %d", v, postgres.SchemaVersion)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	db, pg, name := openFresh(t)
	db.Close()
	pg.Exec(t, name, fmt.Sprintf("INSERT INTO schema_migrations (version) VALUES (%d)", postgres.SchemaVersion+1))
	_, err := postgres.Open(t.Context(), pg.DSN(name))
	if !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("Open = %v, want EINVALID", err)
	}
	want := fmt.Sprintf("store schema version %d is newer than this airlock (%d); upgrade airlock", postgres.SchemaVersion+1, postgres.SchemaVersion)
	if airlock.ErrorMessage(err) != want {
		t.Fatalf("message = %q, want %q", airlock.ErrorMessage(err), want)
	}
}

// TestOpenConcurrentMigrations pins that replicas starting at once on an
// empty database all come up (the advisory lock serialises migrations).
func TestOpenConcurrentMigrations(t *testing.T) {
	pg := testenv.Postgres(t)
	name := pg.NewDatabase(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := postgres.Open(t.Context(), pg.DSN(name))
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	// A port nothing listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://airlock:s3cret-pw@127.0.0.1:"+strconv.Itoa(port)+"/airlock?sslmode=disable")
	if !airlock.IsCode(err, airlock.EUNAVAILABLE) {
		t.Fatalf("Open = %v, want EUNAVAILABLE", err)
	}
	msg := airlock.ErrorMessage(err)
	if !strings.Contains(msg, "127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(msg, "check") {
		t.Fatalf("message %q does not name host:port and say what to check", msg)
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error leaks the password: %v", err)
	}
	_, err = postgres.Open(ctx, "postgres://airlock:s3cret-pw@127.0.0.1:notaport/x")
	if !airlock.IsCode(err, airlock.EINVALID) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("bad DSN: %v, want EINVALID without the password", err)
	}
}

// The two-process test: the test binary re-executes itself with
// AIRLOCK_STORETEST_APPEND_DSN set; each child appends batches to the
// same database while the parent appends too, then the parent checks the
// chain is one contiguous, linked sequence.

const appendEnv = "AIRLOCK_STORETEST_APPEND_DSN"

func linkHash(seq int64, prev string) string {
	p := prev
	if len(p) > 12 {
		p = p[:12]
	}
	return fmt.Sprintf("%012x-%s", seq, p)
}

func appendBatches(ctx context.Context, db *postgres.DB, who string, batches, size int) error {
	for range batches {
		err := db.AppendEvents(ctx, func(h airlock.AuditHead) ([]airlock.Event, error) {
			evs := make([]airlock.Event, size)
			prev := h.Hash
			for i := range evs {
				seq := h.Seq + 1 + int64(i)
				evs[i] = airlock.Event{Seq: seq, Time: time.Now().UTC().Truncate(time.Microsecond), Actor: airlock.Actor{ID: who, Name: who},
					Action: "test.append", Outcome: airlock.OutcomeSuccess, PrevHash: prev, Hash: linkHash(seq, prev)}
				prev = evs[i].Hash
			}
			return evs, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// TestHelperProcess is not a real test: it is the child of
// TestAppendTwoProcesses.
func TestHelperProcess(t *testing.T) {
	dsn := os.Getenv(appendEnv)
	if dsn == "" {
		t.Skip("helper process for TestAppendTwoProcesses")
	}
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := appendBatches(t.Context(), db, "child-"+strconv.Itoa(os.Getpid()), 40, 25); err != nil {
		t.Fatal(err)
	}
}

func TestAppendTwoProcesses(t *testing.T) {
	if os.Getenv(appendEnv) != "" {
		t.Skip("in helper process")
	}
	db, pg, name := openFresh(t)
	const children = 2
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range children {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), appendEnv+"="+pg.DSN(name))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	parentErr := appendBatches(t.Context(), db, "parent", 40, 25)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
	}
	if parentErr != nil {
		t.Fatal(parentErr)
	}

	const want = (children + 1) * 40 * 25
	prev, n := "", int64(0)
	writers := map[string]int{}
	err := db.ScanEvents(t.Context(), 0, func(e airlock.Event) error {
		n++
		if e.Seq != n {
			return fmt.Errorf("seq %d at position %d: chain has a gap or duplicate", e.Seq, n)
		}
		if e.PrevHash != prev || e.Hash != linkHash(e.Seq, prev) {
			return fmt.Errorf("chain broken at seq %d", e.Seq)
		}
		prev = e.Hash
		writers[e.Actor.Name]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("log has %d events, want %d", n, want)
	}
	if len(writers) != children+1 {
		t.Fatalf("events from %d writers, want %d: %v", len(writers), children+1, writers)
	}
	h, err := db.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq != want || h.Hash != prev {
		t.Fatalf("head = %+v, want seq %d hash %s", h, want, prev)
	}
}
