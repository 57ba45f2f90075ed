package stream

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag      *prometheus.GaugeVec
	cursor   *prometheus.GaugeVec
	sent     *prometheus.CounterVec
	failures *prometheus.CounterVec
	leader   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_audit_stream_lag_events",
			Help: "Audit events not yet delivered to the sink: log head seq minus the sink's cursor (on the server holding the sink's lease).",
		}, []string{"sink"}),
		cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_audit_stream_cursor_seq",
			Help: "The last audit seq the sink acknowledged.",
		}, []string{"sink"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_audit_stream_sent_total",
			Help: "Audit events sent to the sink (resent ones counted again).",
		}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_audit_stream_failures_total",
			Help: "Failed sends (or lost connections) to the sink; each rewinds to the cursor.",
		}, []string{"sink"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_audit_stream_leader",
			Help: "1 while this server holds the sink's lease and streams to it.",
		}, []string{"sink"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lag, m.cursor, m.sent, m.failures, m.leader} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("audit streams: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
