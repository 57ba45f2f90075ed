// Package dbmetrics is the Prometheus set every database gateway exports
// (airlock_<engine>_…): one owner for the names and their meaning. It is
// apart from internal/dbgw so that the shared core stays a leaf of the
// standard library and the root package.
package dbmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a database gateway's Prometheus collectors, named
// airlock_<engine>_…: the same set for every engine. The zero value and
// a nil *Metrics are valid: every method is then a no-op.
type Metrics struct {
	active     prometheus.Gauge
	statements prometheus.Counter
	bytes      *prometheus.CounterVec
	conns      *prometheus.CounterVec
	upstreams  *prometheus.CounterVec
}

// New registers the collectors of the gateway for engine ("pg",
// "mysql"; product its name in help texts) with reg; nil reg registers
// nothing.
func New(reg prometheus.Registerer, engine, product string) (*Metrics, error) {
	m := &Metrics{}
	if reg == nil {
		return m, nil
	}
	p := "airlock_" + engine + "_"
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: p + "sessions_active", Help: "Live " + product + " gateway sessions.",
	})
	m.statements = prometheus.NewCounter(prometheus.CounterOpts{
		Name: p + "statements_total", Help: "Statements (simple queries and executes) relayed.",
	})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: p + "bytes_total", Help: "Bytes relayed, by direction (in = from clients, out = to clients), counted at session end.",
	}, []string{"direction"})
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: p + "connections_total", Help: "Client connections by result.",
	}, []string{"result"})
	m.upstreams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: p + "upstream_connections_total", Help: "Upstream connections sessions started on: new logins, or reused.",
	}, []string{"kind"})
	for _, c := range []prometheus.Collector{m.active, m.statements, m.bytes, m.conns, m.upstreams} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SessionStarted counts a session that started (connections result ok).
func (m *Metrics) SessionStarted() {
	if m != nil && m.active != nil {
		m.active.Inc()
		m.conns.WithLabelValues("ok").Inc()
	}
}

// SessionEnded counts a session's end and its bytes.
func (m *Metrics) SessionEnded(in, out int64) {
	if m != nil && m.active != nil {
		m.active.Dec()
		m.bytes.WithLabelValues("in").Add(float64(in))
		m.bytes.WithLabelValues("out").Add(float64(out))
	}
}

// Refused counts a client connection that opened no session, by result.
func (m *Metrics) Refused(result string) {
	if m != nil && m.conns != nil {
		m.conns.WithLabelValues(result).Inc()
	}
}

// Upstream counts an upstream connection a session started on ("new",
// "reused").
func (m *Metrics) Upstream(kind string) {
	if m != nil && m.upstreams != nil {
		m.upstreams.WithLabelValues(kind).Inc()
	}
}

// Statement counts a statement relayed.
func (m *Metrics) Statement() {
	if m != nil && m.statements != nil {
		m.statements.Inc()
	}
}
