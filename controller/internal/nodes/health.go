package nodes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// metrics are the node layer's Prometheus metrics. The Manager is a
// prometheus.Collector: the API server registers it next to its own.
type metrics struct {
	reloads  *prometheus.CounterVec
	updates  *prometheus.CounterVec
	diverged prometheus.GaugeFunc
	revision prometheus.GaugeFunc
}

func newMetrics(m *Manager) *metrics {
	return &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_nodes_compiler_reloads_total",
			Help: "Whole recompiles of the node programs, by reason (start: first load; diverged: an event could not be read or the compiler failed, reloaded from the store; inconsistent: the compiler's bookkeeping failed, recompiled from its objects).",
		}, []string{"reason"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_nodes_program_updates_total",
			Help: "Program updates sent to agents, by kind (delta: the host's last delta; composed: the deltas since the agent's program, composed into one; full: the whole program).",
		}, []string{"kind"}),
		diverged: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchyard_nodes_compiler_diverged",
			Help: "1 while this replica's compiler may not match the store (until the reload succeeds), else 0.",
		}, func() float64 {
			if m.divergence() != nil {
				return 1
			}
			return 0
		}),
		revision: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchyard_nodes_compiler_revision",
			Help: "The revision this replica's compiler is at.",
		}, func() float64 { return float64(m.revision()) }),
	}
}

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	m.metrics.reloads.Describe(ch)
	m.metrics.updates.Describe(ch)
	m.metrics.diverged.Describe(ch)
	m.metrics.revision.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.metrics.reloads.Collect(ch)
	m.metrics.updates.Collect(ch)
	m.metrics.diverged.Collect(ch)
	m.metrics.revision.Collect(ch)
}

// Healthy returns an error while this replica's compiler may not match the
// store, until a reload succeeds (/readyz reports it). Before the first load
// it is healthy: long-polls and waits simply wait for it.
func (m *Manager) Healthy() error {
	if m.divergence() != nil {
		return errors.New("the node programs may not match the intent: reloading")
	}
	return nil
}

// Ready is Healthy as a readiness check (api.Server.ReadyChecks).
func (m *Manager) Ready(context.Context) error { return m.Healthy() }

// program returns host's whole program. If the compiler fails (a bug in its
// bookkeeping), it recompiles every host from the compiler's objects and
// tries once more. Callers hold mu.
func (m *Manager) program(host string) (*openapi.Program, error) {
	p, err := safely(func() (*openapi.Program, error) { return m.programOf(m.comp, host) })
	if err == nil {
		return p, nil
	}
	m.log.Error("nodes: compiler failed; recompiling from scratch", "host", host, "err", err)
	if err := m.recompile(); err != nil {
		m.diverge(err)
		return nil, problem.Unavailable("the program of host %q cannot be built right now", host)
	}
	p, err = safely(func() (*openapi.Program, error) { return m.programOf(m.comp, host) })
	if err != nil {
		m.diverge(err)
		return nil, problem.Unavailable("the program of host %q cannot be built right now", host)
	}
	return p, nil
}

// recompile replaces the compiler by a fresh one loaded from its objects,
// and publishes the programs that differ. Callers hold mu.
func (m *Manager) recompile() error {
	start := time.Now()
	fresh := compile.New()
	progs, err := safely(func() (map[string]*openapi.Program, error) { return fresh.Full(m.comp.Snapshot()), nil })
	if err != nil {
		return fmt.Errorf("recompile: %w", err)
	}
	m.comp = fresh
	for name, p := range progs {
		m.setProgram(name, m.rev, p.Digest, nil)
	}
	m.metrics.reloads.WithLabelValues("inconsistent").Inc()
	m.log.Warn("nodes: recompiled every host", "revision", m.rev, "hosts", len(progs), "took", time.Since(start))
	m.advance()
	return nil
}

// checkReport accepts an agent's applied revision only if some controller
// may have sent the host a program of that revision. Once this replica has
// reached the revision (it waits briefly for that), the revision is at most
// the revision of the host's current program, or the report carries the
// current program's digest (a replica that loaded later sends the same
// program with a newer revision). The store bounds it by its own revision.
func (m *Manager) checkReport(ctx context.Context, host string, st openapi.NodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if m.ahead(st.AppliedRevision) {
		// Beyond this replica: first the store's bound, without waiting.
		if global, err := m.st.Revision(ctx); err == nil && st.AppliedRevision > global {
			return problem.Invalid("appliedRevision", "appliedRevision %d is beyond the current revision %d: no program of that revision was sent", st.AppliedRevision, global)
		}
	}
	for {
		ok, wait, err := m.judgeReport(host, st)
		if ok || err != nil {
			return err
		}
		m.poke()
		select {
		case <-ctx.Done():
			return nil // not reached yet: the store's bound is all there is
		case <-wait:
		}
	}
}

// judgeReport decides on a report once this replica has reached its
// revision; until then it returns what to wait on. An error report carries
// the revision applied before and the digest of the program that failed:
// the same rule holds (its revision is one this host had, so at most the
// current one unless this replica lags behind the agent's last program).
func (m *Manager) judgeReport(host string, st openapi.NodeStatus) (bool, <-chan struct{}, error) {
	r := st.AppliedRevision
	if r < 0 {
		return true, nil, problem.Invalid("appliedRevision", "appliedRevision must not be negative")
	}
	if len(st.Digest) > 64 || strings.Trim(st.Digest, "0123456789abcdef") != "" {
		return true, nil, problem.Invalid("digest", "digest must be the hexadecimal digest of a program")
	}
	if r == 0 {
		return true, nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready || m.rev < r {
		return false, m.progress, nil
	}
	e := m.hosts[host]
	if e == nil || r <= e.rev || st.Digest == e.digest {
		return true, nil, nil // no such host: the store answers 404
	}
	return true, nil, problem.Invalid("appliedRevision", "no program of revision %d was sent to host %q: its program changed last at revision %d, with another digest", r, host, e.rev)
}

// ahead tells whether rev is beyond what this replica has compiled.
func (m *Manager) ahead(rev int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.ready || rev > m.rev
}
