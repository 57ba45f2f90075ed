package stream_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// benchStream appends n events, then measures the time from starting the
// stream until the sink's cursor reaches the head, as events/s.
func benchStream(b *testing.B, n int, sinkYAML string) *world {
	w := newWorld(b)
	w.appendN(b, n, 8)
	head := w.head(b)
	b.ResetTimer()
	t0 := time.Now()
	w.start(b, parse(b, sinkYAML), "bench", &bytes.Buffer{}) // logs kept out of the results
	if !testenv.PollEvery(time.Millisecond, 10*time.Minute, func() bool { return w.cursor(b, "s") >= head }) {
		b.Fatalf("cursor %d did not reach %d", w.cursor(b, "s"), head)
	}
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(head)/el.Seconds(), "events/s")
	return w
}

// BenchmarkSyslogRsyslog streams to a real rsyslogd over TCP (and TLS):
// go test -run '^$' -bench Rsyslog -benchtime 1x ./audit/stream
func BenchmarkSyslogRsyslog(b *testing.B) {
	for _, tc := range []struct{ name, extra string }{{"tcp", ""}, {"tls", "tls"}} {
		b.Run(tc.name, func(b *testing.B) {
			rs := testenv.StartRsyslog(b)
			addr, extra := rs.TCPAddr, ""
			if tc.extra != "" {
				addr, extra = rs.TLSAddr, fmt.Sprintf(", tls: true, ca_file: %s", rs.CAFile)
			}
			w := benchStream(b, 200000, fmt.Sprintf("sinks:\n  - {name: s, type: syslog, format: airlock, address: %s, settle: 1ms, batch: 5000%s}\n", addr, extra))
			// And rsyslog really has them all.
			head := w.head(b)
			if !testenv.Poll(time.Minute, func() bool { seen, _ := rs.Seqs(b); return len(seen) >= int(head) }) {
				seen, _ := rs.Seqs(b)
				b.Fatalf("rsyslog received %d distinct seqs of %d", len(seen), head)
			}
		})
	}
}

// BenchmarkFile streams to a JSON Lines file (fsync per batch).
func BenchmarkFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.jsonl")
	_ = benchStream(b, 200000, fmt.Sprintf("sinks:\n  - {name: s, type: file, path: %s, batch: 5000}\n", path))
}
