package ovs

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Observed is the switch as Observe found it.
type Observed struct {
	// OFPorts is the ofport of every port of the last apply that OVS has
	// (0 or absent: none).
	OFPorts map[string]int
	// Drift lists how the switch differs from the last apply (empty: no
	// drift). A tunnel or agent port that failed in the last apply counts
	// as drift, so that a resync retries it.
	Drift []string
	// Timing is where the check spent its time.
	Timing ObserveTiming
}

// ObserveTiming splits an Observe: OVSDB (the plan's dry run and the
// ports' rows), the expected flows in canonical form, the switch's flows
// (dump and parse), and the rest of OpenFlow (the per-cookie counts and
// the groups).
type ObserveTiming struct {
	OVSDB, Canonical, Dump, Groups time.Duration
}

// maxFlowDrift bounds how many differing flows Observe lists one by one.
const maxFlowDrift = 10

// Observe compares the switch with the last apply in full: OVSDB (a dry
// run of the apply's plan), ofports, and the flow table (ovs-ofctl
// diff-flows against what was installed) and the groups (ids, and
// content: groups.go). Learned flows (cookie openapi.LearnedCookie) are
// not the program's and are ignored. It changes nothing on the host; when
// the flows drifted, the next apply does a full OpenFlow sync. Before the
// first apply it returns an empty result.
//
// When ctx ends during the check (the agent cancels a resync when a new
// program arrives), Observe returns ctx's error and forgets nothing it
// knew: a check cut short finds no drift.
func (a *Switch) Observe(ctx context.Context) (Observed, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var obs Observed
	last := a.applied
	if last == nil {
		return obs, nil
	}
	drift := func(format string, args ...any) { obs.Drift = append(obs.Drift, fmt.Sprintf(format, args...)) }
	for _, tp := range last.prog.Tunnels {
		if why, bad := last.failed[tp.Name]; bad {
			drift("port %s failed: %s", tp.Name, why)
		}
	}
	if why, bad := last.failed[openapi.DNSPortName]; bad && a.opts.DNSNetns != "" {
		drift("port %s failed: %s", openapi.DNSPortName, why) // the next apply retries it
	}

	t := time.Now()
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
	obs.OFPorts = make(map[string]int, len(states))
	for _, ps := range last.specs {
		obs.OFPorts[ps.Name] = states[ps.Name].OFPort
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
	return obs, ctx.Err()
}

// observeFlows compares the switch's flows and groups with what was
// installed; on any difference it forgets what was installed.
func (a *Switch) observeFlows(ctx context.Context, drift func(string, ...any), tm *ObserveTiming) error {
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
