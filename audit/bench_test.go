package audit

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

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
	l, err := Open(context.Background(), store, Options{Signer: testKey, Logger: quietLogger()})
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

func BenchmarkAppend64Writers(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchAppend64(b, &memStore{}) })
	benchAppendStores(b)
}

func BenchmarkVerify(b *testing.B) {
	store := &memStore{}
	fillLog(b, store, 100_000, 1000)
	benchVerify(b, store, 100_000)
}

func benchVerify(b *testing.B, store airlock.AuditStore, n int) {
	b.Run("online", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			rep, err := Verify(context.Background(), store, testPub())
			if err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "events/s")
	})
	exp := exportBytes(b, store, airlock.EventFilter{})
	b.Run("export-file", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			rep, err := VerifyExport(bytes.NewReader(exp), testPub())
			if err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "events/s")
	})
}
