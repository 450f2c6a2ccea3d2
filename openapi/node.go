package openapi

import "time"

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
	Error           string       `json:"error,omitempty"`
	// RuleStats are the switch's counters of the counted policy flows, per
	// cookie (at most MaxRuleStats).
	RuleStats []RuleStat `json:"ruleStats,omitempty"`
	// PolicyLog are the connections logged since the last report (at most
	// MaxPolicyLog).
	PolicyLog []PolicyLogRecord `json:"policyLog,omitempty"`
}

// Bounds of one report.
const (
	MaxRuleStats = 8192
	MaxPolicyLog = 1000
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
}
