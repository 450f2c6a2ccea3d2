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

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// One Apply, start to end: the program (desired state) against what the
// applier knows is on the host (installed state: a.installed, the flows
// and groups on br-int; a.applied, the last program with its ports and
// ofports; a.linksChecked, the container ports whose links were checked).
// The steps call the adapters in turn, and the adapters never call each
// other: links (package link), OVSDB (ovsdb.go, ofport.go), OpenFlow
// (sync.go for a whole table, change.go for a delta, ofbundle.go for the
// flow_mods it sends itself, ofctl.go and spare.go to run ovs-ofctl).

// Timing is where an apply spent its time.
type Timing struct {
	Links, OVSDB, OFPorts, OpenFlow, Total time.Duration
}

// ApplyResult is the outcome of an Apply that did not fail as a whole.
type ApplyResult struct {
	Revision   int64
	Digest     string
	Generation uint16
	// Ports has one status per tunnel and container port of the program;
	// a port that could not be realized has Error set.
	Ports []openapi.PortStatus
	// Dropped lists flows and groups left out (they name a failed or
	// unknown port, or are invalid).
	Dropped []Dropped
	// LinkChanges lists what link convergence changed ("c1: created veth").
	LinkChanges []string
	// OVSDBOps is the number of operations in the apply's one OVSDB
	// transaction (0: nothing to change, no transaction).
	OVSDBOps int
	// PortsAfterFlows is set when the OVSDB transaction went after the
	// flows (every new port had a requested ofport; syncPorts).
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
	// Warnings are problems that did not stop the apply (a failed prune).
	Warnings []string
	// GatewayError says why the host's gateway (routes, NAT table, egress
	// IPs) is not as the program says; the apply is then degraded.
	GatewayError string
	Timing       Timing
}

// Degraded reports whether some port, flow or group was not realized.
func (r *ApplyResult) Degraded() bool {
	for _, p := range r.Ports {
		if p.Error != "" {
			return true
		}
	}
	return len(r.Dropped) > 0 || r.GatewayError != ""
}

// Summary is a one-line account of the apply, for logs.
func (r *ApplyResult) Summary() string {
	failed := 0
	for _, p := range r.Ports {
		if p.Error != "" {
			failed++
		}
	}
	return fmt.Sprintf("rev %d gen %d: %d ports (%d failed), %d link changes, %d OVSDB ops, openflow %s (+%d -%d, %d ovs-ofctl), %d dropped, %v",
		r.Revision, r.Generation, len(r.Ports), failed, len(r.LinkChanges), r.OVSDBOps, r.OpenFlow,
		r.FlowsAdded, r.FlowsRemoved, r.OFCtlRuns, len(r.Dropped), r.Timing.Total.Round(time.Millisecond))
}

// Apply converges the host to prog. Per-port failures (a missing netns
// path, an interface OVS cannot open) are reported in the result and the
// rest of the program still applies; the error is set only when the host
// could not be converged (OVSDB or OpenFlow failed).
func (a *Applier) Apply(ctx context.Context, prog *openapi.Program) (ApplyResult, error) {
	return a.ApplyDelta(ctx, prog, nil)
}

// ApplyDelta is Apply given also the delta d that leads from the program
// this applier last applied to prog (nil: unknown). The result is the same;
// with d, the OpenFlow step costs the size of the change instead of the
// size of the program (change.go). A d that does not lead from the last
// applied program is ignored.
func (a *Applier) ApplyDelta(ctx context.Context, prog *openapi.Program, d *openapi.ProgramDelta) (ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res, err := a.apply(ctx, prog, d)
	// After a restart (see watch.go), let the switch forward once its
	// flows are in, or once an apply against the running switch failed:
	// as ovs-ctl does, a partial table beats a switch that never forwards.
	if a.frw && (err == nil || a.ofUp.Load()) {
		if ferr := a.clearFlowRestoreWait(ctx); ferr != nil {
			res.Warnings = append(res.Warnings, "clear flow-restore-wait: "+ferr.Error())
		}
	}
	return res, err
}

func (a *Applier) apply(ctx context.Context, prog *openapi.Program, d *openapi.ProgramDelta) (ApplyResult, error) {
	start := time.Now()
	res := ApplyResult{}
	a.portOps = nil
	if prog == nil {
		return res, errors.New("nil program")
	}
	res.Revision, res.Digest, res.Generation = prog.Revision, prog.Digest, a.gen
	if prog.Bridge.Name != "" && prog.Bridge.Name != a.opts.Bridge {
		return res, fmt.Errorf("program is for bridge %s, this agent manages %s", prog.Bridge.Name, a.opts.Bridge)
	}
	failed := a.validatePorts(prog)
	if a.dbLost.Swap(false) {
		a.linksFull = true
	}
	byDelta := a.deltaUsable(prog, d)

	// 1. Links (removals come last, below).
	t := time.Now()
	fresh, touched := map[string]bool{}, map[string]bool{}
	keepPorts, keepSandboxes := map[string]bool{}, map[string]bool{}
	full := a.linksFull || a.linksChecked == nil
	if full {
		a.linksChecked = map[string]openapi.ContainerPort{}
	}
	// New containers' links wait until their flows are in, when this apply
	// goes by delta (then their ports get requested ofports and are added
	// after the flows, syncPorts): ovs-vswitchd reconfigures on a new
	// veth's notifications (linear in its ports) and reads no OpenFlow
	// message meanwhile, so made first, the link held up the flows by one
	// reconfiguration (docs/benchmarks-convergence.md, tenth pass).
	// New: added by the delta and not in the program before (a changed
	// port is removed and added again; its link exists already).
	var later []openapi.ContainerPort
	isNew := map[string]bool{}
	if byDelta && !full {
		for _, c := range d.AddContainers {
			isNew[c.Name] = true
		}
		for _, n := range d.RemoveContainers {
			delete(isNew, n)
		}
	}
	for _, c := range prog.Containers {
		keepPorts[c.Name] = true
		if sb := link.SandboxOf(c); sb != "" {
			keepSandboxes[sb] = true
		}
		if _, bad := failed[c.Name]; bad {
			delete(a.linksChecked, c.Name)
			continue
		}
		if ok, seen := a.linksChecked[c.Name]; seen && ok == c {
			continue // checked before and unchanged since: resync looks again
		}
		touched[c.Name] = true
		delete(a.linksChecked, c.Name)
		if isNew[c.Name] {
			later = append(later, c)
			continue
		}
		a.ensureLink(c, &res, fresh, failed)
	}
	a.ensureDNSLinks(prog, full, &res, fresh, failed)
	// Something to prune only when a port went away or on a full pass.
	prune := full
	for name := range a.linksChecked {
		if !keepPorts[name] {
			prune = true
			delete(a.linksChecked, name)
		}
	}
	if a.applied != nil {
		for _, c := range a.applied.prog.Containers {
			prune = prune || !keepPorts[c.Name]
		}
	}
	res.Timing.Links = time.Since(t)

	// 2. OVSDB, one transaction; then the ofports (syncPorts times both).
	specs := a.portSpecs(prog, failed)
	var states map[string]portState
	var ofports map[string]int
	if !full && len(fresh) == 0 && a.applied != nil && !a.applied.ovsFailed() && reflect.DeepEqual(specs, a.applied.specs) {
		// Same ports as the last apply, every one of them attached by OVS,
		// and no drift seen since (Observe would have asked for a full
		// pass): OVSDB has nothing to do and the ofports are the ones the
		// flows already use. Ports that failed before OVSDB (invalid, or
		// their link could not be made) are not in specs: they do not
		// stop the fast path, and they are retried above on every apply.
		states, ofports = map[string]portState{}, map[string]int{}
		for n, p := range a.applied.ofports {
			states[n], ofports[n] = portState{OFPort: p, Up: true}, p
		}
	} else {
		var err error
		res.OVSDBRead = true
		// Made before the transaction when the ports cannot wait for the
		// flows; a port whose link failed then is planned again without.
		linksNow := func() bool { return a.ensureLinks(&later, &res, fresh, failed) }
		states, ofports, err = a.syncPorts(ctx, &res, specs, fresh, failed, byDelta && a.installed.valid, linksNow)
		if errors.Is(err, errReplan) {
			specs = a.portSpecs(prog, failed)
			states, ofports, err = a.syncPorts(ctx, &res, specs, fresh, failed, byDelta && a.installed.valid, linksNow)
		}
		if err != nil {
			return res, err
		}
	}

	// 2b. The host's kernel side of its gateway (gateway.go).
	a.ensureGateway(ctx, prog, full, &res)

	// 3. OpenFlow.
	t = time.Now()
	runs := a.of.runs.Load()
	// What UDP services send where, before a change that may touch groups
	// (ctflush.go; the tables change in place).
	var lbBefore *lbSnapshot
	if a.installed.valid && (!byDelta || len(d.AddGroups)+len(d.RemoveGroups) > 0) {
		lbBefore = snapshotLB(a.installed.flows, a.installed.groups)
	}
	var (
		ft      flowTable
		gt      groupTable
		dropped []Dropped
		sres    syncResult
		err     error
		done    bool
	)
	if byDelta {
		if c, ok := a.planChange(d, ofports, failed); ok {
			res.FlowsRendered = len(d.AddFlows) + len(d.RemoveFlows)
			sres, done = a.installChange(ctx, c)
			ft, gt = a.installed.flows, a.installed.groups
		}
	}
	if !done {
		ft, gt, dropped = a.resolveCached(prog, ofports, failed, &res.FlowsRendered)
		res.Dropped = dropped
		sres, err = a.syncFlows(ctx, ft, gt)
		res.Dropped = append(res.Dropped, sres.dropped...)
	}
	res.OpenFlow, res.FlowsAdded, res.FlowsRemoved = sres.mode, sres.added, sres.removed
	res.OFCtlRuns = int(a.of.runs.Load() - runs)
	if err == nil && (sres.added > 0 || sres.removed > 0 || sres.mode == "full") {
		// In force before it is reported applied (revalidate.go).
		if rerr := a.purgeDatapath(ctx); rerr != nil {
			res.Warnings = append(res.Warnings, "datapath cache: "+rerr.Error())
		}
	}
	if err == nil && lbBefore != nil {
		// UDP conntrack of backends that left a group (ctflush.go).
		if ferr := a.flushConntrack(ctx, lbBefore.stale(gt)); ferr != nil {
			res.Warnings = append(res.Warnings, "conntrack flush: "+ferr.Error())
		}
	}
	if err == nil && a.installed.groupsUnread {
		a.snapGroups(ctx) // the drift check's reference, once in force (groups.go)
	}
	res.Timing.OpenFlow = time.Since(t)
	if a.ensureLinks(&later, &res, fresh, failed) && a.portOps != nil {
		// A new port whose link failed leaves the pending transaction:
		// OVSDB never names a device that does not exist (ovs-vswitchd
		// would cache it and, opening it later, could put the veth made
		// then down, see release.go). Its flows are in: the installed
		// tables are forgotten, so the next apply syncs in full.
		specs = a.portSpecs(prog, failed)
		if perr := a.replanPorts(ctx, specs, failed); perr != nil {
			return res, errors.Join(err, perr)
		}
		for n := range failed {
			delete(ofports, n)
		}
	}
	if a.portOps != nil {
		if cerr := a.commitPorts(ctx, &res); cerr != nil {
			return res, errors.Join(err, cerr)
		}
	}
	if len(a.requested) > 0 {
		a.confirmRequested(ctx, &res, fresh, states, failed)
	}
	// Removed containers lose their veth and sandbox last, once neither
	// OVS nor a flow uses them.
	if err == nil && prune {
		t = time.Now()
		pruned, perr := a.links.Prune(keepPorts, keepSandboxes)
		for _, p := range pruned {
			res.LinkChanges = append(res.LinkChanges, "deleted "+p)
		}
		if perr != nil {
			res.Warnings = append(res.Warnings, perr.Error())
		}
		res.Timing.Links += time.Since(t)
	}
	if err == nil {
		a.linksFull = false
		res.Flows = len(a.installed.flows.lines)
		a.of.prepareSpare(a.opts.Bridge) // for the next change (spare.go)
		if !a.ofUp.Load() {
			a.kickWatch() // br-int may have just been made
		}
	}
	if done && portsKept(d) && !res.OVSDBRead && len(res.LinkChanges) == 0 && a.applied.ports != nil {
		// A change of flows alone: the ports are those of the last report
		// (the resync refreshes their link state).
		res.Ports = a.applied.ports
	} else {
		res.Ports = a.statuses(prog, states, failed, a.linksUnchanged(full, touched))
	}
	a.applied = &appliedProgram{prog: prog, specs: specs, ofports: ofports, failed: failed, ports: res.Ports,
		resolved: &resolvedTables{digest: prog.Digest, gen: a.gen, ofports: ofports, failed: failed, flows: ft, groups: gt, dropped: dropped},
		exact:    err == nil && len(failed) == 0 && len(res.Dropped) == 0}
	res.Timing.Total = time.Since(start)
	return res, err
}

// syncPorts puts the bridge's ports in OVSDB in one transaction and waits
// for their ofports, except those it requested (a.requested: the apply
// confirms them after the flows); ports OVS could not attach are added to
// failed. With late, when every port that is not requested is attached
// already, the transaction is left in a.portOps for commitPorts to send
// once the flows are in: ovs-vswitchd adds a port (a bridge
// reconfiguration, linear in the bridge's ports) before it reads the next
// OpenFlow message, so the flows would wait for it; sent first, they are
// in place when the port comes up. beforeTransact runs before a
// transaction sent at once (it makes the links left for later); when it
// reports a failed link, syncPorts returns errReplan, sending nothing.
func (a *Applier) syncPorts(ctx context.Context, res *ApplyResult, specs []portSpec, fresh map[string]bool, failed map[string]string, late bool, beforeTransact func() bool) (map[string]portState, map[string]int, error) {
	t := time.Now()
	pl, err := a.planPorts(ctx, specs, failed, nil)
	if err != nil {
		return nil, nil, err
	}
	res.OVSDBOps = len(pl.ops)
	names := []string{a.opts.Bridge}
	for _, ps := range specs {
		if _, bad := failed[ps.Name]; !bad && pl.requested[ps.Name] == 0 {
			names = append(names, ps.Name)
		}
	}
	var states map[string]portState
	if late && len(pl.ops) > 0 {
		states = map[string]portState{}
		if a.db.readPorts(ctx, names, fresh, states) == 0 {
			a.portOps = pl.ops
		}
	}
	if a.portOps == nil {
		if beforeTransact() {
			return nil, nil, errReplan
		}
		if err := a.db.transact(ctx, pl.ops); err != nil {
			return nil, nil, err
		}
	}
	res.Timing.OVSDB = time.Since(t)
	t = time.Now()
	if a.portOps == nil {
		wctx, cancel := context.WithTimeout(ctx, a.opts.PortTimeout)
		states = a.db.waitPorts(wctx, names, fresh)
		cancel()
	}
	a.requested = pl.requested
	for n, p := range pl.requested {
		states[n] = portState{OFPort: p}
		names = append(names, n)
	}
	if st := states[a.opts.Bridge]; st.OFPort <= 0 {
		return nil, nil, fmt.Errorf("bridge %s is not up in ovs-vswitchd: %s", a.opts.Bridge, st.Error)
	}
	ofports := map[string]int{}
	for _, n := range names[1:] {
		if st := states[n]; st.Error != "" || st.OFPort <= 0 {
			failed[n] = "OVS: " + st.Error
		} else {
			ofports[n] = st.OFPort
		}
	}
	res.Timing.OFPorts = time.Since(t)
	return states, ofports, nil
}

// ensureLink converges the link of container c, recording what it changed
// in res, a veth it made in fresh, a failure in failed.
func (a *Applier) ensureLink(c openapi.ContainerPort, res *ApplyResult, fresh map[string]bool, failed map[string]string) {
	diffs, err := a.links.Ensure(c)
	for _, d := range diffs {
		res.LinkChanges = append(res.LinkChanges, c.Name+": "+d)
		if strings.HasPrefix(d, link.CreatedVeth) {
			fresh[c.Name] = true
		}
	}
	if err != nil {
		failed[c.Name] = err.Error()
	} else {
		a.linksChecked[c.Name] = c
	}
}

// ensureLinks converges the links left for later (once: it empties
// later), before the port transaction that adds them, and reports whether
// one failed: the caller then plans that transaction again without its
// port (replanPorts, or syncPorts again after errReplan).
func (a *Applier) ensureLinks(later *[]openapi.ContainerPort, res *ApplyResult, fresh map[string]bool, failed map[string]string) (anyFailed bool) {
	if len(*later) == 0 {
		return false
	}
	t := time.Now()
	for _, c := range *later {
		a.ensureLink(c, res, fresh, failed)
		_, bad := failed[c.Name]
		anyFailed = anyFailed || bad
	}
	*later = nil
	res.Timing.Links += time.Since(t)
	return anyFailed
}

// errReplan: syncPorts made links left for later before its transaction,
// and one failed; the caller plans again without its port.
var errReplan = errors.New("a new port's link failed: plan the ports again")

// replanPorts plans the pending port transaction (a.portOps) again for
// specs, giving the new ports the ofports the flows already name, and
// forgets the installed tables (flows of ports left out are in).
func (a *Applier) replanPorts(ctx context.Context, specs []portSpec, failed map[string]string) error {
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
func (a *Applier) planPorts(ctx context.Context, specs []portSpec, failed map[string]string, reuse map[string]int) (*planner, error) {
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
func (a *Applier) commitPorts(ctx context.Context, res *ApplyResult) error {
	t := time.Now()
	ops := a.portOps
	a.portOps = nil
	res.PortsAfterFlows = true
	err := a.db.transact(ctx, ops)
	if err != nil {
		a.installed.valid = false
		a.requested = nil
	}
	res.Timing.OVSDB += time.Since(t)
	return err
}

// validatePorts returns the ports of prog that are invalid as OVS ports.
func (a *Applier) validatePorts(prog *openapi.Program) map[string]string {
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
func (a *Applier) portSpecs(prog *openapi.Program, failed map[string]string) []portSpec {
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

func (a *Applier) intSpec(specs []portSpec) bridgeSpec {
	return bridgeSpec{
		Name: a.opts.Bridge, DatapathType: a.opts.Datapath, Prune: true, Ports: specs,
		IDs: map[string]string{KeyOwner: OwnerValue, KeyGeneration: strconv.Itoa(int(a.gen))},
	}
}

// statuses builds the port report of prog.
func (a *Applier) statuses(prog *openapi.Program, states map[string]portState, failed map[string]string, known map[string]bool) []openapi.PortStatus {
	var out []openapi.PortStatus
	linkUp, linkErr := a.linkStates(prog, known)
	add := func(name, container string, isContainer bool) {
		ps := openapi.PortStatus{Name: name, Container: container, OFPort: states[name].OFPort}
		if why, bad := failed[name]; bad {
			ps.Error = why
		} else if isContainer {
			up, found := linkUp[name]
			switch {
			case linkErr != nil:
				ps.Error = linkErr.Error()
			case !found:
				ps.Error = fmt.Sprintf("link %s: not found", name)
			}
			ps.Up = up
		} else {
			ps.Up = states[name].OFPort > 0
		}
		out = append(out, ps)
	}
	for _, tp := range prog.Tunnels {
		add(tp.Name, "", false)
	}
	for _, c := range prog.Containers {
		add(c.Name, c.Container, true)
	}
	return out
}

// linksUnchanged returns the link states of the last report that this
// apply has no reason to doubt: not a full pass, and links it did not
// touch, which were up and without error then. nil: none.
func (a *Applier) linksUnchanged(full bool, touched map[string]bool) map[string]bool {
	if full || a.applied == nil {
		return nil
	}
	known := map[string]bool{}
	for _, ps := range a.applied.ports {
		if ps.Error == "" && ps.Up && !touched[ps.Name] {
			known[ps.Name] = true
		}
	}
	return known
}

// linkStates returns whether each container link of prog is up: those in
// known as they are there, the others read from the kernel, one by one
// when they are few, else in one dump of the host's links (a dump walks
// every link of the host: most applies touch one or two).
func (a *Applier) linkStates(prog *openapi.Program, known map[string]bool) (map[string]bool, error) {
	const fewLinks = 8
	var ask []string
	for _, c := range prog.Containers {
		if _, ok := known[c.Name]; !ok {
			ask = append(ask, c.Name)
		}
	}
	if len(ask) == 0 {
		return known, nil
	}
	if len(ask) > fewLinks {
		return a.links.States()
	}
	out := make(map[string]bool, len(prog.Containers))
	for n, up := range known {
		out[n] = up
	}
	for _, n := range ask {
		up, found, err := a.links.State(n)
		if err != nil {
			return nil, err
		}
		if found {
			out[n] = up
		}
	}
	return out, nil
}

// resolveCached resolves prog's flows and groups, reusing the last apply's
// tables when the program (by digest), the generation and the ports are
// the same: re-applying an unchanged program of thousands of flows then
// costs no rendering.
func (a *Applier) resolveCached(prog *openapi.Program, ofports map[string]int, failed map[string]string, rendered *int) (flowTable, groupTable, []Dropped) {
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

// NetnsPath is the namespace of a container port: its netns path, or where
// its managed sandbox lives (health probes run there).
func (a *Applier) NetnsPath(p openapi.ContainerPort) string { return a.links.NetnsPath(p) }
