package ovs

import (
	"context"
	"fmt"

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
func (a *Applier) Observe(ctx context.Context) (Observed, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var obs Observed
	last := a.applied
	if last == nil {
		return obs, nil
	}
	drift := func(format string, args ...any) { obs.Drift = append(obs.Drift, fmt.Sprintf(format, args...)) }
	for _, c := range last.prog.Containers {
		if why, bad := last.failed[c.Name]; bad {
			drift("port %s failed: %s", c.Name, why)
			continue
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

	if err := a.observeFlows(ctx, drift); err != nil {
		return obs, err
	}
	obs.Ports = a.statuses(last.prog, states, last.failed)
	last.ports = obs.Ports // what a change of flows alone reports next
	if obs.Drifted() {
		// The next Apply checks every link again, not only changed ones.
		a.linksFull = true
	}
	return obs, nil
}

// observeFlows compares the switch's flows and groups with what was
// installed; on any difference it forgets what was installed.
func (a *Applier) observeFlows(ctx context.Context, drift func(string, ...any)) error {
	if !a.installed.valid || a.installed.gen != a.gen {
		drift("flows: not known to be installed")
		return nil
	}
	ok := false
	defer func() {
		if !ok {
			a.installed.valid = false
		}
	}()
	want, err := a.canonical(ctx)
	if err != nil {
		return fmt.Errorf("canonical flows: %w", err)
	}
	out, err := a.of.run(ctx, a.opts.Bridge, nil, "dump-flows")
	if err != nil {
		drift("flows: %v", err)
		return nil
	}
	have, err := parseDump(out)
	if err != nil {
		return err
	}
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
