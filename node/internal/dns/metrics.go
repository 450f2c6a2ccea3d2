package dns

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	queries         *prometheus.CounterVec
	forwardFailures *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_dns_queries_total",
			Help: "DNS queries the node-local resolver answered, by result (answer, nxdomain, forwarded, servfail, refused).",
		}, []string{"result"}),
		forwardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_dns_forward_failures_total",
			Help: "Forwarded DNS queries an upstream resolver did not answer in time (or answered SERVFAIL/REFUSED), by upstream.",
		}, []string{"upstream"}),
	}
	for _, r := range []string{ResultAnswer, ResultNXDomain, ResultForward, ResultServFail, ResultRefused} {
		m.queries.WithLabelValues(r)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queries, m.forwardFailures}
}
