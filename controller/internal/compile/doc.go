// Package compile is Switchyard's flow compiler: it turns the intent snapshot
// (hosts, networks, containers and policies; services are carried but not
// yet compiled) into the Program of every host (openapi.Program): the integration
// bridge, its tunnel ports, its container ports and its OpenFlow flows in
// ovs-ofctl syntax. It also renders programs as ovs-ofctl flow files. How
// programs are ordered, diffed, patched and digested is not its business but
// the node protocol's: package openapi/program, which the agent uses too.
//
// It is PURE. It must not do I/O, touch a database, read the clock, use
// randomness or start goroutines; the same input always yields byte-identical
// output, on every controller replica. It must not know how programs are
// delivered or applied (that is the nodes and agent rooms).
//
// # Entry points
//
// Compile (or Compiler.Full) compiles a whole Snapshot. A Compiler then keeps
// per-object flow fragments and per-host state so that Compiler.Apply can take
// object changes (PutContainer, DeleteHost, PutNetwork, PutPolicy, ...) and
// recompute only the hosts they touch, returning for each changed host its new digest and a
// ProgramDelta. Compiler.Program materializes a host's full program on demand
// (an O(flows) merge, cached until the host changes again): materializing the
// ~30,000-flow programs of 50 hosts on every container change would cost far
// more than the change itself, and agents mostly need deltas. After any
// sequence of Apply calls, every host's program equals the Full compile of the
// resulting snapshot (except Revision: an incrementally compiled program
// carries the revision of the change that last modified it).
//
// program.Diff and program.Patch compute and apply ProgramDeltas between any
// two programs of a host; program.Digest recomputes a program's digest from
// its content; Render prints its flows as an ovs-ofctl flow file.
//
// # Pipeline (br-int, OpenFlow 1.5, fail_mode=secure)
//
// Tables are the Table constants, declared once, in pipeline order; a table's
// number is its position. Every table ends in an explicit priority-0 flow.
//
//	0  Classifier       from a container port: reg0=VNI, flag "from local
//	                    container", goto SpoofGuard. From a tunnel port with
//	                    tun_id=VNI of a network present on this host: reg0=VNI,
//	                    flag "from tunnel", goto Conntrack (see below). Else drop.
//	1  SpoofGuard       per container port: IP from its own MAC and IP, ARP
//	                    with its own arp_sha/arp_spa -> ARPResponder; anything
//	                    else from that port (IPv6 too) is dropped.
//	2  ARPResponder     ARP requests for the gateway and every container IP of
//	                    the network (on any host) are answered out IN_PORT with
//	                    the owner's MAC. A container's gratuitous ARP for its
//	                    own IP is dropped unanswered (an answer would look like
//	                    an address conflict). Every other ARP is dropped: ARP
//	                    never crosses a tunnel. Non-ARP -> Conntrack.
//	3  Conntrack        every IP packet: ct(table=ServiceLB, zone=the network's
//	                    zone), so later tables see its connection state.
//	4  ServiceLB        pass-through for now.
//	5  EgressPolicy     the policies of the packet's source container (see
//	                    Policy). Replies (+est+rpl) and +rel skip it, +inv
//	                    is dropped here. Packets from a tunnel match no
//	                    policy flow and pass.
//	6  L3Forwarding     ICMP echo requests to the gateway IP are answered out
//	                    IN_PORT. IP to the gateway MAC for a container of the
//	                    same network: eth_dst=container MAC, eth_src=gateway
//	                    MAC, dec_ttl, -> L2Forwarding. Else -> L2Forwarding.
//	7  L2Forwarding     per (network, dst MAC): a local container loads its
//	                    ofport into reg2; a remote container (only for
//	                    packets from a local container) sets tun_id=VNI and
//	                    loads the tunnel's ofport into reg2; both ->
//	                    IngressPolicy. Ingress policy of a remote container
//	                    runs on the receiving host. Broadcast, multicast and
//	                    unknown MACs are dropped: ARP is answered locally,
//	                    so everything is known.
//	8  IngressPolicy    the policies of the destination container (reg2 = a
//	                    local container's ofport). Replies and +rel skip
//	                    it; tunnel-bound packets match no policy flow.
//	9  ConntrackCommit  ct(commit) of every +new packet that got here (it
//	                    passed both policy tables), tunnel-bound ones too,
//	                    so that replies are +est+rpl on both hosts.
//	10 Output           output to the port in reg2.
//
// Packets from a tunnel resume at Conntrack: they were spoof-checked and
// ARP-filtered on the sending host, but they must pass Conntrack so that the
// receiving host sees connection state (ingress policy is stateful; replies
// of load-balanced connections will be un-NATed there). ServiceLB,
// EgressPolicy and L3Forwarding leave them alone (L3Forwarding acts only on
// packets sent to the gateway MAC, which never leave their host); later
// stages that act on traffic from local containers must match the "from
// local container" flag. L2Forwarding sends to a tunnel only packets
// carrying that flag, so a packet received from one tunnel is never sent out
// another (no loops between hosts with stale programs).
//
// # Conntrack
//
// One zone per network: the low 16 bits of its VNI (reg0[0..15]), in
// Conntrack and ConntrackCommit alike. Two networks whose VNIs agree in the
// low 16 bits share a zone; that only matters if their CIDRs overlap (the
// store allocates VNIs from 1 up, so it takes 65,536 networks). Each host
// tracks a connection in its own conntrack: the source host commits it
// before the tunnel, the destination host when it delivers. Only +new
// packets are committed; nothing is stored in ct_mark or ct_label (the
// verdict is not cached: see Policy).
//
// # Registers
//
//	reg0 (RegNetwork)  the packet's network: its VNI (VNIs are 1..2^24-1).
//	reg1 (RegFlags)    bit 0 FlagFromLocal: entered from a local container port;
//	                   bit 1 FlagFromTunnel: entered from a tunnel port.
//	reg2 (RegOutPort)  ofport chosen by L2Forwarding, used by Output.
//
// # Cookies
//
// The agent ORs a 16-bit generation into the top 16 bits of every cookie; the
// compiler uses only the low 48 bits (CookieMask). Bit 47 (CookieCounted)
// marks a flow whose counters the agent reports, bit 46 (CookieConn) on a
// counted flow the flow hit once per new connection; bits 0-45 name the
// flow's owner: 0 for base
// flows present on every host, else Owner(kind, id), which never sets bit 46
// or 47: a container's flows are
// Owner(KindContainer, container ID), a network's gateway flows are
// Owner(KindNetwork, network name), and the classifier flows of the tunnel
// towards a peer are Owner(KindHost, peer host name). Policy flows: a rule's
// verdict flows have RuleCookie(policy ID, direction, index) (ct_state=-new)
// and ConnCookie (ct_state=+new), both counted; a container's
// isolation drop IsolationCookie(container ID, direction); conjunction
// clause flows, shared by rules, Owner(KindPolicyClause, ""). A cookie mask
// of 0x0000ffffffffffff selects "the flows of X" whatever the generation.
//
// # Policy
//
// EgressPolicy judges packets from a local container (keyed on in_port),
// IngressPolicy packets to a local container (keyed on reg2, its ofport),
// whether they come from the same host or a tunnel. A packet passes only if
// both pass; so a connection gets the egress verdict on its source host
// and the ingress verdict on its destination host. Per table, by OpenFlow
// priority, highest first:
//
//	65000  ct_state=+inv+trk: drop (EgressPolicy only: every IP packet
//	       passes it, tunnel ones too).
//	64000  ct_state=+est+rpl+trk, ct_state=+rel+trk: next table. Replies
//	       of a connection conntrack knows, and related packets (ICMP
//	       errors), pass without policy, both ways.
//	10000  rule bands: policyPrio = 10000 + 2*(10000 - priority) + deny,
//	-29999 for policy priorities 1..10000 (lower first): static, so a
//	       new policy never shifts others; deny sits one above allow of
//	       the same priority (deny wins ties).
//	1000   isolation: one drop per (container, direction) isolated by
//	       an allow policy whose direction is present (even []). Deny
//	       policies never isolate.
//	0      pass (not isolated, no rule matched).
//
// Each rule is one conjunctive match (OpenFlow conjunction) with 2 or 3
// dimensions at its band: 1 = the selected local containers (reg2= or
// in_port=), then, when the rule has peers, their addresses (ip,nw_src= for
// ingress, nw_dst= for egress: a selector peer's containers of the
// policy's network by /32, a cidr peer as the prefixes of cidr minus its
// except blocks), then, when it has ports, ip protocol and tp_dst (a range
// as value/mask matches). A rule with neither peers nor ports gets the
// dimension "ip" (conjunctions need two). So a rule with S selected
// containers, D peer addresses and P port matches costs S+D+P+2 flows on
// each host where it selects a container, not S*D*P. Its verdict is two
// flows at the same priority, conj_id=ID,ct_state=+new+trk,ip with
// ConnCookie and conj_id=ID,ct_state=-new+trk,ip with RuleCookie, that drop
// (deny) or continue (allow): summed they are the rule's packets and bytes;
// the +new flow's packets are its connections (for a deny, attempts: a
// retransmitted SYN is +new again). For a policy with log, the +new flow
// first does controller(userdata=...,meter_id=1) (logAction: RuleCookie,
// verdict and direction, through the agent's meter 1 that rate-limits it),
// then its verdict: each new connection the rule decides is logged, packets
// of known connections are not.
// The conjunction ID is the low 32 bits of the rule's cookie; two rules of
// one host and table whose IDs collide (odds about n^2/2^33 for n rules)
// would merge. Rules whose peers resolve to no address, or whose ports are
// all invalid, match nothing and get no flows (isolation still applies).
//
// Several rules may need the same flow (table, priority, match): a peer
// address or port shared by two rules at one priority. OpenFlow keeps one
// flow per (table, priority, match), so the compiler merges them: each
// policy places contributions (a conjunction action, or a verdict) on the
// hosts where it selects containers, and each host renders, per key, one
// flow carrying every conjunction action placed there (sorted), with the
// clause cookie. Conjunctions of one priority may overlap (two allow rules
// both matching a packet); OpenFlow then picks one of them, which is
// harmless because a band holds one action only; only the counters go to
// either rule (and a log record names either).
//
// Original-direction packets of an established connection are judged on
// every packet (only +new packets are committed; no verdict is cached in
// ct_mark), so a policy change that newly denies a connection drops its
// next packet. Its conntrack entry is left to expire (the userspace
// datapath's TCP established timeout is long; the entry only lets replies
// through, and nothing is sent any more that would provoke one). No
// register, ct_mark or ct_label bits are used by policy: the tables match
// in_port, reg2 and the packet itself.
//
// Incrementally, a policy is recomputed (all its placements, from its
// network's current containers) when it is put or deleted, and when a
// container it selects or has as a peer (before or after) appears, leaves,
// moves, changes address or changes labels. Only hosts whose rendered
// flows change get a delta.
//
// # Ports and naming
//
// Port names are at most 15 bytes (IFNAMSIZ-1), deterministic and stable:
// a container port is "syc" + the first 12 hex digits of the container ID
// without dashes (ContainerPortName), a tunnel port is "syt" + 12 hex digits of
// SHA-256(peer host name) (TunnelPortName). A host gets one tunnel port towards
// every other host that shares a network with it (a network is present on a
// host when at least one of its containers is there). The tunnel is Geneve
// unless both hosts ask for VXLAN, so both ends agree. The agent configures it
// with remote_ip=RemoteIP and key=flow: flows set tun_id, the port fixes the
// destination. A container port gets the network's MTU, prefix length and
// gateway; a managed sandbox is named "<container>.<network>". The network
// gateway's MAC is 0a:58 followed by its four IPv4 bytes (GatewayMAC).
//
// # What is compiled
//
// A container takes part when its host and its network are in the snapshot,
// the network is valid (IPv4 CIDR, gateway inside it, VNI 1..2^24-1) and the
// container has a valid MAC and an IPv4 address inside the CIDR other than the
// gateway; anything else is ignored, never half compiled. The snapshot is
// expected to be consistent (unique names, unique IPs and MACs per network, as
// the store guarantees); given an inconsistent one the compiler is still
// deterministic, but programs may carry conflicting flows.
//
// # Cost
//
// A container has 6 flows on its own host (classifier, 3 spoof guard,
// gratuitous ARP, L2 delivery), 2 on every host where its network is present
// (ARP answer, L3 route) and 1 more on each of those but its own (L2 to the
// tunnel). These fragments are built and hashed once per container and shared
// by all programs. Full sorts each distinct flow once and deals them to the
// hosts in order (no per-host sort). Apply costs O(hosts where the network is
// present) per container change, plus O(containers of the network) when a
// network appears on or leaves a host, plus, per policy of its network the
// container matters to, O(containers of the network + the policy's flows).
// A policy flow on several hosts is sorted once in Full.
//
// # Digest and flow order
//
// A program's digest is program.Digest's (see package openapi/program):
// order-independent and incremental. Each flow fragment carries its
// program.FlowKey, computed once; each host keeps a program.Sums that Apply
// updates in O(changed flows and ports). Program flows are sorted by
// program.CompareFlows.
package compile
