package nodes

import (
	"context"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SetMaxDeltas sets how many deltas m keeps per host (benchmarks compare
// with the single delta kept before the bounded history).
func SetMaxDeltas(m *Manager, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxDeltas = n
}

// UpdatesSent is how many program updates of kind (delta, composed, full)
// m has sent.
func UpdatesSent(m *Manager, kind string) float64 {
	return testutil.ToFloat64(m.metrics.updates.WithLabelValues(kind))
}

// Digests waits until m has reached the store's revision and returns every
// host's current program digest.
func Digests(ctx context.Context, m *Manager) (map[string]string, error) {
	if err := m.reach(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.hosts))
	for name, e := range m.hosts {
		out[name] = e.digest
	}
	return out, nil
}
