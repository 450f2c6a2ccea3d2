package openapi

import (
	"encoding/json"
	"time"
)

// Meta is the read-only bookkeeping every stored object carries.
type Meta struct {
	ID        string    `json:"id"`
	Revision  int64     `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Tunnel types a host may use.
const (
	TunnelGeneve = "geneve"
	TunnelVXLAN  = "vxlan"
)

// Host status values.
const (
	HostReady    = "Ready"
	HostNotReady = "NotReady"
)

// Container status values.
const (
	ContainerPending = "pending"
	ContainerRunning = "running"
	ContainerFailed  = "failed"
)

// Host is a machine running a node agent.
type Host struct {
	Meta
	Name            string            `json:"name"`
	Address         string            `json:"address"`
	TunnelType      string            `json:"tunnelType"`
	Labels          map[string]string `json:"labels"`
	Status          string            `json:"status"`
	LastSeen        *time.Time        `json:"lastSeen,omitempty"`
	AppliedRevision int64             `json:"appliedRevision"`
	// ProgramRevision is when the controller last changed this host's
	// program; Realized says the agent has applied it.
	ProgramRevision int64 `json:"programRevision,omitempty"`
	Realized        bool  `json:"realized"`
	// AgentVersion is what the host's agent said of itself when it last
	// registered.
	AgentVersion string `json:"agentVersion,omitempty"`
}

// AddressUsage counts a network's addresses.
type AddressUsage struct {
	Total int64 `json:"total"`
	Used  int64 `json:"used"`
	Free  int64 `json:"free"`
}

// Network is an L2/L3 segment spanning all hosts.
type Network struct {
	Meta
	Name      string            `json:"name"`
	CIDR      string            `json:"cidr"`
	Gateway   string            `json:"gateway"`
	VNI       int64             `json:"vni"`
	MTU       int               `json:"mtu"`
	Labels    map[string]string `json:"labels"`
	Addresses *AddressUsage     `json:"addresses,omitempty"`
	// Egress says how the network's containers reach addresses outside
	// the overlay (nil: the default, SNAT on). See docs/external.md.
	Egress *NetworkEgress `json:"egress,omitempty"`
	// EgressIP, when set, is the one address all of the network's
	// outbound traffic leaves from: an underlay address held by one Ready
	// host (EgressHolder), moved to another Ready host when that one goes
	// NotReady.
	EgressIP string `json:"egressIP,omitempty"`
}

// NetworkEgress is a network's outbound policy.
type NetworkEgress struct {
	// SNAT: containers reach the outside through their host (or the
	// egress IP's holder), SNATed to its address. False blocks outbound
	// connections (replies to inbound ones still pass).
	SNAT bool `json:"snat"`
}

// EgressEnabled reports whether n's containers may open connections to the
// outside (Egress nil means the default, on).
func (n *Network) EgressEnabled() bool { return n.Egress == nil || n.Egress.SNAT }

// Container is a workload attached to one network on one host.
type Container struct {
	Meta
	Name    string            `json:"name"`
	Network string            `json:"network"`
	Host    string            `json:"host"`
	Labels  map[string]string `json:"labels"`
	IP      string            `json:"ip"`
	MAC     string            `json:"mac"`
	// IPBlock is the address block of its host that IP comes from
	// (read-only, e.g. "10.0.0.64/26"): the other hosts reach every
	// container of that block with one flow. Empty when the address is
	// borrowed (a requested address in another host's block, the host's
	// blocks and the free blocks full, or a move away from the block's
	// host): the container is then routed on its own.
	IPBlock string `json:"ipBlock,omitempty"`
	// Netns is the path of an existing network namespace to attach; empty means
	// the agent creates a managed sandbox named after the container.
	Netns  string `json:"netns,omitempty"`
	Status string `json:"status"`
	// StatusDetail explains a failed or pending status.
	StatusDetail string `json:"statusDetail,omitempty"`
	// DNS is the resolver configuration for the container (read-only):
	// what the agent writes into a managed sandbox's resolv.conf, and what
	// a runtime that owns the netns should write.
	DNS *ContainerDNS `json:"dns,omitempty"`
	// Publish exposes container ports on its host's address to clients
	// outside the overlay (the client's address is kept).
	Publish []PublishedPort `json:"publish,omitempty"`
}

// PublishedPort maps <host address>:HostPort to the container's Port.
type PublishedPort struct {
	HostPort int `json:"hostPort"`
	Port     int `json:"port"`
	// Protocol is TCP (default) or UDP.
	Protocol string `json:"protocol,omitempty"`
	// HostIP, when set, must be the host's address: only connections to it
	// are published (empty: any local address of the host).
	HostIP string `json:"hostIP,omitempty"`
}

// Bounds of published and node ports: below MinExternalPort is refused
// (privileged), and ReservedPorts are the agent's own (tunnels, metrics).
const (
	MinExternalPort   = 1024
	MaxPublishedPorts = 16
)

// ReservedPorts are host ports the agent itself uses, refused for publish
// and node ports whatever the protocol: VXLAN 4789, Geneve 6081, the
// agent's metrics 9464.
var ReservedPorts = []int{4789, 6081, 9464}

// ContainerDNS is a container's resolver configuration: the node-local
// resolver at its network's gateway, and the search list of its network.
type ContainerDNS struct {
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search"`
}

// ServicePort maps a service port to a backend port.
type ServicePort struct {
	Name       string `json:"name,omitempty"`
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	// NodePort, when set (1024..65535, not reserved), publishes this port
	// on every host's address (see Service.ExternalTrafficPolicy).
	NodePort int `json:"nodePort,omitempty"`
}

// Service is a virtual IP in front of the containers its selector picks.
type Service struct {
	Meta
	Name     string            `json:"name"`
	Network  string            `json:"network"`
	VIP      string            `json:"vip"`
	Ports    []ServicePort     `json:"ports"`
	Selector string            `json:"selector"`
	Labels   map[string]string `json:"labels"`
	// Weights split new connections between subsets of the backends
	// (canary releases); see package controller/internal/service.
	Weights []ServiceWeight `json:"weights,omitempty"`
	// SessionAffinity is AffinityNone or AffinityClientIP (the store
	// defaults it to None); the timeout applies to ClientIP only.
	SessionAffinity               string `json:"sessionAffinity"`
	SessionAffinityTimeoutSeconds int    `json:"sessionAffinityTimeoutSeconds,omitempty"`
	// HealthCheck, when set, makes the agents probe the backends on their
	// host; a failing backend leaves every host's group.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// GroupID is allocated at create and never changes: the service's
	// OpenFlow groups are GroupID*MaxServicePorts + port index.
	GroupID uint32 `json:"groupId"`
	// ExternalTrafficPolicy applies to node-port connections:
	// TrafficCluster (default; any usable backend, the client SNATed to
	// the host) or TrafficLocal (only that host's backends, the client's
	// address kept; a host without one refuses).
	ExternalTrafficPolicy string `json:"externalTrafficPolicy,omitempty"`
}

// External traffic policies of a service's node ports.
const (
	TrafficCluster = "Cluster"
	TrafficLocal   = "Local"
)

// Session affinity values.
const (
	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"
)

// MaxServicePorts bounds a service's ports (its block of group ids).
const MaxServicePorts = 32

// ServiceWeight gives the backends a selector picks a share of new connections.
type ServiceWeight struct {
	Selector string `json:"selector"`
	Weight   int    `json:"weight"`
}

// HealthCheck describes how agents probe a service's backends.
type HealthCheck struct {
	// Protocol is "TCP" (connect) or "HTTP" (GET Path, 2xx or 3xx).
	Protocol           string `json:"protocol"`
	Port               int    `json:"port"`
	Path               string `json:"path,omitempty"`
	IntervalSeconds    int    `json:"intervalSeconds"`
	TimeoutSeconds     int    `json:"timeoutSeconds"`
	UnhealthyThreshold int    `json:"unhealthyThreshold"`
	HealthyThreshold   int    `json:"healthyThreshold"`
}

// Endpoint health values.
const (
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
	HealthUnchecked = "unchecked"
)

// Endpoint is one backend of a service, as GET /services/{ref}/endpoints shows it.
type Endpoint struct {
	Container   string         `json:"container"`
	ContainerID string         `json:"containerId"`
	Host        string         `json:"host"`
	Address     string         `json:"address"`
	Ports       []EndpointPort `json:"ports"`
	// Weight is the bucket weight the compiler gives it (0: no new connections).
	Weight int `json:"weight"`
	// Health is HealthHealthy, HealthUnhealthy or HealthUnchecked.
	Health string `json:"health"`
	// Reason is the last failed probe's error, when unhealthy.
	Reason string `json:"reason,omitempty"`
	// Since is when the health last changed.
	Since *time.Time `json:"since,omitempty"`
}

// EndpointPort is a service port as the backend serves it (its targetPort).
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// EndpointList is GET /services/{ref}/endpoints.
type EndpointList struct {
	Items []Endpoint `json:"items"`
}

// EndpointHealth is the verdict of the health checks on one backend of one
// service: what agents report, what the store keeps (only verdicts; a backend
// without one is healthy) and the object of "endpoint" events.
type EndpointHealth struct {
	// Service and Container are IDs.
	Service   string `json:"service"`
	Container string `json:"container"`
	Healthy   bool   `json:"healthy"`
	Reason    string `json:"reason,omitempty"`
	Host      string `json:"host,omitempty"`
}

// PolicyPeer is one side of a rule: containers by labels, or a CIDR block.
type PolicyPeer struct {
	Selector *string  `json:"selector,omitempty"`
	CIDR     string   `json:"cidr,omitempty"`
	Except   []string `json:"except,omitempty"`
}

// PolicyPort is a port or port range of one protocol.
type PolicyPort struct {
	Port     int    `json:"port,omitempty"`
	EndPort  int    `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// PolicyRule matches traffic from (ingress) or to (egress) its peers on its ports.
type PolicyRule struct {
	Peers []PolicyPeer `json:"peers"`
	Ports []PolicyPort `json:"ports"`
}

// Policy actions.
const (
	ActionAllow = "allow"
	ActionDeny  = "deny"
)

// Policy restricts traffic of the containers its selector picks.
type Policy struct {
	Meta
	Name     string       `json:"name"`
	Network  string       `json:"network"`
	Selector string       `json:"selector"`
	Priority int          `json:"priority"`
	Action   string       `json:"action"`
	Ingress  []PolicyRule `json:"ingress"`
	Egress   []PolicyRule `json:"egress"`
	// Log makes the agents log each new connection a rule of this policy
	// allows or denies (GET /api/v1/policies/{ref}/log).
	Log    bool              `json:"log"`
	Labels map[string]string `json:"labels"`
}

// Reachability is which container of a network may open a connection to
// which, on one protocol and port, computed from intent.
type Reachability struct {
	Network  string `json:"network"`
	Revision int64  `json:"revision"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port,omitempty"`
	// Containers names the rows (sources) and the columns (destinations).
	Containers []string             `json:"containers"`
	Matrix     [][]ReachabilityCell `json:"matrix"`
}

// ReachabilityCell is the verdict from one container to another.
type ReachabilityCell struct {
	Allowed bool                 `json:"allowed"`
	Egress  ReachabilityDecision `json:"egress"`
	Ingress ReachabilityDecision `json:"ingress"`
}

// ReachabilityDecision is one direction's verdict and what decided it.
type ReachabilityDecision struct {
	Allowed  bool   `json:"allowed"`
	Reason   string `json:"reason"`
	Policy   string `json:"policy,omitempty"`
	PolicyID string `json:"policyId,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Action   string `json:"action,omitempty"`
}

// Token roles.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
	RoleNode     = "node"
)

// Token is an API credential. Secret is shown only in the answer to its creation.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Host      string     `json:"host,omitempty"`
	Secret    string     `json:"secret,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// AuditEntry records one write: who, what, which object, at which revision.
type AuditEntry struct {
	ID         int64     `json:"id"`
	Revision   int64     `json:"revision"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Kind       string    `json:"kind"`
	ObjectID   string    `json:"objectId"`
	ObjectName string    `json:"objectName"`
	At         time.Time `json:"at"`
}

// Event actions.
const (
	EventCreated = "created"
	EventUpdated = "updated"
	EventDeleted = "deleted"
)

// Event is one change, as streamed by GET /api/v1/events.
type Event struct {
	Revision int64           `json:"revision"`
	Kind     string          `json:"kind"`
	Action   string          `json:"action"`
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Network  string          `json:"network,omitempty"`
	Object   json.RawMessage `json:"object"`
	At       time.Time       `json:"at"`
}

// List is the envelope of every list answer.
type List[T any] struct {
	Items    []T    `json:"items"`
	Continue string `json:"continue,omitempty"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Field    string `json:"field,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// PolicyStats are the counters of a policy's rules, from the agents'
// reports: summed over hosts, with each host's part.
type PolicyStats struct {
	Policy  string            `json:"policy"`
	ID      string            `json:"id"`
	Network string            `json:"network"`
	Rules   []PolicyRuleStats `json:"rules"`
}

// PolicyRuleStats are one rule's counters. Packets and Bytes count what
// the rule decided (every packet of the original direction it judged: its
// RuleCookie and ConnCookie flows); Connections counts the new connections
// it allowed or denied (its ConnCookie flow's packets).
type PolicyRuleStats struct {
	// Rule names it as a field: "ingress[0]".
	Rule        string          `json:"rule"`
	Direction   string          `json:"direction"`
	Index       int             `json:"index"`
	Packets     int64           `json:"packets"`
	Bytes       int64           `json:"bytes"`
	Connections int64           `json:"connections"`
	Hosts       []HostRuleStats `json:"hosts"`
}

// HostRuleStats are one host's part of a rule's counters.
type HostRuleStats struct {
	Host        string `json:"host"`
	Packets     int64  `json:"packets"`
	Bytes       int64  `json:"bytes"`
	Connections int64  `json:"connections"`
}

// PolicyLogEntry is one logged connection: which rule of which policy
// decided it, where.
type PolicyLogEntry struct {
	// Cursor orders the entries; GET .../log?since=<cursor> reads after it.
	Cursor    string           `json:"cursor"`
	Time      time.Time        `json:"time"`
	Host      string           `json:"host"`
	Policy    string           `json:"policy"`
	PolicyID  string           `json:"policyId"`
	Network   string           `json:"network"`
	Rule      string           `json:"rule"`
	Direction string           `json:"direction"`
	Index     int              `json:"index"`
	Verdict   string           `json:"verdict"`
	Protocol  string           `json:"protocol"`
	Source    PolicyLogAddress `json:"source"`
	Dest      PolicyLogAddress `json:"destination"`
}

// PolicyLogAddress is one end of a logged connection; Container is empty
// for an address of no container of the network.
type PolicyLogAddress struct {
	Container string `json:"container,omitempty"`
	IP        string `json:"ip"`
	Port      int    `json:"port,omitempty"`
}

// PolicyLogPage is one read of a policy's log, oldest first. Cursor is
// where the next read goes on (since=Cursor), also when Items is empty.
type PolicyLogPage struct {
	Items  []PolicyLogEntry `json:"items"`
	Cursor string           `json:"cursor"`
}

// HostStatus is the data of a host-status event on GET /api/v1/events: a
// host's observed state (not intent), sent when it changes.
type HostStatus struct {
	Host             string   `json:"host"`
	AppliedRevision  int64    `json:"appliedRevision"`
	ApplyFailed      bool     `json:"applyFailed"`
	FailedContainers []string `json:"failedContainers"`
	// FailedAll says more containers failed than listed.
	FailedAll bool `json:"failedAll,omitempty"`
}
