package openapi

import (
	"fmt"
	"net/netip"
	"time"
)

// The node protocol: what the controller hands a node agent, and what the agent
// reports back. Described in openapi.yaml under /api/v1/nodes.

// Program is everything one host must realize at one revision. It is computed
// by the controller's pure compiler and applied by the agent, idempotently.
//
// Flows and groups are ovs-ofctl text. Port numbers are not known to the
// compiler: a match or action names a port as ${port:NAME}, where NAME is the
// OVS port name of a tunnel or container port in this program, and the agent
// substitutes the ofport it reads back from OVSDB.
type Program struct {
	Host     string `json:"host"`
	Revision int64  `json:"revision"`
	// Digest is a hash of the program's content (not its revision): equal
	// digests mean equal programs.
	Digest     string          `json:"digest"`
	Bridge     BridgeSpec      `json:"bridge"`
	Tunnels    []TunnelPort    `json:"tunnels"`
	Containers []ContainerPort `json:"containers"`
	Flows      []Flow          `json:"flows"`
	Groups     []Group         `json:"groups"`
	// DNS are the names of the networks present on this host, served by
	// the agent's resolver.
	DNS []DNSRecord `json:"dns,omitempty"`
	// HealthChecks are the probes the agent runs on its local backends.
	HealthChecks []HealthProbe `json:"healthChecks,omitempty"`
	// Gateway is the host's port between br-int and its own IP stack, and
	// the NAT its kernel does for external access (nil: none).
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway is what the agent realizes for external access (docs/external.md):
// the internal port GatewayPortName on br-int with MAC, routes into it,
// nftables NAT rules in the table NATTable, and the egress IPs this host
// holds on its underlay bridge.
type Gateway struct {
	// MAC is HostMAC(the host's address).
	MAC string `json:"mac"`
	// Address is the host's address (its underlay address): where
	// published and node ports are reached, and the SNAT source.
	Address string `json:"address"`
	// Routes go into the gateway port, sorted by Dst.
	Routes []GatewayRoute `json:"routes,omitempty"`
	// NAT rules, sorted by Key.
	NAT []NATRule `json:"nat,omitempty"`
	// EgressIPs are the addresses this host holds (sorted): the agent puts
	// them on its underlay bridge (as /32) and announces them.
	EgressIPs []string `json:"egressIPs,omitempty"`
}

// GatewayRoute is one route of the host's kernel into br-int: Dst (a
// prefix) on the gateway port, through Via when set (onlink), else direct.
type GatewayRoute struct {
	Dst string `json:"dst"`
	Via string `json:"via,omitempty"`
}

// NATRule is one rule of the host's NAT table.
type NATRule struct {
	// Kind is NATPublish, NATNodePort or NATEgress.
	Kind string `json:"kind"`
	// Owner names the object: "container/<id>", "service/<id>" or
	// "network/<name>".
	Owner string `json:"owner"`
	// Publish and node port: connections to Protocol HostIP:HostPort
	// (HostIP empty: any local address) are DNATed to ToIP:ToPort.
	Protocol string `json:"protocol,omitempty"`
	HostIP   string `json:"hostIP,omitempty"`
	HostPort int    `json:"hostPort,omitempty"`
	ToIP     string `json:"toIP,omitempty"`
	ToPort   int    `json:"toPort,omitempty"`
	// Egress: packets from Source (a network's CIDR) leaving the host
	// other than into br-int are SNATed to SNATTo (empty:
	// Gateway.Address).
	Source string `json:"source,omitempty"`
	SNATTo string `json:"snatTo,omitempty"`
}

// NAT rule kinds.
const (
	NATPublish  = "publish"
	NATNodePort = "nodePort"
	NATEgress   = "egress"
)

// Key identifies r within a gateway.
func (r *NATRule) Key() string {
	return fmt.Sprintf("%s/%s/%s/%s/%d/%s", r.Kind, r.Owner, r.Protocol, r.HostIP, r.HostPort, r.Source)
}

// The gateway port and the agent's NAT table.
const (
	GatewayPortName = "sygw0"
	NATTable        = "switchyard"
)

// HostMAC is the MAC of the gateway port of the host with IPv4 address ip:
// 0a:59 followed by its four bytes (the compiler addresses a host's gateway
// port with it, from any host).
func HostMAC(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	b := a.As4()
	return fmt.Sprintf("0a:59:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// DNSRecord is one name of a network present on a host.
type DNSRecord struct {
	Network string `json:"network"`
	VNI     int64  `json:"vni"`
	// Kind is DNSContainer or DNSService.
	Kind string `json:"kind"`
	// Name is the container's or service's name, unqualified.
	Name string `json:"name"`
	// IP is the container's address or the service's VIP.
	IP string `json:"ip"`
	// Ports are a service's ports (named ones get SRV records).
	Ports []ServicePort `json:"ports,omitempty"`
}

// DNS record kinds.
const (
	DNSContainer = "container"
	DNSService   = "service"
)

// Key identifies r within a program.
func (r *DNSRecord) Key() string { return r.Network + "/" + r.Kind + "/" + r.Name }

// HealthProbe is one health check the agent runs against a local backend.
type HealthProbe struct {
	// Service and Container are IDs.
	Service     string `json:"service"`
	ServiceName string `json:"serviceName"`
	Container   string `json:"container"`
	// Port is the backend's ContainerPort.Name (its veth on br-int).
	Port  string      `json:"port"`
	IP    string      `json:"ip"`
	Check HealthCheck `json:"check"`
}

// Key identifies h within a program.
func (h *HealthProbe) Key() string { return h.Service + "/" + h.Container }

// What the compiler and the agent agree on for the node-local resolver and
// learned flows.
const (
	// DNSPortName is the agent's port on br-int towards its DNS namespace.
	DNSPortName = "sydns0"
	// DNSMAC is the MAC of the DNS namespace's interface.
	DNSMAC = "0a:58:a9:fe:00:35"
	// DNSNextHopMAC is the MAC the DNS namespace sends its answers to.
	DNSNextHopMAC = "0a:58:a9:fe:00:01"
	// DNSBase is the first address of the DNS namespace's range: a
	// network's resolver there is DNSBase + VNI (see DNSAddr). It is in
	// 240.0.0.0/4 (reserved), so it never equals a container's address.
	DNSBase = "240.0.0.0"
	// LearnedCookie is the cookie of flows OVS learns (session affinity):
	// they are not in any program and the agent leaves them alone.
	LearnedCookie uint64 = 0x00000000_5e1ea2ed
	// RejectUserdata is the controller() userdata of packets the agent must
	// reject (TCP RST or ICMP port unreachable), through meter RejectMeter.
	RejectUserdata = "73.79.72.6a"
	// RejectMeter is the agent's meter for rejects (meter 1 rate-limits
	// policy logs).
	RejectMeter = 2
)

// DNSAddr is the address of network vni's resolver inside the DNS namespace.
func DNSAddr(vni int64) string {
	v := uint32(240<<24) + uint32(vni&0xffffff)
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff)
}

// BridgeSpec describes the integration bridge.
type BridgeSpec struct {
	Name string `json:"name"`
	// FailMode is always "secure": no flows means no forwarding.
	FailMode string `json:"failMode"`
}

// TunnelPort is one tunnel port on br-int towards one peer host.
type TunnelPort struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PeerHost string `json:"peerHost"`
	RemoteIP string `json:"remoteIP"`
}

// ContainerPort is one container attached to br-int through a veth.
type ContainerPort struct {
	// Name is the OVS port name: the host end of the veth (at most 15 bytes).
	Name      string `json:"name"`
	Container string `json:"container"`
	ID        string `json:"id"`
	Network   string `json:"network"`
	// Netns is the path of an existing namespace, or empty for a managed
	// sandbox named Sandbox.
	Netns     string `json:"netns,omitempty"`
	Sandbox   string `json:"sandbox,omitempty"`
	IP        string `json:"ip"`
	PrefixLen int    `json:"prefixLen"`
	MAC       string `json:"mac"`
	Gateway   string `json:"gateway"`
	MTU       int    `json:"mtu"`
	// DNSDomain and DNSSearch configure the container's resolver (its
	// Gateway): DNSSearch is "<network>.<domain> <domain>" (space-separated,
	// as in resolv.conf; a string keeps ContainerPort comparable).
	DNSDomain string `json:"dnsDomain,omitempty"`
	DNSSearch string `json:"dnsSearch,omitempty"`
}

// Flow is one OpenFlow flow, in ovs-ofctl syntax.
type Flow struct {
	Table    int    `json:"table"`
	Priority int    `json:"priority"`
	Cookie   uint64 `json:"cookie"`
	Match    string `json:"match"`
	Actions  string `json:"actions"`
}

// Group is one OpenFlow group, in ovs-ofctl syntax without group_id.
type Group struct {
	ID   uint32 `json:"id"`
	Spec string `json:"spec"`
}

// ProgramUpdate is one answer of the program long-poll: a full program, or a
// delta against the revision the agent said it has.
type ProgramUpdate struct {
	Revision int64 `json:"revision"`
	// Full is set when Program carries the whole program.
	Full    bool     `json:"full"`
	Program *Program `json:"program,omitempty"`
	// Delta is set when Full is false.
	Delta *ProgramDelta `json:"delta,omitempty"`
}

// ProgramDelta is what changed between two programs of one host.
type ProgramDelta struct {
	FromDigest       string          `json:"fromDigest"`
	Digest           string          `json:"digest"`
	AddTunnels       []TunnelPort    `json:"addTunnels,omitempty"`
	RemoveTunnels    []string        `json:"removeTunnels,omitempty"`
	AddContainers    []ContainerPort `json:"addContainers,omitempty"`
	RemoveContainers []string        `json:"removeContainers,omitempty"`
	AddFlows         []Flow          `json:"addFlows,omitempty"`
	RemoveFlows      []Flow          `json:"removeFlows,omitempty"`
	AddGroups        []Group         `json:"addGroups,omitempty"`
	RemoveGroups     []uint32        `json:"removeGroups,omitempty"`
	// DNS records and health probes, removed by Key.
	AddDNS             []DNSRecord   `json:"addDNS,omitempty"`
	RemoveDNS          []string      `json:"removeDNS,omitempty"`
	AddHealthChecks    []HealthProbe `json:"addHealthChecks,omitempty"`
	RemoveHealthChecks []string      `json:"removeHealthChecks,omitempty"`
	// Gateway, when set, replaces the program's gateway; RemoveGateway
	// drops it.
	Gateway       *Gateway `json:"gateway,omitempty"`
	RemoveGateway bool     `json:"removeGateway,omitempty"`
}

// PortStatus is the state of one port as the agent sees it.
type PortStatus struct {
	Name        string `json:"name"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	OFPort      int    `json:"ofport"`
	Up          bool   `json:"up"`
	Error       string `json:"error,omitempty"`
}

// NodeStatus is the agent's report: the revision it has applied and its ports.
// Posting it is also the host's heartbeat.
type NodeStatus struct {
	AppliedRevision int64        `json:"appliedRevision"`
	Digest          string       `json:"digest"`
	Ports           []PortStatus `json:"ports"`
	// PortsUnchanged says that the ports are those of this agent's last
	// accepted report, and Ports then lists only the failed ones: the
	// controller writes no container's status from the others.
	PortsUnchanged bool `json:"portsUnchanged,omitempty"`
	// PortsDelta says that Ports lists only the ports whose status differs
	// from what this agent's accepted reports said, those added to the
	// host's program since, and the failed ones: the controller writes the
	// listed containers' statuses only.
	PortsDelta bool   `json:"portsDelta,omitempty"`
	Error      string `json:"error,omitempty"`
	// RuleStats are the switch's counters of the counted policy flows, per
	// cookie (at most MaxRuleStats).
	RuleStats []RuleStat `json:"ruleStats,omitempty"`
	// PolicyLog are the connections logged since the last report (at most
	// MaxPolicyLog).
	PolicyLog []PolicyLogRecord `json:"policyLog,omitempty"`
	// Endpoints is the current verdict of every health check the agent
	// runs that has one (at most MaxEndpoints).
	Endpoints []EndpointHealth `json:"endpoints,omitempty"`
}

// Bounds of one report.
const (
	MaxRuleStats = 8192
	MaxPolicyLog = 1000
	MaxEndpoints = 8192
)

// RuleStat is the sum of the counters of the flows of one counted cookie
// (bit 47 set), as the switch has them: cumulative since the flows were
// installed (they start over when OVS restarts).
type RuleStat struct {
	// Cookie is the flow cookie, "0x" and lower-case hexadecimal.
	Cookie  string `json:"cookie"`
	Packets int64  `json:"packets"`
	Bytes   int64  `json:"bytes"`
}

// PolicyLogRecord is one new connection that a logged policy rule decided,
// as the agent saw its first packet.
type PolicyLogRecord struct {
	Time time.Time `json:"time"`
	// Cookie is the rule's cookie from the packet-in's userdata.
	Cookie string `json:"cookie"`
	// Verdict is VerdictAllow or VerdictDeny; Direction is "ingress" or
	// "egress".
	Verdict   string `json:"verdict"`
	Direction string `json:"direction"`
	// Protocol is TCP, UDP, SCTP, ICMP or another IP protocol's number.
	Protocol string `json:"protocol"`
	SrcIP    string `json:"srcIP"`
	DstIP    string `json:"dstIP"`
	// Ports are 0 for protocols without ports.
	SrcPort int `json:"srcPort,omitempty"`
	DstPort int `json:"dstPort,omitempty"`
}

// Verdicts of a policy log entry.
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
)

// NodeRegistration is what an agent says about its host when it starts.
type NodeRegistration struct {
	Address    string `json:"address"`
	TunnelType string `json:"tunnelType"`
	// AgentVersion is the agent's version (shown on the host).
	AgentVersion string `json:"agentVersion,omitempty"`
}
