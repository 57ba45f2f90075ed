package audit

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appended    prometheus.Counter
	failures    prometheus.Counter
	batchSize   prometheus.Histogram
	latency     prometheus.Histogram
	checkpoints prometheus.Counter
	witnessErrs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_audit_events_appended_total",
			Help: "Audit events made durable.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_audit_append_failures_total",
			Help: "Audit batches the store failed to write (every event in them was refused).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_audit_batch_size",
			Help:    "Events per group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_audit_append_seconds",
			Help:    "Time to make one batch durable in the store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_audit_checkpoints_total",
			Help: "Signed checkpoints written.",
		}),
		witnessErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_audit_witness_failures_total",
			Help: "Checkpoints a witness (file or webhook) failed to take; each is retried until a newer one replaces it.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.appended, m.failures, m.batchSize, m.latency, m.checkpoints, m.witnessErrs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("audit: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
