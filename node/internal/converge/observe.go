package converge

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
)

// Observed is the host as Observe found it.
type Observed struct {
	// Ports is the status of every port of the last applied program.
	Ports []openapi.PortStatus
	// Drift lists how the host differs from the last applied program
	// (empty: no drift). A port that failed in the last apply counts as
	// drift, so that a resync retries it.
	Drift []string
	// Timing is where the check spent its time.
	Timing ObserveTiming
}

// ObserveTiming splits an Observe: the container links and the gateway,
// then the switch's parts (ovs.ObserveTiming).
type ObserveTiming struct {
	Links time.Duration
	ovs.ObserveTiming
}

// Drifted reports whether a re-apply is needed.
func (o Observed) Drifted() bool { return len(o.Drift) > 0 }

// Observe reports port status and compares the host with the last applied
// program in full: the links, the gateway and the switch
// (ovs.Switch.Observe). It changes nothing on the host; after drift, the
// next apply checks everything. Before the first apply it returns an
// empty result.
//
// When ctx ends during the check (the agent cancels a resync when a new
// program arrives, so that the check never delays an apply), Observe
// returns ctx's error and forgets nothing it knew: a check cut short
// finds no drift.
func (h *Host) Observe(ctx context.Context) (Observed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	obs, err := h.observe(ctx)
	if ctx.Err() != nil {
		return Observed{}, ctx.Err()
	}
	return obs, err
}

func (h *Host) observe(ctx context.Context) (Observed, error) {
	var obs Observed
	last := h.last
	if last == nil {
		return obs, nil
	}
	drift := func(format string, args ...any) { obs.Drift = append(obs.Drift, fmt.Sprintf(format, args...)) }
	start := time.Now()
	for _, c := range last.prog.Containers {
		if why, bad := last.failed[c.Name]; bad {
			drift("port %s failed: %s", c.Name, why)
			continue
		}
		if ctx.Err() != nil {
			return obs, ctx.Err()
		}
		diffs, err := h.links.Check(c)
		for _, d := range diffs {
			drift("link %s: %s", c.Name, d)
		}
		if err != nil {
			drift("link %s: %v", c.Name, err)
		}
	}
	if h.opts.Gateway != nil {
		for _, d := range h.opts.Gateway.Drift(ctx, last.prog.Gateway) {
			drift("gateway: %s", d)
		}
	}
	obs.Timing.Links = time.Since(start)
	sw, err := h.sw.Observe(ctx)
	obs.Drift = append(obs.Drift, sw.Drift...)
	obs.Timing.ObserveTiming = sw.Timing
	if err != nil {
		return obs, err
	}
	obs.Ports = h.statuses(last.prog, func(name string) int { return sw.OFPorts[name] }, last.failed, nil)
	last.ports = obs.Ports // what a change of flows alone reports next
	if obs.Drifted() {
		// The next apply checks every link again, not only changed ones.
		h.checkAll = true
	}
	return obs, nil
}

// CheckPort says how container port p differs from what the host realizes
// for it, changing nothing: its link, as the resync's link check sees it,
// and its OVS interface (ovs.Switch.CheckPort). Nothing returned: in
// order. It waits for a running apply to finish.
func (h *Host) CheckPort(ctx context.Context, p openapi.ContainerPort) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	diffs, err := h.links.Check(p)
	if err != nil {
		return diffs, err
	}
	return append(diffs, h.sw.CheckPort(ctx, p.Name)...), nil
}
