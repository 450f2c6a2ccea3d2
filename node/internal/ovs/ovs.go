// Package ovs is the node agent's Open vSwitch adapter: a Switch puts a
// program's ports on br-int in ONE OVSDB transaction (tunnel and container
// ports, labelled with external_ids; new container ports get an ofport the
// switch requests, ofport.go) and its flows and groups in br-int's tables
// (${port:NAME} resolved to ofports, a generation in the cookie, installed
// atomically in bundles). A Pass is one apply's steps on the switch
// (apply.go), run in order by package converge, which makes the links
// between them. The flows go as the delta alone when the pass is given the
// delta from the program last applied (change.go): flow_mods and
// group_mods in a bundle over the switch's own OpenFlow connection
// (ofenc.go, ofgroup.go, ofbundle.go), or through an ovs-ofctl started
// ahead of time (spare.go) when the encoder does not know a flow's or
// group's syntax; else the whole table (sync.go).
// Observe compares OVSDB and the tables with the last apply, for the
// agent's periodic resync; EnsureUnderlayBridge builds the tunnel endpoint
// bridge (br-phy) on netdev hosts. Restarts reports restarts of
// ovs-vswitchd (seen on an idle OpenFlow connection to br-int) and OVSDB
// reconnects, around which the switch sets and clears
// other_config:flow-restore-wait (watch.go). PolicyObserver reads the
// counters of counted policy flows and receives logged connections, on
// OpenFlow connections of its own; the switch owns meter 1 on br-int, the
// log meter (policyobs.go), and meter 2, the reject meter: its listener
// answers reject packet-ins with a TCP RST or ICMP port unreachable
// (reject.go). Flows OVS learns (cookie openapi.LearnedCookie) are left
// alone by the drift check and by deltas; groups are compared by content
// (groups.go). The agent's own ports, the DNS port (Options.DNSNetns) and
// the gateway port (Options.GatewayPort), go in every apply's ports
// (dns.go, gateway.go).
//
// It must not make links, namespaces or kernel routes (package link and
// package gateway do; ReleasePort is what link calls before it makes a
// veth, wired by package converge), must not fetch or interpret programs
// (the agent loop does), must not touch ports or bridges it did not create
// (ownership is in external_ids), and must never flush the datapath: flows
// change only through bundles.
package ovs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/switchyard/switchyard/openapi"
)

// Options configure a Switch. Zero values take the defaults noted.
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
	// OFCtl is the ovs-ofctl binary, default "ovs-ofctl" from PATH.
	OFCtl string
	// PortTimeout bounds the wait for OVS to assign ofports, default 10 s.
	PortTimeout time.Duration
	// AssignedOFPorts makes OVS pick new container ports' ofports, the
	// flows waiting for them. By default the adapter requests them
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
	// the adapter's own connection (ofbundle.go), without a process.
	OFCtlDeltas bool
	// VSwitchdCtl is ovs-vswitchd's unixctl socket; empty: found in RunDir
	// (revalidate.go).
	VSwitchdCtl string
	// DNSNetns, when set, is the name of the agent's DNS namespace: the
	// switch keeps its port openapi.DNSPortName on br-int (dns.go).
	DNSNetns string
	// GatewayPort, when set, keeps the gateway port
	// openapi.GatewayPortName on br-int while a program has a gateway
	// (gateway.go). Unset, flows naming that port are left out.
	GatewayPort bool
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

// Switch is one host's Open vSwitch (br-int and br-phy). Its methods are
// serialized; a Pass holds it from Begin to End.
type Switch struct {
	mu   sync.Mutex
	opts Options
	off  map[string]bool // portsOff
	db   *db
	of   *ofctl
	// query is the adapter's OpenFlow connection for the delta path's
	// drift check (change.go).
	query queryConn
	// mods is its OpenFlow connection for the delta path's flow_mods
	// (ofbundle.go).
	mods modConn
	gen  uint16
	// installed is what br-int's tables hold (as far as the adapter knows).
	installed switchTables
	// applied is the last program applied, with its ports and outcome.
	applied *appliedProgram
	// frw is set while OVSDB holds a flow-restore-wait this adapter set
	// (see watch.go); the next successful flow sync clears it.
	frw bool
	// fullDue is set when the switch restarted, the OVSDB connection came
	// back or a new generation began: the next apply checks everything
	// (TakeFullDue).
	fullDue atomic.Bool
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
	canonOf   map[string]canonMod
	restarts  chan string
	kick      chan struct{}
	stopWatch context.CancelFunc
}

// switchTables is what the adapter last put in br-int's tables. valid means
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

// New connects to OVSDB. It changes nothing.
func New(ctx context.Context, opts Options) (*Switch, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "switchyard-ofctl-")
	if err != nil {
		return nil, err
	}
	a := &Switch{opts: opts, off: agentPortsOff(opts), of: &ofctl{bin: opts.OFCtl, rundir: opts.RunDir, tmp: tmp},
		restarts: make(chan string, 1), kick: make(chan struct{}, 1)}
	a.query.socket = a.of.socket(opts.Bridge)
	a.mods.socket = a.query.socket
	d, err := connectDB(ctx, opts.DB, opts.Logger, a.dbReconnected)
	if err != nil {
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
func (a *Switch) Close() error {
	a.stopWatch()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.db.c.Close()
	a.query.close()
	a.mods.close()
	a.of.closeSpares()
	return os.RemoveAll(a.of.tmp)
}

func parseGen(s string) uint16 {
	n, _ := strconv.ParseUint(s, 10, 16)
	return uint16(n)
}

// Generation is the generation flows are installed with.
func (a *Switch) Generation() uint16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// NewGeneration increments the generation stored in the bridge's
// external_ids:switchyard-generation (call it once when the agent starts).
// The next Apply installs every flow with the new generation in one
// replace-flows bundle, replacing the old generation atomically.
func (a *Switch) NewGeneration(ctx context.Context) (uint16, error) {
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
	a.fullDue.Store(true)
	return next, nil
}

// TakeFullDue reports, once, whether the next apply must check everything
// (the switch restarted, OVSDB reconnected, or a new generation began).
func (a *Switch) TakeFullDue() bool { return a.fullDue.Swap(false) }

// Options are the switch's options, with defaults filled in.
func (a *Switch) Options() Options { return a.opts }
