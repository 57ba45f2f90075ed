package stream_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit/stream"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestRsyslogKilledMidStream streams to a real rsyslogd over TCP and over
// TLS (gtls, the throwaway CA) while events keep being appended, kills the
// receiver with SIGKILL mid-stream, restarts it, and checks that every seq
// of the log arrived (duplicates allowed), and that the outage raised one
// audit.stream.failing alert and one audit.stream.recovered.
func TestRsyslogKilledMidStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tcp", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rs := testenv.StartRsyslog(t)
			w := newWorld(t)
			addr, extra := rs.TCPAddr, ""
			if tc.tls {
				addr, extra = rs.TLSAddr, fmt.Sprintf("\n    tls: true\n    ca_file: %s", rs.CAFile)
			}
			w.appendN(t, 2000, 4) // a backlog to start with
			w.start(t, parse(t, fmt.Sprintf(`
sinks:
  - name: siem
    type: syslog
    format: ocsf
    address: %s
    settle: 300ms
    alert_after: 1ms%s
`, addr, extra)), "node-a", nil)

			// Keep appending until told to stop, so the kill lands mid-stream.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := w.log.Append(context.Background(), testEvent(i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			w.waitCursor(t, "siem", 1500, time.Minute)
			rs.Kill(t)
			killedAt := w.head(t)
			rs.Restart(t)
			// Delivering again: the cursor passes what was appended by the kill.
			w.waitCursor(t, "siem", killedAt+500, time.Minute)
			close(stop)
			wg.Wait()
			// Everything, the alerts included, gets delivered.
			if !testenv.Poll(time.Minute, func() bool {
				a := w.actions(t)
				return a["audit.stream.recovered"] >= 1 && w.cursor(t, "siem") == w.head(t)
			}) {
				t.Fatalf("cursor %d, head %d, alerts %v: not all delivered", w.cursor(t, "siem"), w.head(t), w.actions(t))
			}
			head := w.head(t)
			var seen map[int64]int
			var bad []string
			testenv.Poll(30*time.Second, func() bool {
				seen, bad = rs.Seqs(t)
				return len(seen) >= int(head)
			})
			if len(bad) > 0 {
				t.Fatalf("%d lines without a seq, e.g. %q", len(bad), bad[0])
			}
			dups := 0
			for seq := int64(1); seq <= head; seq++ {
				if seen[seq] == 0 {
					t.Fatalf("seq %d of %d never arrived (killed at head %d)", seq, head, killedAt)
				}
				dups += seen[seq] - 1
			}
			a := w.actions(t)
			if a["audit.stream.failing"] != 1 || a["audit.stream.recovered"] != 1 {
				t.Fatalf("alerts %v; want one audit.stream.failing and one audit.stream.recovered for one outage", a)
			}
			t.Logf("%s: %d events, all arrived; %d duplicates after the kill at head %d", tc.name, head, dups, killedAt)
		})
	}
}

// TestSyslogTLSRefusesUnknownCA: a TLS sink that does not trust the
// receiver's CA sends nothing.
func TestSyslogTLSRefusesUnknownCA(t *testing.T) {
	rs := testenv.StartRsyslog(t)
	ca := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(ca, testenv.UnrelatedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	c := parse(t, fmt.Sprintf("sinks:\n  - {name: s, type: syslog, address: %q, tls: true, ca_file: %q}\n", rs.TLSAddr, ca))
	s, err := stream.NewSink(c.Sinks[0], stream.SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Send(t.Context(), []airlock.Event{{Seq: 1, Action: "test.append", Outcome: "success"}})
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("Send to a receiver of an unknown CA: %v; want x509.UnknownAuthorityError", err)
	}
}
