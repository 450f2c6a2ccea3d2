package ovs

import (
	"context"
	"fmt"
	"time"

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

// ObserveTiming splits an Observe: the container links, OVSDB (the plan's
// dry run and the ports' rows), the expected flows in canonical form, the
// switch's flows (dump and parse), and the rest of OpenFlow (the
// per-cookie counts and the groups).
type ObserveTiming struct {
	Links, OVSDB, Canonical, Dump, Groups time.Duration
}

// Drifted reports whether a re-apply is needed.
func (o Observed) Drifted() bool { return len(o.Drift) > 0 }

// maxFlowDrift bounds how many differing flows Observe lists one by one.
const maxFlowDrift = 10

// Observe reports port status and compares the host with the last applied
// program in full: links, OVSDB (a dry run of the apply's plan), ofports,
// and the flow table (ovs-ofctl diff-flows against what was installed) and
// the groups (ids, and content: groups.go). Learned flows (cookie
// openapi.LearnedCookie) are not the program's and are ignored. It
// changes nothing on the host; when the flows drifted, the next Apply does
// a full OpenFlow sync. Before the first Apply it returns an empty result.
//
// When ctx ends during the check (the agent cancels a resync when a new
// program arrives, so that the check never delays an apply), Observe
// returns ctx's error and forgets nothing it knew: a check cut short
// finds no drift.
func (a *Applier) Observe(ctx context.Context) (Observed, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	obs, err := a.observe(ctx)
	if ctx.Err() != nil {
		return Observed{}, ctx.Err()
	}
	return obs, err
}

func (a *Applier) observe(ctx context.Context) (Observed, error) {
	var obs Observed
	last := a.applied
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
		diffs, err := a.links.Check(c)
		for _, d := range diffs {
			drift("link %s: %s", c.Name, d)
		}
		if err != nil {
			drift("link %s: %v", c.Name, err)
		}
	}
	for _, tp := range last.prog.Tunnels {
		if why, bad := last.failed[tp.Name]; bad {
			drift("port %s failed: %s", tp.Name, why)
		}
	}
	if a.opts.Gateway != nil {
		for _, d := range a.opts.Gateway.Drift(ctx, last.prog.Gateway) {
			drift("gateway: %s", d)
		}
	}
	if why, bad := last.failed[openapi.DNSPortName]; bad && a.opts.DNSNetns != "" {
		drift("port %s failed: %s", openapi.DNSPortName, why) // the next apply retries it
	}

	t := time.Now()
	obs.Timing.Links = t.Sub(start)
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return obs, err
	}
	pl := newPlanner(a.db, s)
	if err := pl.planBridge(a.intSpec(last.specs)); err != nil {
		return obs, err
	}
	for _, op := range pl.ops {
		drift("OVSDB: needs %s on %s", op.Op, op.Table)
	}
	names := []string{a.opts.Bridge}
	for _, ps := range last.specs {
		names = append(names, ps.Name)
	}
	states := map[string]portState{}
	a.db.readPorts(ctx, names, nil, states)
	for _, ps := range last.specs {
		if _, bad := last.failed[ps.Name]; bad {
			continue
		}
		if st := states[ps.Name]; st.Error != "" {
			drift("port %s: %s", ps.Name, st.Error)
		} else if st.OFPort != last.ofports[ps.Name] {
			drift("port %s: ofport %d, flows use %d", ps.Name, st.OFPort, last.ofports[ps.Name])
		}
	}

	obs.Timing.OVSDB = time.Since(t)
	if err := a.observeFlows(ctx, drift, &obs.Timing); err != nil {
		return obs, err
	}
	if ctx.Err() != nil {
		return obs, ctx.Err()
	}
	obs.Ports = a.statuses(last.prog, states, last.failed, nil)
	last.ports = obs.Ports // what a change of flows alone reports next
	if obs.Drifted() {
		// The next Apply checks every link again, not only changed ones.
		a.linksFull = true
	}
	return obs, nil
}

// observeFlows compares the switch's flows and groups with what was
// installed; on any difference it forgets what was installed.
func (a *Applier) observeFlows(ctx context.Context, drift func(string, ...any), tm *ObserveTiming) error {
	if !a.installed.valid || a.installed.gen != a.gen {
		drift("flows: not known to be installed")
		return nil
	}
	ok := false
	defer func() {
		if !ok && ctx.Err() == nil {
			a.installed.valid = false
		}
	}()
	t := time.Now()
	want, err := a.canonical(ctx)
	if err != nil {
		return fmt.Errorf("canonical flows: %w", err)
	}
	tm.Canonical = time.Since(t)
	t = time.Now()
	out, err := a.of.run(ctx, a.opts.Bridge, nil, "dump-flows")
	if err != nil {
		drift("flows: %v", err)
		return nil
	}
	have, err := parseDump(out)
	if err != nil {
		return err
	}
	tm.Dump = time.Since(t)
	t = time.Now()
	defer func() { tm.Groups = time.Since(t) }()
	diffs := compareFlows(want, have)
	for i, d := range diffs {
		if i == maxFlowDrift {
			drift("flows: %d more differences", len(diffs)-maxFlowDrift)
			break
		}
		drift("flow %s", d)
	}
	st, err := probe(ctx, a.of.socket(a.opts.Bridge), a.gen)
	if err != nil {
		drift("openflow: %v", err)
		return nil
	}
	for id := range a.installed.groups {
		if !st.groups[id] {
			drift("group %d missing", id)
		}
	}
	for id := range st.groups {
		if _, want := a.installed.groups[id]; !want {
			drift("group %d unexpected", id)
		}
	}
	sameGroups, err := a.observeGroups(ctx, drift)
	if err != nil {
		return err
	}
	ok = len(diffs) == 0 && a.matches(st) && sameGroups
	return nil
}
