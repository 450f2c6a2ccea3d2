package compile

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Compiler compiles a snapshot and then keeps it up to date with object
// changes, recomputing only the hosts a change touches. It is not safe for
// concurrent use: callers serialize Full, Apply and Program. Programs it
// returns are never modified afterwards; callers may keep them.
type Compiler struct {
	rev      int64
	hosts    map[string]*hostState
	nets     map[string]*netState
	ctrs     map[string]*ctrState
	byHost   map[string]map[string]*ctrState // host name -> containers naming it, active or not
	byNet    map[string]map[string]*ctrState // network name -> containers naming it, active or not
	services map[string]*svcState
	// svcByNet indexes services by network name; dirtySvcs are the
	// services the running Apply must recompute; health holds the
	// verdicts by "<service ID>/<container ID>".
	svcByNet  map[string]map[string]*svcState
	dirtySvcs map[*svcState]bool
	health    map[string]openapi.EndpointHealth
	domain    string // DNS domain of container ports
	policies  map[string]*polState
	// polByNet indexes policies by network name; dirtyPols are the
	// policies whose flows the running Apply must recompute.
	polByNet  map[string]map[string]*polState
	dirtyPols map[*polState]bool
	pkeys     map[polKey]*pkey // interned policy flow keys

	// extDirty are the hosts whose external state the running Apply must
	// recompute; extAll: every host's.
	extDirty map[*hostState]bool
	extAll   bool
	// holders are the egress IP holders, by network; clusterNP: some
	// network has a Cluster node port (settlePins).
	holders   map[*netState]*hostState
	clusterNP bool

	// bulk is set while Full loads a snapshot: per-host change bookkeeping
	// is skipped and programs are built from scratch at the end.
	bulk bool
	// txn records what the running Apply changed, per host name.
	txn map[string]*hostTxn
}

// hostState is one host and everything its program is made of.
type hostState struct {
	obj   openapi.Host
	peers map[string]int       // peer host -> number of networks present on both
	local map[string]*ctrState // active containers on this host, by ID

	// Groups, DNS records and health probes placed on this host.
	groups elemSet[uint32, openapi.Group]
	health elemSet[string, openapi.HealthProbe]

	// ext is what external access placed here; route the flows other
	// hosts use to reach this host's gateway port (nil: not built yet).
	ext   extState
	route []flowRec

	sums   program.Sums
	digest string
	rev    int64
	// prog is the last materialized program; pend holds the net flow
	// changes since, stale is set when prog is out of date.
	prog  *openapi.Program
	pend  map[program.Key]*pending
	stale bool

	idx int // position in Full's host order
}

// pending is a net change of a flow's multiplicity.
type pending struct {
	f *flowRec
	n int
}

// netState is one network and its compiled containers.
type netState struct {
	obj     openapi.Network
	p       *netParams               // nil when the network cannot be compiled
	active  map[string]*ctrState     // compiled containers, by ID
	present map[string]*presence     // hosts where the network is present
	blocks  map[blockKey]*blockState // IPAM blocks with active containers (blocks.go)
	dns     elemSet[string, openapi.DNSRecord]
	dnsSums *program.Sums // of dns; nil when out of date
	idx     int           // position in Full's network order
	// pins are the hosts where external access keeps the network present
	// without a container (see settlePins).
	pins map[string]bool
}

// presence is one network on one host: how many of its containers are there,
// and the classifier flow for its traffic from the tunnel towards that host.
type presence struct {
	n   int
	tun []flowRec // one flow: tunnelFlow(host, network)
}

// ctrState is one container; f, net and host are set while it is compiled.
type ctrState struct {
	obj  openapi.Container
	f    *ctrFlows
	net  *netState
	host *hostState
}

// HostUpdate is what Apply changed for one host.
type HostUpdate struct {
	Host string
	// Removed: the host left the snapshot; it has no program any more.
	Removed bool
	// New: the host has no previous program (Delta.FromDigest is empty and
	// the delta carries the whole program).
	New bool
	// Digest of the new program.
	Digest string
	// Delta from the previous program to the new one; nil when Removed.
	Delta *openapi.ProgramDelta
}

// New returns an empty compiler; start it with Full.
func New() *Compiler {
	c := &Compiler{domain: DefaultDNSDomain}
	c.reset()
	return c
}

func (c *Compiler) reset() {
	c.hosts = map[string]*hostState{}
	c.nets = map[string]*netState{}
	c.ctrs = map[string]*ctrState{}
	c.byHost = map[string]map[string]*ctrState{}
	c.byNet = map[string]map[string]*ctrState{}
	c.services = map[string]*svcState{}
	c.svcByNet = map[string]map[string]*svcState{}
	c.dirtySvcs = map[*svcState]bool{}
	c.health = map[string]openapi.EndpointHealth{}
	c.policies = map[string]*polState{}
	c.polByNet = map[string]map[string]*polState{}
	c.dirtyPols = map[*polState]bool{}
	c.pkeys = map[polKey]*pkey{}
	c.extDirty = map[*hostState]bool{}
	c.extAll = false
	c.holders = map[*netState]*hostState{}
	c.clusterNP = false
}

// Compile compiles s from scratch: the program of every host in s, by host
// name.
func Compile(s *Snapshot) map[string]*openapi.Program { return New().Full(s) }

// Full forgets everything, loads s and compiles the program of every host in
// it, by host name.
func (c *Compiler) Full(s *Snapshot) map[string]*openapi.Program {
	c.reset()
	c.rev = s.Revision
	c.domain = cmp.Or(s.DNSDomain, DefaultDNSDomain)
	c.bulk = true
	for i := range s.Hosts {
		c.apply(PutHost(s.Hosts[i]))
	}
	for i := range s.Networks {
		c.apply(PutNetwork(s.Networks[i]))
	}
	for i := range s.Containers {
		c.apply(PutContainer(s.Containers[i]))
	}
	for i := range s.Services {
		c.apply(PutService(s.Services[i]))
	}
	for i := range s.EndpointHealth {
		c.apply(PutEndpointHealth(s.EndpointHealth[i]))
	}
	for i := range s.Policies {
		c.apply(PutPolicy(s.Policies[i]))
	}
	c.settlePins()
	c.flushPolicies()
	c.flushServices()
	c.flushExternal()
	c.bulk = false
	return c.buildAll()
}

// ErrInconsistent marks a bug in the compiler's own bookkeeping, never bad
// input. The compiler's objects (Snapshot) are still right: the caller
// recovers with a fresh compiler loaded from them (New().Full(c.Snapshot())).
var ErrInconsistent = errors.New("compile: internal inconsistency")

// Program returns the current program of host, or nil if there is no such
// host. It is built on demand from the previous one and the changes since.
// It fails (with ErrInconsistent) only if the pending changes do not fit the
// previous program; the host's program is then unknown until the caller
// recompiles from scratch.
func (c *Compiler) Program(host string) (*openapi.Program, error) {
	h := c.hosts[host]
	if h == nil {
		return nil, nil
	}
	if h.prog != nil && !h.stale {
		return h.prog, nil
	}
	var old []openapi.Flow
	if h.prog != nil {
		old = h.prog.Flows
	}
	flows, err := mergeFlows(old, h.pend)
	if err != nil {
		return nil, fmt.Errorf("%w: host %s: %v", ErrInconsistent, host, err)
	}
	p := c.newProgram(h, flows)
	h.prog, h.pend, h.stale = p, map[program.Key]*pending{}, false
	return p, nil
}

// Hosts lists the hosts that have a program, sorted.
func (c *Compiler) Hosts() []string {
	names := make([]string, 0, len(c.hosts))
	for n := range c.hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (c *Compiler) newProgram(h *hostState, flows []openapi.Flow) *openapi.Program {
	groups := h.groups.list()
	if groups == nil {
		groups = []openapi.Group{}
	}
	return &openapi.Program{
		Host:         h.obj.Name,
		Revision:     h.rev,
		Digest:       h.digest,
		Bridge:       bridgeSpec(),
		Tunnels:      c.tunnelPorts(h),
		Containers:   containerPorts(h),
		Flows:        flows,
		Groups:       groups,
		DNS:          c.hostDNS(h),
		HealthChecks: h.health.list(),
		Gateway:      h.ext.gw,
	}
}

func bridgeSpec() openapi.BridgeSpec {
	return openapi.BridgeSpec{Name: BridgeName, FailMode: BridgeFailMode}
}

// tunnelPort is h's tunnel port towards peer.
func tunnelPort(h, peer *hostState) openapi.TunnelPort {
	return openapi.TunnelPort{
		Name:     TunnelPortName(peer.obj.Name),
		Type:     TunnelType(h.obj.TunnelType, peer.obj.TunnelType),
		PeerHost: peer.obj.Name,
		RemoteIP: peer.obj.Address,
	}
}

func (c *Compiler) tunnelPorts(h *hostState) []openapi.TunnelPort {
	ts := make([]openapi.TunnelPort, 0, len(h.peers))
	for peer := range h.peers {
		ts = append(ts, tunnelPort(h, c.hosts[peer]))
	}
	slices.SortFunc(ts, func(a, b openapi.TunnelPort) int { return cmp.Compare(a.Name, b.Name) })
	return ts
}

func containerPorts(h *hostState) []openapi.ContainerPort {
	cs := make([]openapi.ContainerPort, 0, len(h.local))
	for _, ct := range h.local {
		cs = append(cs, ct.f.port)
	}
	slices.SortFunc(cs, func(a, b openapi.ContainerPort) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return cs
}

// mergeFlows applies the net changes pend to the sorted flows old and
// returns the new sorted flows. It fails if pend removes a flow old does not
// have: that would be a bug in the bookkeeping, not bad input.
func mergeFlows(old []openapi.Flow, pend map[program.Key]*pending) ([]openapi.Flow, error) {
	var adds, dels []*openapi.Flow
	for _, p := range pend {
		for i := 0; i < p.n; i++ {
			adds = append(adds, &p.f.Flow)
		}
		for i := 0; i < -p.n; i++ {
			dels = append(dels, &p.f.Flow)
		}
	}
	return program.MergeFlows(old, adds, dels)
}
