package converge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// One apply, start to end: the links a port needs exist before OVSDB
// names it; the switch's Pass plans and sends the ports and the flows;
// removed containers lose their links last, once neither OVS nor a flow
// uses them.

// Apply converges the host to prog. Per-port failures (a missing netns
// path, an interface OVS cannot open) are reported in the result and the
// rest of the program still applies; the error is set only when the host
// could not be converged (OVSDB or OpenFlow failed).
func (h *Host) Apply(ctx context.Context, prog *openapi.Program) (ApplyResult, error) {
	return h.ApplyDelta(ctx, prog, nil)
}

// ApplyDelta is Apply given also the delta d that leads from the program
// last applied to prog (nil: unknown). The result is the same; with d, the
// OpenFlow step costs the size of the change instead of the size of the
// program (package ovs, change.go), and only the change's links are
// checked. A d that does not lead from the last applied program is
// ignored.
func (h *Host) ApplyDelta(ctx context.Context, prog *openapi.Program, d *openapi.ProgramDelta) (ApplyResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	start := time.Now()
	res, err := h.apply(ctx, prog, d)
	res.Timing.Timing = res.Time
	res.Timing.Total = time.Since(start)
	return res, err
}

func (h *Host) apply(ctx context.Context, prog *openapi.Program, d *openapi.ProgramDelta) (res ApplyResult, err error) {
	if h.sw.TakeFullDue() {
		h.checkAll = true
	}
	full := h.checkAll || h.checkedLinks == nil
	fresh := map[string]bool{}
	p, err := h.sw.Begin(prog, d, full, fresh, &res.Report)
	defer func() { p.End(err) }()
	if err != nil {
		return res, err
	}
	res.Revision, res.Digest, res.Generation = prog.Revision, prog.Digest, p.Generation()
	failed := p.Failed()

	// 1. Links (removals come last, below).
	t := time.Now()
	ls := h.planLinks(prog, d, p.ByDelta(), full, failed)
	for _, c := range ls.now {
		h.ensureLink(c, &res, fresh, failed)
	}
	h.ensureDNSLinks(prog, full, &res, fresh, failed)
	res.Timing.Links = time.Since(t)

	// 2. Ports: one OVSDB transaction, sent now (the links it names made
	// first) or after the flows (Commit).
	now, err := p.Ports(ctx)
	if err == nil && now && h.ensureLinks(&ls.later, &res, fresh, failed) {
		now, err = p.Ports(ctx) // plan again without the port whose link failed
	}
	if err == nil && now {
		err = p.SendPorts(ctx)
	}
	if err != nil {
		return res, err
	}

	// 2b. The host's kernel side of its gateway.
	h.ensureGateway(ctx, prog, full, &res)

	// 3. OpenFlow.
	ferr := p.Flows(ctx)
	if h.ensureLinks(&ls.later, &res, fresh, failed) && p.Pending() {
		if rerr := p.Replan(ctx); rerr != nil {
			return res, errors.Join(ferr, rerr)
		}
	}
	if cerr := p.Commit(ctx); cerr != nil {
		return res, errors.Join(ferr, cerr)
	}

	// 4. Removed containers lose their veth and sandbox last, once neither
	// OVS nor a flow uses them.
	if ferr == nil && ls.prune {
		t = time.Now()
		pruned, perr := h.links.Prune(ls.keepPorts, ls.keepSandboxes)
		for _, name := range pruned {
			res.LinkChanges = append(res.LinkChanges, "deleted "+name)
		}
		if perr != nil {
			res.Warnings = append(res.Warnings, perr.Error())
		}
		res.Timing.Links += time.Since(t)
	}
	p.Finish()
	if ferr == nil {
		h.checkAll = false
	}
	if p.PortsUnchanged() && len(res.LinkChanges) == 0 && h.last != nil && h.last.ports != nil {
		// A change of flows alone: the ports are those of the last report
		// (the resync refreshes their link state).
		res.Ports = h.last.ports
	} else {
		res.Ports = h.statuses(prog, p.OFPort, failed, h.linksUnchanged(full, ls.touched))
	}
	h.last = &lastApply{prog: prog, failed: failed, ports: res.Ports}
	return res, ferr
}

// linkPlan is the links step of one apply.
type linkPlan struct {
	// now are the links to converge before the ports; later those of new
	// containers, made once their flows are in (or before a port
	// transaction that cannot wait).
	now, later []openapi.ContainerPort
	// touched are the container ports whose link this apply converges.
	touched map[string]bool
	// keepPorts and keepSandboxes are the program's; prune is set when a
	// link may have to go (a port went away, or a full pass).
	keepPorts, keepSandboxes map[string]bool
	prune                    bool
}

// planLinks works out which container links the apply converges: all of
// them on a full pass, else those not checked before or changed since.
// New containers' links wait until their flows are in when the apply goes
// by delta (then their ports get requested ofports and are added after the
// flows): ovs-vswitchd reconfigures on a new veth's notifications (linear
// in its ports) and reads no OpenFlow message meanwhile, so made first,
// the link held up the flows by one reconfiguration
// (docs/benchmarks-convergence.md, tenth pass). New: added by the delta
// and not in the program before (a changed port is removed and added
// again; its link exists already).
func (h *Host) planLinks(prog *openapi.Program, d *openapi.ProgramDelta, byDelta, full bool, failed map[string]string) linkPlan {
	ls := linkPlan{touched: map[string]bool{}, keepPorts: map[string]bool{}, keepSandboxes: map[string]bool{}, prune: full}
	if full {
		h.checkedLinks = map[string]openapi.ContainerPort{}
	}
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
		ls.keepPorts[c.Name] = true
		if sb := link.SandboxOf(c); sb != "" {
			ls.keepSandboxes[sb] = true
		}
		if _, bad := failed[c.Name]; bad {
			delete(h.checkedLinks, c.Name)
			continue
		}
		if ok, seen := h.checkedLinks[c.Name]; seen && ok == c {
			continue // checked before and unchanged since: resync looks again
		}
		ls.touched[c.Name] = true
		delete(h.checkedLinks, c.Name)
		if isNew[c.Name] {
			ls.later = append(ls.later, c)
		} else {
			ls.now = append(ls.now, c)
		}
	}
	// Something to prune only when a port went away or on a full pass.
	for name := range h.checkedLinks {
		if !ls.keepPorts[name] {
			ls.prune = true
			delete(h.checkedLinks, name)
		}
	}
	if h.last != nil {
		for _, c := range h.last.prog.Containers {
			ls.prune = ls.prune || !ls.keepPorts[c.Name]
		}
	}
	return ls
}

// ensureLink converges the link of container c, recording what it changed
// in res, a veth it made in fresh, a failure in failed.
func (h *Host) ensureLink(c openapi.ContainerPort, res *ApplyResult, fresh map[string]bool, failed map[string]string) {
	diffs, err := h.links.Ensure(c)
	recordLinkChanges(c.Name, diffs, res, fresh)
	if err != nil {
		failed[c.Name] = err.Error()
	} else {
		h.checkedLinks[c.Name] = c
	}
}

// recordLinkChanges adds port name's link changes to res, and the port to
// fresh when its veth was made.
func recordLinkChanges(name string, diffs []string, res *ApplyResult, fresh map[string]bool) {
	for _, d := range diffs {
		res.LinkChanges = append(res.LinkChanges, name+": "+d)
		if strings.HasPrefix(d, link.CreatedVeth) {
			fresh[name] = true
		}
	}
}

// ensureLinks converges the links left for later (once: it empties
// later), before the port transaction that adds them, and reports whether
// one failed: its port must then be planned again without it (Ports again
// before SendPorts, Replan after the flows).
func (h *Host) ensureLinks(later *[]openapi.ContainerPort, res *ApplyResult, fresh map[string]bool, failed map[string]string) (anyFailed bool) {
	if len(*later) == 0 {
		return false
	}
	t := time.Now()
	for _, c := range *later {
		h.ensureLink(c, res, fresh, failed)
		_, bad := failed[c.Name]
		anyFailed = anyFailed || bad
	}
	*later = nil
	res.Timing.Links += time.Since(t)
	return anyFailed
}

// ensureGateway runs the realizer once the port is in OVSDB; a failure
// degrades the apply without failing it (the overlay still works).
func (h *Host) ensureGateway(ctx context.Context, prog *openapi.Program, full bool, res *ApplyResult) {
	if h.opts.Gateway == nil {
		return
	}
	changes, err := h.opts.Gateway.Ensure(ctx, prog.Gateway, full)
	for _, c := range changes {
		res.LinkChanges = append(res.LinkChanges, "gateway: "+c)
	}
	if err != nil {
		res.GatewayError = err.Error()
		res.Warnings = append(res.Warnings, "gateway: "+err.Error())
	}
}

// statuses builds the port report of prog: ofport gives each port's
// ofport, known the container links' states this report may reuse.
func (h *Host) statuses(prog *openapi.Program, ofport func(string) int, failed map[string]string, known map[string]bool) []openapi.PortStatus {
	var out []openapi.PortStatus
	linkUp, linkErr := h.linkStates(prog, known)
	add := func(name, container string, isContainer bool) {
		ps := openapi.PortStatus{Name: name, Container: container, OFPort: ofport(name)}
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
			ps.Up = ps.OFPort > 0
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
func (h *Host) linksUnchanged(full bool, touched map[string]bool) map[string]bool {
	if full || h.last == nil {
		return nil
	}
	known := map[string]bool{}
	for _, ps := range h.last.ports {
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
func (h *Host) linkStates(prog *openapi.Program, known map[string]bool) (map[string]bool, error) {
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
		return h.links.States()
	}
	out := make(map[string]bool, len(prog.Containers))
	for n, up := range known {
		out[n] = up
	}
	for _, n := range ask {
		up, found, err := h.links.State(n)
		if err != nil {
			return nil, err
		}
		if found {
			out[n] = up
		}
	}
	return out, nil
}
