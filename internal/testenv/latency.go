package testenv

import (
	"slices"
	"testing"
	"time"
)

// ReportLatencies adds the p50 and p99 of ds (in ms) to b's results and
// sets ns/op to 0: for benchmarks whose figures are per-operation
// latencies measured inside the loop (the provisioning benchmarks).
func ReportLatencies(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
