package agent

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/openapi"
)

// Resolver is the node-local DNS resolver (package dns, with the namespace
// the applier keeps for it). The agent starts it once registered, retrying
// with backoff (a resolver that cannot start never stops the agent), and
// hands it every program it applied; its metrics join the agent's.
type Resolver interface {
	// Start opens the resolver's sockets and serves until ctx ends.
	Start(ctx context.Context) error
	// Update replaces the resolver's names with prog's.
	Update(prog *openapi.Program)
	Collectors() []prometheus.Collector
}

// startDNS starts the resolver in the background.
func (a *Agent) startDNS(ctx context.Context) {
	r := a.cfg.DNS
	if r == nil {
		return
	}
	for _, c := range r.Collectors() {
		_ = a.m.reg.Register(c) // already registered: a second Run
	}
	go func() {
		b := newBackOff()
		for {
			err := r.Start(ctx)
			if err == nil {
				a.log.Info("node-local DNS resolver serving")
				return
			}
			d := b.NextBackOff()
			a.log.Error("node-local DNS resolver cannot start; retrying", "err", err, "in", d)
			if !sleep(ctx, d) {
				return
			}
		}
	}()
}

// feedDNS hands the resolver the program just applied.
func (a *Agent) feedDNS(prog *openapi.Program) {
	if a.cfg.DNS != nil {
		a.cfg.DNS.Update(prog)
	}
}
