package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/prometheus/client_golang/prometheus"
)

// cpuTime returns the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports events per wall-clock second and the CPU time spent
// per event (all goroutines, including the store's and PostgreSQL's client
// side; the server's CPU is not counted). On a shared, loaded machine the
// wall-clock rate understates capacity; cpu-µs/event does not.
func reportRates(b *testing.B, n int, elapsed, cpu0 time.Duration) {
	b.Helper()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	if cpu0 > 0 {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
	}
}

// reportBatches reports the mean number of events per store commit and
// the mean time one commit takes in the store.
func reportBatches(b *testing.B, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "airlock_audit_batch_size" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() > 0 {
				b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "events/commit")
			}
		}
		if mf.GetName() == "airlock_audit_append_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() > 0 {
				b.ReportMetric(1e6*h.GetSampleSum()/float64(h.GetSampleCount()), "µs/commit")
			}
		}
	}
}

func BenchmarkHash(b *testing.B) {
	e := sampleEvent(1)
	e.Time = time.Now()
	e.Seq, e.PrevHash = 1, Hash(e)
	var h hasher
	b.ReportAllocs()
	for b.Loop() {
		h.hexHash(&e)
	}
}

// benchAppend64 measures durable appends with 64 concurrent writers.
func benchAppend64(b *testing.B, store airlock.AuditStore) {
	reg := prometheus.NewRegistry()
	l, err := Open(context.Background(), store, Options{Signer: testKey, Logger: quietLogger(), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	const writers = 64
	var next atomic.Int64
	n := int64(b.N)
	ev := sampleEvent(1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= n {
				if _, err := l.Append(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportRates(b, b.N, elapsed, cpu0)
	reportBatches(b, reg)
}

// benchSubmit64 measures durable appends with 64 concurrent writers that
// pipeline like a gateway: each keeps up to window events in flight
// (Submit) and waits for the oldest receipt when the window is full. A
// synchronous Append is bound by 64 events per store commit (one fsync);
// pipelining lets batches grow to MaxBatch.
func benchSubmit64(b *testing.B, store airlock.AuditStore) {
	reg := prometheus.NewRegistry()
	l, err := Open(context.Background(), store, Options{Signer: testKey, Logger: quietLogger(), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	const writers, window = 64, 256
	var next atomic.Int64
	n := int64(b.N)
	ev := sampleEvent(1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			inflight := make([]*Receipt, 0, window)
			for next.Add(1) <= n {
				if len(inflight) == window {
					if _, err := inflight[0].Wait(context.Background()); err != nil {
						b.Error(err)
						return
					}
					inflight = append(inflight[:0], inflight[1:]...)
				}
				inflight = append(inflight, l.Submit(ev))
			}
			for _, r := range inflight {
				if _, err := r.Wait(context.Background()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportRates(b, b.N, elapsed, cpu0)
	reportBatches(b, reg)
}

func BenchmarkAppend64Writers(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchAppend64(b, &memStore{}) })
	benchAppendStores(b, benchAppend64)
}

func BenchmarkSubmit64Writers(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchSubmit64(b, &memStore{}) })
	benchAppendStores(b, benchSubmit64)
}

func BenchmarkVerify(b *testing.B) {
	store := &memStore{}
	fillLog(b, store, 100_000, 1000)
	benchVerify(b, store, 100_000)
}

func benchVerify(b *testing.B, store airlock.AuditStore, n int) {
	b.Run("online", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		start := time.Now()
		for b.Loop() {
			rep, err := Verify(context.Background(), store, testPub())
			if err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
		reportRates(b, b.N*n, time.Since(start), cpu0)
	})
	exp := exportBytes(b, store, airlock.EventFilter{})
	b.Run("export-file", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		start := time.Now()
		for b.Loop() {
			rep, err := VerifyExport(bytes.NewReader(exp), testPub())
			if err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
		reportRates(b, b.N*n, time.Since(start), cpu0)
	})
}

// BenchmarkPrepare measures the validation Submit does on its caller's
// path (a gateway statement's): action, outcome, details JSON, strings.
func BenchmarkPrepare(b *testing.B) {
	ev := sampleEvent(1)
	ev.Details = json.RawMessage(`{"kind":"query","stmt":12,"text":"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prepare(ev); err != nil {
			b.Fatal(err)
		}
	}
}
