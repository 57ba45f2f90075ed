package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// PrivatePostgres starts a throwaway PostgreSQL cluster of t's own, for
// tests that stop and restart it (fault tests): the shared cluster of
// Postgres must never go down under other tests. It is stopped and
// removed when t ends (or, if the test process dies, by the watchdog).
// Like Postgres, it skips when the binaries are absent, unless CI is set.
func PrivatePostgres(t testing.TB) *PG {
	t.Helper()
	p, err := startPostgres()
	if err != nil {
		if pgMissing && os.Getenv("CI") == "" {
			t.Skipf("testenv: %v", err)
		}
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		startedMu.Lock()
		started = slices.DeleteFunc(started, func(x *PG) bool { return x == p })
		startedMu.Unlock()
		p.stop()
	})
	return p
}

// Crash stops the cluster the way a crash does (pg_ctl stop -m immediate:
// no checkpoint, clients cut at once). Start brings it back.
func (p *PG) Crash(t testing.TB) {
	t.Helper()
	if out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "stop", "-D", filepath.Join(p.Dir, "data"), "-m", "immediate", "-s", "-w"); err != nil {
		t.Fatalf("testenv: pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

// Start starts a stopped cluster again on the same port and waits until
// it accepts connections (crash recovery included).
func (p *PG) Start(t testing.TB) {
	t.Helper()
	logFile := filepath.Join(p.Dir, "postgres.log")
	if out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "start", "-D", filepath.Join(p.Dir, "data"), "-l", logFile, "-w",
		"-t", strconv.Itoa(int(startTimeout.Seconds())), "-s"); err != nil {
		t.Fatalf("testenv: pg_ctl start: %v\n%s\n--- tail of %s ---\n%s", err, out, logFile, tail(logFile, 40))
	}
	if err := p.waitReady(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
