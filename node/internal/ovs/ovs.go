// Package ovs is the node agent's datapath applier: Apply converges a host
// to an openapi.Program from any state, idempotently, in three steps: links
// (veths and sandboxes, through package link), then ONE OVSDB transaction
// (br-int, its tunnel and container ports, labelled with external_ids; new
// container ports get an ofport the applier requests, ofport.go), then
// OpenFlow (flows and groups with ${port:NAME} resolved to ofports and a
// generation in the cookie, installed atomically in ovs-ofctl bundles).
// ApplyDelta is Apply given the delta from the program last applied: its
// OpenFlow step renders and sends only the delta's flows and groups
// (change.go), as flow_mods and group_mods in a bundle over the applier's
// own OpenFlow connection (ofenc.go, ofgroup.go, ofbundle.go), or through
// an ovs-ofctl started ahead of time (spare.go) when the encoder does not
// know a flow's or group's syntax.
// Observe reports port status and drift for the agent's periodic resync;
// EnsureUnderlay builds the tunnel endpoint bridge (br-phy) on netdev hosts.
// Restarts reports restarts of ovs-vswitchd (seen on an idle OpenFlow
// connection to br-int) and OVSDB reconnects, around which the applier sets
// and clears other_config:flow-restore-wait (watch.go). PolicyObserver reads
// the counters of counted policy flows and receives logged connections, on
// OpenFlow connections of its own; the applier owns meter 1 on br-int, the
// log meter (policyobs.go), and meter 2, the reject meter: its listener
// answers reject packet-ins with a TCP RST or ICMP port unreachable
// (reject.go). Flows OVS learns (cookie openapi.LearnedCookie) are left
// alone by the drift check and by deltas; groups are compared by content
// (groups.go). With Options.DNSNetns it also keeps the agent's
// DNS namespace (through package link) and its port sydns0 on br-int, an
// agent port every apply includes (dns.go).
//
// It must not fetch or interpret programs (the agent loop does), must not
// touch ports, bridges, links or namespaces it did not create (ownership is
// in external_ids, veth aliases and the sandbox prefix), and must never
// flush the datapath: flows change only through bundles.
package ovs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// Options configure an Applier. Zero values take the defaults noted.
type Options struct {
	// DB is the OVSDB endpoint, default "unix:/var/run/openvswitch/db.sock".
	DB string
	// RunDir is OVS_RUNDIR, where <bridge>.mgmt sockets live; default
	// "/var/run/openvswitch".
	RunDir string
	// Datapath is the bridges' datapath_type: "netdev" (default, userspace)
	// or "system" (kernel module).
	Datapath string
	// Bridge is the integration bridge, default "br-int".
	Bridge string
	// UnderlayBridge is the tunnel endpoint bridge EnsureUnderlay builds on
	// netdev, default "br-phy".
	UnderlayBridge string
	// SandboxPrefix names managed sandbox namespaces (see link.Options).
	SandboxPrefix string
	// NetnsDir holds managed sandboxes, default /run/netns.
	NetnsDir string
	// HostNetns is the path of the namespace OVS and the host ends of the
	// veths live in; empty means the calling process's namespace.
	HostNetns string
	// OFCtl is the ovs-ofctl binary, default "ovs-ofctl" from PATH.
	OFCtl string
	// PortTimeout bounds the wait for OVS to assign ofports, default 10 s.
	PortTimeout time.Duration
	// AssignedOFPorts makes OVS pick new container ports' ofports, the
	// flows waiting for them. By default the applier requests them
	// (ofport_request, ofport.go) and installs the flows at once: the
	// first packet passes sooner (BenchmarkFirstPacket).
	AssignedOFPorts bool
	// PolicyLogRate is the log meter's rate (LogMeterID): at most this many
	// logged connections per second reach the agent; default
	// DefaultPolicyLogRate.
	PolicyLogRate int
	// RejectRate is the reject meter's rate (openapi.RejectMeter): at most
	// this many rejected connections per second reach the agent (reject.go);
	// 0 means DefaultRejectRate.
	RejectRate int
	// OFCtlDeltas sends every delta path change through ovs-ofctl. By
	// default the changes the encoder knows go as OpenFlow flow_mods over
	// the applier's own connection (ofbundle.go), without a process.
	OFCtlDeltas bool
	// VSwitchdCtl is ovs-vswitchd's unixctl socket; empty: found in RunDir
	// (revalidate.go).
	VSwitchdCtl string
	// DNSNetns, when set, is the name of the agent's DNS namespace: the
	// applier keeps it and its port openapi.DNSPortName on br-int (dns.go).
	DNSNetns string
	// ResolvConfDir, when set, gets managed sandboxes' resolv.conf
	// (link.Options.ResolvConfDir).
	ResolvConfDir string
	// Gateway, when set, realizes programs' gateways in the host's kernel
	// (package gateway); the applier then keeps the gateway port
	// openapi.GatewayPortName on br-int (gateway.go). Unset, flows naming
	// that port are left out.
	Gateway GatewayRealizer
	// Logger receives libovsdb's log; nil discards it.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.DB, "unix:/var/run/openvswitch/db.sock")
	def(&o.RunDir, "/var/run/openvswitch")
	def(&o.Datapath, "netdev")
	def(&o.Bridge, "br-int")
	def(&o.UnderlayBridge, "br-phy")
	def(&o.OFCtl, "ovs-ofctl")
	if o.PortTimeout == 0 {
		o.PortTimeout = 10 * time.Second
	}
	if o.PolicyLogRate == 0 {
		o.PolicyLogRate = DefaultPolicyLogRate
	}
	if o.RejectRate == 0 {
		o.RejectRate = DefaultRejectRate
	}
	if o.RejectRate < 0 {
		return fmt.Errorf("reject rate %d: want a positive number of packets per second", o.RejectRate)
	}
	if o.PolicyLogRate < 0 {
		return fmt.Errorf("policy log rate %d: want a positive number of packets per second", o.PolicyLogRate)
	}
	if o.Datapath != "netdev" && o.Datapath != "system" {
		return fmt.Errorf("datapath %q: want netdev or system", o.Datapath)
	}
	return nil
}

// Applier applies programs to one host. Its methods are serialized.
type Applier struct {
	mu    sync.Mutex
	opts  Options
	off   map[string]bool // portsOff
	db    *db
	links *link.Manager
	of    *ofctl
	// query is the applier's OpenFlow connection for the delta path's
	// drift check (change.go).
	query queryConn
	// mods is its OpenFlow connection for the delta path's flow_mods
	// (ofbundle.go).
	mods modConn
	gen  uint16
	// installed is what br-int's tables hold (as far as the applier knows).
	installed switchTables
	// applied is the last program applied, with its ports and outcome.
	applied *appliedProgram
	// linksChecked holds the container ports whose links the last full
	// check found (or made) exactly as specified; Apply trusts them until
	// Observe finds drift or the agent restarts.
	linksChecked map[string]openapi.ContainerPort
	linksFull    bool
	// frw is set while OVSDB holds a flow-restore-wait this applier set
	// (see watch.go); the next successful flow sync clears it.
	frw bool
	// dbLost is set when the OVSDB connection came back; the next Apply
	// then checks everything.
	dbLost atomic.Bool
	// ofUp is set while the watcher is connected to br-int.
	ofUp atomic.Bool
	// ofports picks ofport_requests (ofport.go); requested are the ports
	// of this apply whose flows went in with the ofport requested, before
	// OVS confirmed it.
	ofports   ofportAlloc
	requested map[string]int
	// portOps is the OVSDB transaction of an apply whose new ports all
	// have a requested ofport: it is sent after their flows (commitPorts).
	portOps []ovsdb.Operation
	// canonOf is the canonical spelling of each installed flow (by key),
	// as the last drift check found it (canon.go).
	canonOf map[string]canonMod
	// dnsVNIs are the networks the DNS namespace was last converged for
	// (dnsOK: successfully).
	dnsVNIs   []int64
	dnsOK     bool
	restarts  chan string
	kick      chan struct{}
	stopWatch context.CancelFunc
}

// switchTables is what the applier last put in br-int's tables. valid means
// the switch is known to hold exactly that (else the next sync is full).
type switchTables struct {
	valid  bool
	gen    uint16
	flows  flowTable
	groups groupTable
	// canon is flows in OVS's canonical spelling, computed by Observe.
	canon canonFlows
	// groupCanon is the groups as the switch described them (OF1.5 group
	// desc entries) right after they were installed (groups.go); nil: not
	// known.
	groupCanon map[uint32][]byte
	// groupsUnread is set when groups changed and groupCanon was not read
	// since (the apply reads it once the change is in force).
	groupsUnread bool
	// idx indexes flows for the delta path (change.go), built on first use.
	idx *flowIndex
}

// appliedProgram remembers the last program and its outcome, for Observe.
type appliedProgram struct {
	prog    *openapi.Program
	specs   []portSpec
	ofports map[string]int
	failed  map[string]string
	// resolved caches resolve's output for the program's digest.
	resolved *resolvedTables
	// ports is the apply's port report.
	ports []openapi.PortStatus
	// exact is set when the apply succeeded with nothing failed or
	// dropped: the switch then holds exactly the program's tables (until
	// a restart or drift invalidates inst), and the next apply may take
	// the delta path.
	exact bool
}

// ovsFailed reports whether a port given to OVS failed there (no ofport,
// or an error on its interface): only a full pass retries it.
func (p *appliedProgram) ovsFailed() bool {
	for _, ps := range p.specs {
		if _, bad := p.failed[ps.Name]; bad {
			return true
		}
	}
	return false
}

type resolvedTables struct {
	digest  string
	gen     uint16
	ofports map[string]int
	failed  map[string]string
	flows   flowTable
	groups  groupTable
	dropped []Dropped
}

// New connects to OVSDB and prepares the link manager. It changes nothing.
func New(ctx context.Context, opts Options) (*Applier, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "switchyard-ofctl-")
	if err != nil {
		return nil, err
	}
	a := &Applier{opts: opts, off: agentPortsOff(opts), of: &ofctl{bin: opts.OFCtl, rundir: opts.RunDir, tmp: tmp},
		restarts: make(chan string, 1), kick: make(chan struct{}, 1)}
	a.query.socket = a.of.socket(opts.Bridge)
	a.mods.socket = a.query.socket
	links, err := link.New(link.Options{
		HostNetns: opts.HostNetns, NetnsDir: opts.NetnsDir,
		SandboxPrefix: opts.SandboxPrefix, TxOffloadOff: opts.Datapath == "netdev", ResolvConfDir: opts.ResolvConfDir,
		BeforeCreate: a.releasePort,
	})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	a.links = links
	d, err := connectDB(ctx, opts.DB, opts.Logger, a.dbReconnected)
	if err != nil {
		links.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	a.db = d
	if s, err := d.snapshot(ctx); err == nil {
		if b := s.bridges[opts.Bridge]; b != nil {
			a.gen = parseGen(b.ExternalIDs[KeyGeneration])
		}
		// Set by an earlier run that did not get to clear it.
		a.frw = s.root.ExternalIDs[KeyFlowRestoreWait] != ""
	}
	wctx, cancel := context.WithCancel(context.Background())
	a.stopWatch = cancel
	go a.watchSwitch(wctx)
	return a, nil
}

// Close disconnects from OVSDB and releases sockets and temporary files. It
// leaves the datapath as it is.
func (a *Applier) Close() error {
	a.stopWatch()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.db.c.Close()
	a.query.close()
	a.mods.close()
	a.of.closeSpares()
	err := a.links.Close()
	return errors.Join(err, os.RemoveAll(a.of.tmp))
}

func parseGen(s string) uint16 {
	n, _ := strconv.ParseUint(s, 10, 16)
	return uint16(n)
}

// Generation is the generation flows are installed with.
func (a *Applier) Generation() uint16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// NewGeneration increments the generation stored in the bridge's
// external_ids:switchyard-generation (call it once when the agent starts).
// The next Apply installs every flow with the new generation in one
// replace-flows bundle, replacing the old generation atomically.
func (a *Applier) NewGeneration(ctx context.Context) (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return 0, err
	}
	cur := a.gen
	b := s.bridges[a.opts.Bridge]
	if b != nil {
		cur = parseGen(b.ExternalIDs[KeyGeneration])
	}
	next := cur + 1
	if next == 0 {
		next = 1
	}
	if b != nil {
		ids, _ := merged(b.ExternalIDs, map[string]string{KeyGeneration: strconv.Itoa(int(next))})
		up := &bridgeRow{UUID: b.UUID, ExternalIDs: ids}
		ops, err := a.db.c.Where(up).Update(up, &up.ExternalIDs)
		if err != nil {
			return 0, err
		}
		if err := a.db.transact(ctx, ops); err != nil {
			return 0, err
		}
	}
	a.gen = next
	a.installed.valid = false
	a.linksFull = true
	return next, nil
}
