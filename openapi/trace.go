package openapi

// Traces: POST /api/v1/traces answers "why can (or can't) A reach B" in one
// document of five layers (intent, compiled, realized, live, conclusion),
// and the node protocol's jobs carry the realized and live parts to the
// agents (GET /api/v1/nodes/{host}/jobs, POST .../jobs/{id}/result).
// Described in openapi.yaml (Trace*, NodeJob*).

// TraceRequest asks for one trace. Exactly one of Source.Container and
// Source.Address; exactly one of Destination.Container, .Service, .Host and
// .Address.
type TraceRequest struct {
	Source      TraceRequestEnd `json:"source"`
	Destination TraceRequestEnd `json:"destination"`
	// Protocol is TCP (default), UDP, SCTP or ICMP.
	Protocol string `json:"protocol,omitempty"`
	// Port is the destination port: required except for ICMP.
	Port int `json:"port,omitempty"`
	// SourcePort is the source port the trace assumes (default
	// DefaultTraceSourcePort; the live probe uses an ephemeral one).
	SourcePort int `json:"sourcePort,omitempty"`
	// Probe asks the source host's agent for a live probe (rate-limited).
	Probe bool `json:"probe,omitempty"`
}

// DefaultTraceSourcePort is the source port a trace assumes.
const DefaultTraceSourcePort = 40000

// TraceRequestEnd names one end of a trace.
type TraceRequestEnd struct {
	// Container is a container's name or ID.
	Container string `json:"container,omitempty"`
	// Service is a service's name or ID (destination only).
	Service string `json:"service,omitempty"`
	// Host is a host's name: the destination is its published or node
	// port Port (destination only).
	Host string `json:"host,omitempty"`
	// Address is an IPv4 address: as a source, an outside address; as a
	// destination, a container's, a service VIP, a host's (published or
	// node port) or an outside address.
	Address string `json:"address,omitempty"`
	// Network disambiguates a container or service name.
	Network string `json:"network,omitempty"`
}

// Trace is the answer of POST /api/v1/traces.
type Trace struct {
	// Revision is the intent revision the trace was computed from.
	Revision int64       `json:"revision"`
	Packet   TracePacket `json:"packet"`
	Intent   TraceIntent `json:"intent"`
	// Compiled has one entry per host on the path, in path order.
	Compiled []TraceCompiledHost `json:"compiled"`
	// Realized has one entry per host on the path, in path order.
	Realized []TraceRealizedHost `json:"realized"`
	// Live is present when the request asked for a probe.
	Live          *TraceLive          `json:"live,omitempty"`
	Conclusion    string              `json:"conclusion"`
	Disagreement  bool                `json:"disagreement"`
	Disagreements []TraceDisagreement `json:"disagreements"`
	// Assumptions lists what the compiled and realized layers assume
	// (the connection state, the backend chosen).
	Assumptions []string `json:"assumptions"`
}

// TracePacket is the first packet of the traced connection, as it leaves
// its source.
type TracePacket struct {
	Protocol string `json:"protocol"`
	SrcIP    string `json:"srcIp"`
	DstIP    string `json:"dstIp"`
	SrcPort  int    `json:"srcPort,omitempty"`
	DstPort  int    `json:"dstPort,omitempty"`
	SrcMAC   string `json:"srcMac,omitempty"`
	DstMAC   string `json:"dstMac,omitempty"`
}

// TraceEnd is one resolved end of a trace.
type TraceEnd struct {
	// Kind: container, service, published (a host's published or node
	// port) or outside.
	Kind    string `json:"kind"`
	Name    string `json:"name,omitempty"`
	ID      string `json:"id,omitempty"`
	Network string `json:"network,omitempty"`
	Host    string `json:"host,omitempty"`
	IP      string `json:"ip"`
	Port    int    `json:"port,omitempty"`
}

// Trace end kinds.
const (
	TraceEndContainer = "container"
	TraceEndService   = "service"
	TraceEndPublished = "published"
	TraceEndOutside   = "outside"
)

// TraceIntent is what the controller expects from intent alone.
type TraceIntent struct {
	Source      TraceEnd `json:"source"`
	Destination TraceEnd `json:"destination"`
	// Path: same-host, tunnel, gateway (leaves through the host's gateway
	// to the outside), inbound (from the outside through a host's
	// gateway), or none (no path: the verdict says why).
	Path string `json:"path"`
	// Hosts on the path, in order.
	Hosts   []string      `json:"hosts"`
	Service *TraceService `json:"service,omitempty"`
	NAT     []TraceNAT    `json:"nat"`
	// Egress and Ingress are the policy sides, egress first.
	Egress  TracePolicySide `json:"egress"`
	Ingress TracePolicySide `json:"ingress"`
	Allowed bool            `json:"allowed"`
	// Verdict says in a few words why (or why not).
	Verdict string `json:"verdict"`
}

// TraceService is the service a trace goes through.
type TraceService struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Network    string `json:"network"`
	VIP        string `json:"vip"`
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort"`
	// Backends are the candidates, in bucket order; Chosen names the one
	// the rest of the trace follows (the first usable one).
	Backends []TraceBackend `json:"backends"`
	Chosen   string         `json:"chosen,omitempty"`
}

// TraceBackend is one backend candidate of a service port.
type TraceBackend struct {
	Container string `json:"container"`
	Host      string `json:"host"`
	IP        string `json:"ip"`
	Port      int    `json:"port"`
	Weight    int    `json:"weight"`
	Usable    bool   `json:"usable"`
	Healthy   bool   `json:"healthy"`
}

// TraceNAT is one address translation on the path.
type TraceNAT struct {
	// Kind: dnat or snat.
	Kind string `json:"kind"`
	Host string `json:"host,omitempty"`
	From string `json:"from"`
	To   string `json:"to"`
	Why  string `json:"why"`
}

// TracePolicySide is one direction's policy evaluation.
type TracePolicySide struct {
	// Container is the container judged (empty when that end is no
	// container: then nothing is judged).
	Container string `json:"container,omitempty"`
	// Policies are those selecting the container with this direction
	// present, in evaluation order.
	Policies []TraceConsulted     `json:"policies"`
	Decision ReachabilityDecision `json:"decision"`
}

// TraceConsulted is one policy consulted.
type TraceConsulted struct {
	Policy   string `json:"policy"`
	PolicyID string `json:"policyId"`
	Priority int    `json:"priority"`
	Action   string `json:"action"`
	// Rule is the rule of this policy that matches, if any.
	Rule     string `json:"rule,omitempty"`
	Deciding bool   `json:"deciding"`
}

// TraceCompiledHost is the simulation of one host's compiled flows.
type TraceCompiledHost struct {
	Host string `json:"host"`
	// InPort is the port the packet enters br-int by.
	InPort string `json:"inPort"`
	// Flow is the packet as ovs-ofctl flow text (the ofproto/trace input).
	Flow string `json:"flow"`
	// Verdict: output (to Output), drop, controller (to the agent: a
	// reject or a log), or loop (gave up).
	Verdict string      `json:"verdict"`
	Output  string      `json:"output,omitempty"`
	Flows   []TraceFlow `json:"flows"`
}

// TraceFlow is one flow a packet matched.
type TraceFlow struct {
	Table     int    `json:"table"`
	TableName string `json:"tableName"`
	Priority  int    `json:"priority"`
	Cookie    string `json:"cookie"`
	// Owner is the object the flow exists for: "container web",
	// "policy p ingress[0]", "base", ...
	Owner   string `json:"owner"`
	Match   string `json:"match"`
	Actions string `json:"actions"`
}

// TraceRealizedHost is what one host on the path has realized.
type TraceRealizedHost struct {
	Host string `json:"host"`
	// ProgramRevision is the revision of the host's program the trace
	// used; AppliedRevision the newest its agent reported applied.
	ProgramRevision int64 `json:"programRevision"`
	AppliedRevision int64 `json:"appliedRevision"`
	// Current: the agent applied a program at least as new.
	Current bool         `json:"current"`
	Switch  *TraceSwitch `json:"switch,omitempty"`
}

// TraceSwitch is the ofproto/trace of the packet on a host's real switch.
type TraceSwitch struct {
	// Status: ok, unavailable (the agent is not connected to this
	// controller replica), timeout or error.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// DatapathActions is the last "Datapath actions:" line.
	DatapathActions string `json:"datapathActions,omitempty"`
	// Verdict as in TraceCompiledHost (output, drop, controller).
	Verdict string `json:"verdict,omitempty"`
	// Flows are the (table, cookie, priority) the switch matched.
	Flows []TraceSwitchFlow `json:"flows"`
	// Output is ofproto/trace's text, trimmed to MaxTraceOutput bytes.
	Output string `json:"output,omitempty"`
}

// TraceSwitchFlow is one flow ofproto/trace reports.
type TraceSwitchFlow struct {
	Table    int    `json:"table"`
	Priority int    `json:"priority"`
	Cookie   string `json:"cookie"`
	Owner    string `json:"owner,omitempty"`
}

// MaxTraceOutput bounds the ofproto/trace text a trace carries.
const MaxTraceOutput = 16 << 10

// TraceLive is the result of a live probe.
type TraceLive struct {
	// Status: answered (the destination answered), refused (a reset or
	// ICMP unreachable came back), timeout, unavailable (no agent can
	// probe from the source), or error.
	Status string `json:"status"`
	Host   string `json:"host,omitempty"`
	Detail string `json:"detail,omitempty"`
	Micros int64  `json:"micros"`
}

// TraceDisagreement is two layers saying different things.
type TraceDisagreement struct {
	// Layers, e.g. ["compiled","realized"].
	Layers []string `json:"layers"`
	Host   string   `json:"host,omitempty"`
	// Flow names the first flow where they part, when known.
	Flow   string `json:"flow,omitempty"`
	Detail string `json:"detail"`
}

// NodeJobs is the answer of GET /api/v1/nodes/{host}/jobs.
type NodeJobs struct {
	Jobs []NodeJob `json:"jobs"`
}

// NodeJob is one read-only job for a node agent: an ofproto/trace of a
// packet on br-int, or a probe from a local container's namespace.
type NodeJob struct {
	ID string `json:"id"`
	// Kind: trace or probe.
	Kind  string        `json:"kind"`
	Trace *NodeTraceJob `json:"trace,omitempty"`
	Probe *NodeProbeJob `json:"probe,omitempty"`
	// TimeoutMillis bounds the job on the agent.
	TimeoutMillis int `json:"timeoutMillis"`
}

// Node job kinds.
const (
	NodeJobTrace = "trace"
	NodeJobProbe = "probe"
)

// NodeTraceJob asks for `ovs-appctl ofproto/trace <bridge> <flow>`.
type NodeTraceJob struct {
	Bridge string `json:"bridge"`
	// Flow is ovs-ofctl flow text; ports may be ${port:NAME}.
	Flow string `json:"flow"`
	// CtNext are the ct_state flags assumed after each ct action, in order
	// (ofproto/trace --ct-next).
	CtNext []string `json:"ctNext,omitempty"`
}

// NodeProbeJob asks for a connection attempt from a local container.
type NodeProbeJob struct {
	// Container is the ID of a container on this host.
	Container string `json:"container"`
	// Protocol: TCP, UDP or ICMP.
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Port     int    `json:"port,omitempty"`
}

// NodeJobResult is an agent's answer to one job.
type NodeJobResult struct {
	// Status: ok or error (the job could not run).
	Status string           `json:"status"`
	Error  string           `json:"error,omitempty"`
	Trace  *NodeTraceResult `json:"trace,omitempty"`
	Probe  *NodeProbeResult `json:"probe,omitempty"`
}

// NodeTraceResult is ofproto/trace's text.
type NodeTraceResult struct {
	Output string `json:"output"`
}

// NodeProbeResult is a probe's outcome: answered, refused or timeout.
type NodeProbeResult struct {
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
	Micros  int64  `json:"micros"`
}
