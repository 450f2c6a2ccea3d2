package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// The switch's side of one apply, as steps of a Pass: the orchestrator
// (package converge) runs them in order and makes the links between them.
//
//	Begin     lock the switch; the ports invalid on it
//	Ports     plan the bridge's ports against what the switch holds
//	SendPorts the port transaction, when it cannot wait for the flows
//	Flows     OpenFlow: the delta alone, or the whole table
//	Replan    a new port left out after its flows went in (its link failed)
//	Commit    the port transaction left for after the flows; the requested
//	          ofports confirmed
//	Finish    remember what the switch now holds (a.applied, a.installed)
//	End       unlock (always)
//
// Desired state is the program the pass is given; installed state is what
// the switch knows it holds: a.installed (the flows and groups on br-int)
// and a.applied (the last program's ports, ofports and resolved tables).

// Timing is where the switch's side of an apply spent its time.
type Timing struct {
	OVSDB, OFPorts, OpenFlow time.Duration
}

// Report is what the switch's side of an apply did.
type Report struct {
	// Dropped lists flows and groups left out (they name a failed or
	// unknown port, or are invalid).
	Dropped []Dropped
	// OVSDBOps is the number of operations in the apply's one OVSDB
	// transaction (0: nothing to change, no transaction).
	OVSDBOps int
	// PortsAfterFlows is set when the OVSDB transaction went after the
	// flows (every new port had a requested ofport).
	PortsAfterFlows bool
	// OVSDBRead is set when the apply planned the ports against OVSDB;
	// unset, it took the fast path (the same ports as the last apply).
	OVSDBRead bool
	// OpenFlow is "unchanged" (nothing sent), "delta" (one bundle with
	// the differences: native flow_mods, or ovs-ofctl for syntax the
	// encoder does not know) or "full" (replace-flows).
	OpenFlow string
	// FlowsAdded and FlowsRemoved count the flow mods of a delta.
	FlowsAdded, FlowsRemoved int
	// FlowsRendered is how many of the program's flows this apply
	// resolved: all of them, none (the same program again), or only the
	// change's when it took the delta path.
	FlowsRendered int
	// Flows is how many flows br-int holds after a successful apply.
	Flows int
	// OFCtlRuns is the number of ovs-ofctl processes this apply started
	// (or spares it used); 0 when a delta went as native flow_mods.
	OFCtlRuns int
	// Warnings are problems that did not stop the apply.
	Warnings []string
	// Time is where the switch's steps spent their time.
	Time Timing
}

// Pass is one apply on the switch. It holds the switch from Begin to End;
// its steps are not safe for concurrent use.
type Pass struct {
	a       *Switch
	rep     *Report
	prog    *openapi.Program
	d       *openapi.ProgramDelta
	byDelta bool
	full    bool
	// failed and fresh are shared with the orchestrator: the ports that
	// cannot be realized (why), and those whose link was just made.
	failed map[string]string
	fresh  map[string]bool
	specs  []portSpec
	// plan is the port plan SendPorts sends; names the ports it waits for.
	plan  *planner
	names []string
	// states and ofports are the ports as the switch has them.
	states  map[string]portState
	ofports map[string]int
	ft      flowTable
	gt      groupTable
	dropped []Dropped
	// delta is set when the flows went by the delta path; err is the
	// OpenFlow step's error.
	delta bool
	err   error
}

// Begin starts an apply of prog on the switch, d being the delta from the
// program last applied (nil: unknown; one that does not lead from it is
// ignored). With full, the ports are planned against OVSDB even when they
// look like the last apply's. fresh is the orchestrator's record of the
// ports whose link it made in this apply (the switch then waits for OVS to
// see the new device). Begin returns the pass with the program's ports that
// are invalid on this switch in Failed. The caller must call End.
func (a *Switch) Begin(prog *openapi.Program, d *openapi.ProgramDelta, full bool, fresh map[string]bool, rep *Report) (*Pass, error) {
	a.mu.Lock()
	p := &Pass{a: a, rep: rep, prog: prog, d: d, full: full, fresh: fresh}
	a.portOps = nil
	if prog == nil {
		return p, errors.New("nil program")
	}
	if prog.Bridge.Name != "" && prog.Bridge.Name != a.opts.Bridge {
		return p, fmt.Errorf("program is for bridge %s, this agent manages %s", prog.Bridge.Name, a.opts.Bridge)
	}
	p.failed = a.validatePorts(prog)
	p.byDelta = a.deltaUsable(prog, d)
	return p, nil
}

// Failed are the ports that cannot be realized, with why; the orchestrator
// adds those whose link failed before the step that needs them.
func (p *Pass) Failed() map[string]string { return p.failed }

// ByDelta reports whether the flows can go by the delta path: the delta
// leads from the program the switch holds exactly.
func (p *Pass) ByDelta() bool { return p.byDelta }

// Generation is the generation the pass installs flows with.
func (p *Pass) Generation() uint16 { return p.a.gen }

// OFPort is port name's ofport after the pass (0: none).
func (p *Pass) OFPort(name string) int { return p.states[name].OFPort }

// PortsUnchanged reports whether the pass changed flows alone: the delta
// path, no port added or removed, and no OVSDB read.
func (p *Pass) PortsUnchanged() bool {
	return p.delta && portsKept(p.d) && !p.rep.OVSDBRead
}

// Pending reports whether a port transaction waits for Commit.
func (p *Pass) Pending() bool { return p.a.portOps != nil }

// Ports plans the bridge's ports. It returns true when the plan's
// transaction must go before the flows (SendPorts, once every link it
// names exists); false when there is nothing to send now: the ports are
// the last apply's, every one attached, and no drift seen since (the fast
// path), or the transaction waits for the flows (Commit sends it). When
// the delta path is open and every port that is not new is attached, new
// ports get requested ofports and their transaction waits: ovs-vswitchd
// adds a port (a bridge reconfiguration, linear in the bridge's ports)
// before it reads the next OpenFlow message, so the flows would wait for
// it; sent after, they are in place when the port comes up. Ports may be
// called again (a link failed before SendPorts): it plans afresh.
func (p *Pass) Ports(ctx context.Context) (bool, error) {
	a := p.a
	p.specs = a.portSpecs(p.prog, p.failed)
	if l := a.applied; !p.full && len(p.fresh) == 0 && l != nil && !l.ovsFailed() && reflect.DeepEqual(p.specs, l.specs) {
		// Ports that failed before OVSDB (invalid, or their link could
		// not be made) are not in specs: they do not stop the fast path,
		// and the orchestrator retries them on every apply.
		p.states, p.ofports = map[string]portState{}, map[string]int{}
		for n, of := range l.ofports {
			p.states[n], p.ofports[n] = portState{OFPort: of, Up: true}, of
		}
		return false, nil
	}
	p.rep.OVSDBRead = true
	t := time.Now()
	defer func() { p.rep.Time.OVSDB += time.Since(t) }()
	pl, err := a.planPorts(ctx, p.specs, p.failed, nil)
	if err != nil {
		return false, err
	}
	p.plan, p.rep.OVSDBOps = pl, len(pl.ops)
	p.names = []string{a.opts.Bridge}
	for _, ps := range p.specs {
		if _, bad := p.failed[ps.Name]; !bad && pl.requested[ps.Name] == 0 {
			p.names = append(p.names, ps.Name)
		}
	}
	if p.byDelta && a.installed.valid && len(pl.ops) > 0 {
		states := map[string]portState{}
		if a.db.readPorts(ctx, p.names, p.fresh, states) == 0 {
			a.portOps, p.states = pl.ops, states
			return false, p.settle()
		}
	}
	return true, nil
}

// SendPorts sends the port transaction Ports planned and waits for the
// ofports; ports OVS could not attach are added to Failed.
func (p *Pass) SendPorts(ctx context.Context) error {
	a := p.a
	t := time.Now()
	if err := a.db.transact(ctx, p.plan.ops); err != nil {
		return err
	}
	p.rep.Time.OVSDB += time.Since(t)
	t = time.Now()
	wctx, cancel := context.WithTimeout(ctx, a.opts.PortTimeout)
	p.states = a.db.waitPorts(wctx, p.names, p.fresh)
	cancel()
	err := p.settle()
	p.rep.Time.OFPorts += time.Since(t)
	return err
}

// settle takes the plan's requested ofports as the ports' and works out
// the ofports the flows use.
func (p *Pass) settle() error {
	a := p.a
	a.requested = p.plan.requested
	names := p.names
	for n, of := range p.plan.requested {
		p.states[n] = portState{OFPort: of}
		names = append(names, n)
	}
	if st := p.states[a.opts.Bridge]; st.OFPort <= 0 {
		return fmt.Errorf("bridge %s is not up in ovs-vswitchd: %s", a.opts.Bridge, st.Error)
	}
	p.ofports = map[string]int{}
	for _, n := range names[1:] {
		if st := p.states[n]; st.Error != "" || st.OFPort <= 0 {
			p.failed[n] = "OVS: " + st.Error
		} else {
			p.ofports[n] = st.OFPort
		}
	}
	return nil
}

// Flows converges br-int's flows and groups: the delta's alone when the
// delta path is open and the change plans, else the whole table. What a
// flow change puts in force is in force before Flows returns (the
// datapath's cache revalidated, UDP conntrack of backends that left a
// group flushed).
func (p *Pass) Flows(ctx context.Context) error {
	a, rep := p.a, p.rep
	t := time.Now()
	defer func() { rep.Time.OpenFlow += time.Since(t) }()
	runs := a.of.runs.Load()
	// What UDP services send where, before a change that may touch groups
	// (ctflush.go; the tables change in place).
	var lbBefore *lbSnapshot
	if a.installed.valid && (!p.byDelta || len(p.d.AddGroups)+len(p.d.RemoveGroups) > 0) {
		lbBefore = snapshotLB(a.installed.flows, a.installed.groups)
	}
	var sres syncResult
	if p.byDelta {
		if c, ok := a.planChange(p.d, p.ofports, p.failed); ok {
			rep.FlowsRendered = len(p.d.AddFlows) + len(p.d.RemoveFlows)
			sres, p.delta = a.installChange(ctx, c)
			p.ft, p.gt = a.installed.flows, a.installed.groups
		}
	}
	if !p.delta {
		p.ft, p.gt, p.dropped = a.resolveCached(p.prog, p.ofports, p.failed, &rep.FlowsRendered)
		rep.Dropped = p.dropped
		sres, p.err = a.syncFlows(ctx, p.ft, p.gt)
		rep.Dropped = append(rep.Dropped, sres.dropped...)
	}
	rep.OpenFlow, rep.FlowsAdded, rep.FlowsRemoved = sres.mode, sres.added, sres.removed
	rep.OFCtlRuns = int(a.of.runs.Load() - runs)
	if p.err != nil {
		return p.err
	}
	if sres.added > 0 || sres.removed > 0 || sres.mode == "full" {
		// In force before it is reported applied (revalidate.go).
		if err := a.purgeDatapath(ctx); err != nil {
			rep.Warnings = append(rep.Warnings, "datapath cache: "+err.Error())
		}
	}
	if lbBefore != nil {
		// UDP conntrack of backends that left a group (ctflush.go).
		if err := a.flushConntrack(ctx, lbBefore.stale(p.gt)); err != nil {
			rep.Warnings = append(rep.Warnings, "conntrack flush: "+err.Error())
		}
	}
	if a.installed.groupsUnread {
		a.snapGroups(ctx) // the drift check's reference, once in force (groups.go)
	}
	return nil
}

// Replan plans the pending port transaction again without the ports added
// to Failed since (a new port whose link failed after its flows went in:
// OVSDB never names a device that does not exist, or ovs-vswitchd would
// cache it and, opening it later, could put the veth made then down, see
// release.go). Its flows are in: the installed tables are forgotten, so
// the next apply syncs in full.
func (p *Pass) Replan(ctx context.Context) error {
	p.specs = p.a.portSpecs(p.prog, p.failed)
	if err := p.a.replanPorts(ctx, p.specs, p.failed); err != nil {
		return err
	}
	for n := range p.failed {
		delete(p.ofports, n)
	}
	return nil
}

// Commit sends the port transaction left for after the flows, then waits
// until OVS has attached the ports whose flows went in with a requested
// ofport (a port attached otherwise is added to Failed).
func (p *Pass) Commit(ctx context.Context) error {
	a := p.a
	if a.portOps != nil {
		if err := a.commitPorts(ctx, p.rep); err != nil {
			return err
		}
	}
	if len(a.requested) > 0 {
		a.confirmRequested(ctx, p.rep, p.fresh, p.states, p.failed)
	}
	return nil
}

// Finish records what the switch holds after the pass (the next pass and
// Observe start from it). Call it once the steps ran, whatever the flows'
// outcome.
func (p *Pass) Finish() {
	a := p.a
	if p.err == nil {
		p.rep.Flows = len(a.installed.flows.lines)
		a.of.prepareSpare(a.opts.Bridge) // for the next change (spare.go)
		if !a.ofUp.Load() {
			a.kickWatch() // br-int may have just been made
		}
	}
	a.applied = &appliedProgram{prog: p.prog, specs: p.specs, ofports: p.ofports, failed: p.failed,
		resolved: &resolvedTables{digest: p.prog.Digest, gen: a.gen, ofports: p.ofports, failed: p.failed, flows: p.ft, groups: p.gt, dropped: p.dropped},
		exact:    p.err == nil && len(p.failed) == 0 && len(p.rep.Dropped) == 0}
}

// End releases the switch. After a restart (see watch.go) it lets the
// switch forward once its flows are in, or once an apply against the
// running switch failed (err): as ovs-ctl does, a partial table beats a
// switch that never forwards.
func (p *Pass) End(err error) {
	a := p.a
	defer a.mu.Unlock()
	if a.frw && (err == nil || a.ofUp.Load()) {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.PortTimeout)
		defer cancel()
		if ferr := a.clearFlowRestoreWait(ctx); ferr != nil {
			p.rep.Warnings = append(p.rep.Warnings, "clear flow-restore-wait: "+ferr.Error())
		}
	}
}

// replanPorts plans the pending port transaction (a.portOps) again for
// specs, giving the new ports the ofports the flows already name, and
// forgets the installed tables (flows of ports left out are in).
func (a *Switch) replanPorts(ctx context.Context, specs []portSpec, failed map[string]string) error {
	a.installed.valid = false
	pl, err := a.planPorts(ctx, specs, failed, a.requested)
	if err != nil {
		return err
	}
	a.portOps, a.requested = nil, pl.requested
	if len(pl.ops) > 0 {
		a.portOps = pl.ops
	}
	return nil
}

// planPorts plans the bridge's ports for specs from a snapshot of the
// cache, recording in failed the ports that cannot be placed. New
// container ports get requested ofports (unless OVS assigns them), those
// in reuse the one given there.
func (a *Switch) planPorts(ctx context.Context, specs []portSpec, failed map[string]string, reuse map[string]int) (*planner, error) {
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	pl := newPlanner(a.db, s)
	if !a.opts.AssignedOFPorts {
		pl.ofports, pl.reuse = &a.ofports, reuse
	}
	if err := pl.planBridge(a.intSpec(specs)); err != nil {
		return nil, fmt.Errorf("plan OVSDB: %w", err)
	}
	for name, err := range pl.fails {
		failed[name] = err.Error()
	}
	return pl, nil
}

// commitPorts sends the port transaction syncPorts left for after the
// flows. When it fails, the flows of its new ports name ports that do not
// exist: the installed tables are forgotten, so the next apply does a full
// sync.
func (a *Switch) commitPorts(ctx context.Context, res *Report) error {
	t := time.Now()
	ops := a.portOps
	a.portOps = nil
	res.PortsAfterFlows = true
	err := a.db.transact(ctx, ops)
	if err != nil {
		a.installed.valid = false
		a.requested = nil
	}
	res.Time.OVSDB += time.Since(t)
	return err
}

// validatePorts returns the ports of prog that are invalid as OVS ports.
func (a *Switch) validatePorts(prog *openapi.Program) map[string]string {
	failed := map[string]string{}
	seen := map[string]bool{}
	check := func(name string) {
		switch {
		case name == "" || strings.ContainsAny(name, " /${}"):
			failed[name] = "invalid port name"
		case name == a.opts.Bridge || name == a.opts.UnderlayBridge:
			failed[name] = "port name is a bridge name"
		case seen[name]:
			failed[name] = "duplicate port name"
		}
		seen[name] = true
	}
	for _, tp := range prog.Tunnels {
		check(tp.Name)
		if tp.Type != "geneve" && tp.Type != "vxlan" {
			failed[tp.Name] = fmt.Sprintf("tunnel type %q: want geneve or vxlan", tp.Type)
		}
		if tp.RemoteIP == "" {
			failed[tp.Name] = "tunnel without remote IP"
		}
	}
	for _, c := range prog.Containers {
		check(c.Name)
		if c.Name == openapi.DNSPortName && a.opts.DNSNetns != "" {
			failed[c.Name] = "port name reserved for the agent's DNS port"
		}
	}
	return failed
}

// portSpecs are the OVS ports of prog: tunnels then containers, less failed.
func (a *Switch) portSpecs(prog *openapi.Program, failed map[string]string) []portSpec {
	var specs []portSpec
	for _, tp := range prog.Tunnels {
		if _, bad := failed[tp.Name]; bad {
			continue
		}
		specs = append(specs, portSpec{
			Name: tp.Name, Type: tp.Type,
			Options: map[string]string{"remote_ip": tp.RemoteIP, "key": "flow"},
			IDs:     map[string]string{KeyOwner: OwnerValue, KeyPeerHost: tp.PeerHost},
		})
	}
	for _, c := range prog.Containers {
		if _, bad := failed[c.Name]; bad {
			continue
		}
		specs = append(specs, portSpec{
			Name: c.Name,
			IDs:  map[string]string{KeyOwner: OwnerValue, KeyContainer: c.Container, KeyContainerID: c.ID},
		})
	}
	specs = append(specs, a.gatewayPortSpec(prog)...)
	return append(specs, a.dnsPortSpec(failed)...)
}

func (a *Switch) intSpec(specs []portSpec) bridgeSpec {
	return bridgeSpec{
		Name: a.opts.Bridge, DatapathType: a.opts.Datapath, Prune: true, Ports: specs,
		IDs: map[string]string{KeyOwner: OwnerValue, KeyGeneration: strconv.Itoa(int(a.gen))},
	}
}

// resolveCached resolves prog's flows and groups, reusing the last apply's
// tables when the program (by digest), the generation and the ports are
// the same: re-applying an unchanged program of thousands of flows then
// costs no rendering.
func (a *Switch) resolveCached(prog *openapi.Program, ofports map[string]int, failed map[string]string, rendered *int) (flowTable, groupTable, []Dropped) {
	if a.applied != nil && a.applied.resolved != nil {
		c := a.applied.resolved
		if prog.Digest != "" && c.digest == prog.Digest && c.gen == a.gen &&
			maps.Equal(c.ofports, ofports) && maps.Equal(c.failed, failed) {
			return c.flows, c.groups, c.dropped
		}
	}
	*rendered = len(prog.Flows)
	return resolve(prog.Flows, prog.Groups, resolver{ofports: ofports, failed: failed, off: a.portsOff()}, a.gen)
}
