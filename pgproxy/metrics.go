package pgproxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. The zero value (no
// Registerer) is valid: every method is a no-op.
type metrics struct {
	active     prometheus.Gauge
	statements prometheus.Counter
	bytes      *prometheus.CounterVec
	conns      *prometheus.CounterVec
	upstreams  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	if reg == nil {
		return m, nil
	}
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "airlock_pg_sessions_active", Help: "Live PostgreSQL gateway sessions.",
	})
	m.statements = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_pg_statements_total", Help: "Statements (simple queries and executes) relayed.",
	})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_pg_bytes_total", Help: "Bytes relayed, by direction (in = from clients, out = to clients), counted at session end.",
	}, []string{"direction"})
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_pg_connections_total", Help: "Client connections by result.",
	}, []string{"result"})
	m.upstreams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_pg_upstream_connections_total", Help: "Upstream connections sessions started on: new logins, or reused after DISCARD ALL.",
	}, []string{"kind"})
	for _, c := range []prometheus.Collector{m.active, m.statements, m.bytes, m.conns, m.upstreams} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) sessionStarted() {
	if m.active != nil {
		m.active.Inc()
		m.conns.WithLabelValues("ok").Inc()
	}
}

func (m *metrics) sessionEnded(in, out int64) {
	if m.active != nil {
		m.active.Dec()
		m.bytes.WithLabelValues("in").Add(float64(in))
		m.bytes.WithLabelValues("out").Add(float64(out))
	}
}

func (m *metrics) refused(result string) {
	if m.conns != nil {
		m.conns.WithLabelValues(result).Inc()
	}
}

func (m *metrics) upstream(kind string) {
	if m.upstreams != nil {
		m.upstreams.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) statement() {
	if m.statements != nil {
		m.statements.Inc()
	}
}
