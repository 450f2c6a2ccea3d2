// Package converge is the node agent's one apply: it converges a host to an
// openapi.Program from any state, idempotently, by running the adapters in
// turn: the links (veths, sandboxes and the DNS namespace, package link),
// the switch (OVSDB ports and OpenFlow tables, package ovs, one Pass per
// apply) and the host's gateway (routes and NAT, package gateway through
// GatewayRealizer). It holds the desired state (the program it is given)
// against the installed state each adapter keeps for its side: here, the
// links last found as specified and the last program's port report; in
// package ovs, the switch's tables and ports. Observe compares the host
// with the last apply, for the agent's periodic resync.
//
// It must not talk to OVSDB, OpenFlow or netlink itself (the adapters do),
// and the adapters must not call each other: what one needs from another
// goes through here (the one exception, link's BeforeCreate hook, is wired
// here to ovs.Switch.ReleasePort). It must not fetch or interpret programs
// (the agent loop does).
package converge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
)

// Options configure a Host: the switch's (ovs.Options) and the links'.
type Options struct {
	ovs.Options
	// SandboxPrefix names managed sandbox namespaces (see link.Options).
	SandboxPrefix string
	// NetnsDir holds managed sandboxes, default /run/netns.
	NetnsDir string
	// HostNetns is the path of the namespace OVS and the host ends of the
	// veths live in; empty means the calling process's namespace.
	HostNetns string
	// ResolvConfDir, when set, gets managed sandboxes' resolv.conf
	// (link.Options.ResolvConfDir).
	ResolvConfDir string
	// Gateway, when set, realizes programs' gateways in the host's kernel
	// (package gateway); the switch then keeps the gateway port
	// openapi.GatewayPortName on br-int. Unset, flows naming that port are
	// left out.
	Gateway GatewayRealizer
}

// GatewayRealizer makes the host's kernel match a program's gateway (nil:
// none); full re-checks everything. Package gateway implements it.
type GatewayRealizer interface {
	Ensure(ctx context.Context, g *openapi.Gateway, full bool) ([]string, error)
	// Drift says how the host differs from g (nothing: in order); the
	// next Ensure with full set repairs it.
	Drift(ctx context.Context, g *openapi.Gateway) []string
}

// Host converges one host. Its methods are serialized.
type Host struct {
	mu    sync.Mutex
	opts  Options
	sw    *ovs.Switch
	links *link.Manager
	// checkedLinks holds the container ports whose links the last check
	// found (or made) exactly as specified; an apply trusts them until
	// Observe finds drift or everything is checked again (checkAll).
	checkedLinks map[string]openapi.ContainerPort
	// checkAll is set when the next apply must check every link and port,
	// not only the changed ones: after drift, a restart of the switch, an
	// OVSDB reconnect or a new generation.
	checkAll bool
	// last is the last program applied, with its port report.
	last *lastApply
	// dnsVNIs are the networks the DNS namespace was last converged for
	// (dnsOK: successfully).
	dnsVNIs []int64
	dnsOK   bool
}

// lastApply is the last program applied: failed says why its ports that
// could not be realized failed; ports is its port report (what a change of
// flows alone reports again).
type lastApply struct {
	prog   *openapi.Program
	failed map[string]string
	ports  []openapi.PortStatus
}

// New connects to OVSDB and prepares the link manager. It changes nothing.
func New(ctx context.Context, opts Options) (*Host, error) {
	opts.GatewayPort = opts.Gateway != nil
	sw, err := ovs.New(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	links, err := link.New(link.Options{
		HostNetns: opts.HostNetns, NetnsDir: opts.NetnsDir, SandboxPrefix: opts.SandboxPrefix,
		TxOffloadOff: sw.Options().Datapath == "netdev", ResolvConfDir: opts.ResolvConfDir,
		BeforeCreate: sw.ReleasePort,
	})
	if err != nil {
		sw.Close()
		return nil, err
	}
	return &Host{opts: opts, sw: sw, links: links}, nil
}

// Close disconnects from OVSDB and releases sockets, handles and temporary
// files. It leaves the host as it is.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return errors.Join(h.sw.Close(), h.links.Close())
}

// Switch is the host's switch adapter (generation, restarts, policy
// observer, trace).
func (h *Host) Switch() *ovs.Switch { return h.sw }

// NewGeneration starts a new flow generation on the switch
// (ovs.Switch.NewGeneration); the next apply checks everything.
func (h *Host) NewGeneration(ctx context.Context) (uint16, error) { return h.sw.NewGeneration(ctx) }

// NetnsPath is the namespace of a container port: its netns path, or where
// its managed sandbox lives (health probes run there).
func (h *Host) NetnsPath(p openapi.ContainerPort) string { return h.links.NetnsPath(p) }

// Timing is where an apply spent its time.
type Timing struct {
	Links, Total time.Duration
	ovs.Timing
}

// ApplyResult is the outcome of an Apply that did not fail as a whole.
type ApplyResult struct {
	Revision   int64
	Digest     string
	Generation uint16
	// Ports has one status per tunnel and container port of the program;
	// a port that could not be realized has Error set.
	Ports []openapi.PortStatus
	// LinkChanges lists what link and gateway convergence changed
	// ("c1: created veth").
	LinkChanges []string
	// GatewayError says why the host's gateway (routes, NAT table, egress
	// IPs) is not as the program says; the apply is then degraded.
	GatewayError string
	// Report is what the switch's side did (OpenFlow path, OVSDB
	// operations, dropped flows, warnings).
	ovs.Report
	Timing Timing
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
