// Package compile is Switchyard's flow compiler: it turns the intent snapshot
// (hosts, networks, containers, policies, services and health verdicts) into
// the Program of every host (openapi.Program): the integration bridge, its
// tunnel ports, its container ports, its OpenFlow flows and groups in
// ovs-ofctl syntax, the DNS records its resolver serves and the health
// probes its agent runs. It also renders programs as ovs-ofctl flow files. How
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
//	                    flag "from tunnel", goto Conntrack (see below). From
//	                    sydns0 with the source DNSAddr(VNI): a resolver
//	                    answer (see DNS steering). Else drop.
//	1  SpoofGuard       per container port: IP from its own MAC and IP, ARP
//	                    with its own arp_sha/arp_spa -> ARPResponder; anything
//	                    else from that port (IPv6 too) is dropped.
//	2  ARPResponder     ARP requests for the gateway and every address of the
//	                    network are answered out IN_PORT: the gateway's with
//	                    its MAC; any other with the MAC derived from the
//	                    address (DerivedMAC, 0a:58 + its four bytes, what the
//	                    store gives every container), one flow per network
//	                    (prioDerived); a container whose MAC is not derived
//	                    gets its own answer above it. A container's
//	                    gratuitous ARP for its own IP is dropped unanswered (an
//	                    answer would look like an address conflict). Every
//	                    other ARP is dropped: ARP never crosses a tunnel.
//	                    Non-ARP -> Conntrack.
//	3  Conntrack        every IP packet: ct(table=ServiceLB, zone=the network's
//	                    zone, nat): later tables see its connection state, and
//	                    packets of load-balanced connections are translated
//	                    (or un-translated) here. Packets to a gateway first go
//	                    through the hairpin zone: ct(table=HairpinReturn,
//	                    zone=HairpinZone, nat).
//	4  HairpinReturn    a reply there (+rpl) is a hairpin reply, un-SNATed:
//	                    it gets FlagHairpin; every packet then goes through
//	                    the network's zone with nat -> ServiceLB. Resolver
//	                    answers (in_port=sydns0) go through the network's
//	                    zone -> L3Forwarding.
//	5  ServiceLB        new connections from local containers to a service
//	                    port: its group, its affinity tables, or reject; DNS
//	                    to a gateway: to the resolver. Else -> Hairpin.
//	6  AffinityLookup   learned flows only (session affinity; not in any
//	                    program): load the client's backend into reg3/reg4.
//	7  AffinityDispatch per (service port, usable backend): that backend's
//	                    bucket; per service port: its group.
//	8  AffinityLearn    a new connection a bucket just DNATed to a ClientIP
//	                    service port: learn its backend. -> Hairpin.
//	9  Hairpin          per local container: its own packet to itself (after
//	                    DNAT) is SNATed to the gateway in HairpinZone and gets
//	                    FlagHairpin. Else -> EgressPolicy.
//	10 EgressPolicy     the policies of the packet's source container (see
//	                    Policy). Replies (+est+rpl) and +rel skip it, +inv
//	                    is dropped here. Packets from a tunnel match no
//	                    policy flow and pass.
//	11 L3Forwarding     ICMP echo requests to the gateway IP are answered out
//	                    IN_PORT. IP to the gateway MAC for an address of the
//	                    same network: eth_dst=the MAC derived from it (one
//	                    flow per network; a container whose MAC is not
//	                    derived has its own, above), eth_src=gateway MAC,
//	                    dec_ttl, -> L2Forwarding. Else -> L2Forwarding.
//	12 L2Forwarding     per (network, dst MAC): a local container loads its
//	                    ofport into reg2; a remote container (only for
//	                    packets from a local container) sets tun_id=VNI and
//	                    loads the tunnel's ofport into reg2, by one flow per
//	                    IPAM block of its host (a masked dl_dst, prioBlock,
//	                    see blocks.go) or, when its address is borrowed, its
//	                    own; both -> IngressPolicy. The gateway's MAC is
//	                    dropped. DNSMAC: sydns0 (see DNS steering).
//	                    Ingress policy of a remote container runs on the
//	                    receiving host. Broadcast, multicast and unknown MACs
//	                    are dropped: ARP is answered locally, so everything
//	                    is known.
//	13 IngressPolicy    the policies of the destination container (reg2 = a
//	                    local container's ofport). Replies, +rel and hairpin
//	                    packets (a container reaching itself) skip it;
//	                    tunnel-bound packets match no policy flow.
//	14 ConntrackCommit  ct(commit) of every +new packet that got here (it
//	                    passed both policy tables), tunnel-bound ones too,
//	                    so that replies are +est+rpl on both hosts; hairpin
//	                    packets are committed already (both zones) and skip.
//	15 Output           output to the port in reg2; a hairpin packet goes out
//	                    IN_PORT (reg2 is its in_port, which output: skips).
//
// Packets from a tunnel resume at Conntrack: they were spoof-checked and
// ARP-filtered on the sending host, but they must pass Conntrack so that the
// receiving host sees connection state (ingress policy is stateful; replies
// of load-balanced connections are un-NATed on the client's host, where
// the connection was DNATed). ServiceLB, Hairpin, EgressPolicy and
// L3Forwarding leave them alone (ServiceLB and Hairpin match the "from
// local container" flag; L3Forwarding acts only on packets sent to the
// gateway MAC, which never leave their host). L2Forwarding sends to a
// tunnel only packets carrying that flag, so a packet received from one
// tunnel is never sent out another (no loops between hosts with stale
// programs).
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
// verdict is not cached: see Policy). Load-balanced connections are
// committed with their DNAT by the service's bucket (and once more, without
// nat, by ConntrackCommit: harmless). Two more zones are the switch's own:
// HairpinZone (0xfff0, the hairpin SNAT to the gateway) and DNSZone
// (0xfff1, the SNAT of DNS queries to DNSClientAddr), and GatewaySNATZone
// (0xfff2, see External access); network VNIs 65520 to 65522 (mod 65536)
// share them, which only matters if such a network's
// packets collide with hairpin or DNS tuples.
//
// # Registers
//
//	reg0 (RegNetwork)       the packet's network: its VNI (VNIs are 1..2^24-1).
//	reg1 (RegFlags)         bit 0 FlagFromLocal: entered from a local container
//	                        port; bit 1 FlagFromTunnel: entered from a tunnel
//	                        port; bit 2 FlagHairpin: a hairpinned service
//	                        connection (see Hairpin).
//	reg2 (RegOutPort)       ofport chosen by L2Forwarding, used by Output.
//	reg3 (RegAffinityIP)    the backend address a learned affinity flow chose
//	                        (0: none), reg4 (RegAffinityPort) its port.
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
// Owner(KindContainer, container ID), a network's gateway, hairpin-zone and
// DNS steering flows and its derived ARP answer and route are
// Owner(KindNetwork, network name), a service's
// ServiceLB and AffinityDispatch flows Owner(KindService, service ID), and
// the classifier flows of the tunnel towards a peer and the flows to a
// peer's IPAM blocks are Owner(KindHost, peer host name). Policy flows: a rule's
// verdict flows have RuleCookie(policy ID, direction, index) (ct_state=-new)
// and ConnCookie (ct_state=+new), both counted; a container's
// isolation drop IsolationCookie(container ID, direction); conjunction
// clause flows, shared by rules, Owner(KindPolicyClause, ""). A cookie mask
// of 0x0000ffffffffffff selects "the flows of X" whatever the generation.
// Flows OVS learns for session affinity have the cookie
// openapi.LearnedCookie exactly (generation bits 0): they are in no program,
// and the agent's drift check and sync leave them alone.
//
// # Services
//
// A service is compiled when its GroupID is not 0, its VIP is IPv4, it has
// 1..openapi.MaxServicePorts ports, each TCP, UDP or SCTP (empty: TCP) with
// port and target port (empty: the port) in 1..65535, and its selector
// parses; otherwise it compiles nothing (no flows, groups, DNS record or
// probes), never half. Its backends and their bucket weights come from
// package service (Backends over the network's compiled containers, then
// Usable: weight above 0 and not unhealthy). A backend is unhealthy when
// the snapshot holds an EndpointHealth with Healthy=false for (service,
// container); without one it is healthy.
//
// On every host where its network is present, per port i (ports in stored
// order), group GroupID*MaxServicePorts+i, and at prioService in ServiceLB
// "ct_state=+new+trk,<proto>,reg1=0x1/0x1,reg0=VNI,nw_dst=VIP,tp_dst=PORT":
//
//   - usable backends, no affinity: group:<id>. The group is type=select,
//     selection_method=dp_hash, one bucket per usable backend (bucket_id i
//     in container ID order, weight = its bucket weight) whose action is
//     ct(commit,table=Hairpin,zone=the network's,nat(dst=BACKEND:TARGET)).
//     Replies are un-DNATed by Conntrack's ct(nat); tunnel-bound packets
//     are DNATed before they leave, so the backend's host sees the
//     backend's address.
//   - ClientIP affinity: set_field:0->reg3,set_field:0->reg4,
//     resubmit(,AffinityLookup),resubmit(,AffinityDispatch). The buckets
//     continue at AffinityLearn instead of Hairpin, where a flow per
//     service port, "ct_state=+new+dnat+trk,<proto>,reg1=0x1/0x1,reg0=VNI,
//     ct_nw_dst=VIP,ct_nw_proto=P,ct_tp_dst=PORT" (the original tuple),
//     learns into AffinityLookup (idle_timeout = the affinity timeout,
//     default DefaultAffinityTimeout; cookie LearnedCookie; delete_learned)
//     the flow "this VNI, client IP, VIP and port -> reg3=the DNATed
//     address, reg4=the DNATed port", then goes to Hairpin. (OVS does not
//     execute a learn inside a select group's bucket: checked on real OVS,
//     so the learn follows the bucket's DNAT.) AffinityDispatch sends a
//     packet whose reg3/reg4 name a usable backend of that port to that
//     backend's bucket action, and the rest (no learned flow, or the learned
//     backend is no longer usable) to the group.
//   - no usable backend (none selected, all unhealthy, all weight 0):
//     controller(userdata=openapi.RejectUserdata,meter_id=openapi.RejectMeter);
//     the agent answers TCP RST or ICMP port unreachable from the VIP.
//
// # Hairpin
//
// A backend reaching its own service is DNATed to itself; the kernel would
// answer itself directly (the source is its own address), so the switch
// SNATs such packets to the gateway: Hairpin has, per local container,
// "ct_state=-rpl+trk,ip,reg1=0x1/0x1,in_port=P,nw_dst=IP" ->
// FlagHairpin, ct(commit,table=EgressPolicy,zone=HairpinZone,nat(src=GW)).
// A container's own address on its own port can only come from DNAT (the
// kernel keeps traffic to its own address on lo), so the flow is there for
// every local container, not only backends; -rpl keeps the un-NATed reply,
// which has the same port and address, from being SNATed again. The reply
// (to the gateway) passes Conntrack's hairpin zone (un-SNAT; +rpl there, so
// HairpinReturn sets FlagHairpin) and then the network's zone (un-DNAT: it
// now comes from the VIP). IngressPolicy lets FlagHairpin pass (a container
// may always reach itself), ConntrackCommit skips it (committed in both
// zones already) and Output sends it out IN_PORT.
//
// # DNS steering
//
// Every container's resolver is its gateway (ContainerPort.DNSDomain and
// DNSSearch "<network>.<domain> <domain>"; the domain is
// Snapshot.DNSDomain, default DefaultDNSDomain). The agent's resolver lives
// in its own namespace behind the port openapi.DNSPortName (sydns0), with
// MAC openapi.DNSMAC, each served network's DNSAddr(VNI)/32 local, and a default route via
// DNSClientAddr (169.254.0.1, neighbour openapi.DNSNextHopMAC). Per network
// present on a host:
//
//   - ServiceLB, prioDNS: a new UDP or TCP connection from a local container
//     to GW:53 -> eth_dst=DNSMAC, ct(commit,table=L2Forwarding,zone=the
//     network's,nat(dst=DNSAddr(VNI))); later packets of it (already
//     DNATed by Conntrack, +est) to DNSAddr(VNI) -> eth_dst=DNSMAC,
//     L2Forwarding. So queries bypass egress policy: the node-local
//     resolver is always reachable.
//   - L2Forwarding "reg0=VNI,ip,dl_dst=DNSMAC" -> reg2=sydns0,
//     ct(commit,table=Output,zone=DNSZone,nat(src=DNSClientAddr)): the
//     query reaches the resolver from 169.254.0.1: the namespace never
//     sees container addresses (networks may overlap, and one could be
//     a local address there).
//   - Classifier "in_port=sydns0,ip,nw_src=DNSAddr(VNI)" -> reg0=VNI,
//     eth_dst=the gateway MAC, ct(table=HairpinReturn,zone=DNSZone,nat)
//     (un-SNAT); HairpinReturn then un-DNATs it in the network's zone (it
//     now comes from GW:53) and L3Forwarding routes it to the container.
//
// The resolver tells networks apart by the address a query was sent to
// (DNSAddr(VNI) = 240.0.0.0 + VNI, in the reserved 240.0.0.0/4, so flows
// matching it never catch traffic to a real container). Program.DNS holds the names it serves:
// on each host, every compiled container and every compiled service of each
// network present there (unqualified names; services with their ports).
//
// # External access
//
// Every host with a valid IPv4 address gets Program.Gateway (see
// docs/external.md): the agent's internal port openapi.GatewayPortName
// (sygw0) with MAC openapi.HostMAC(address), routes into it, NAT rules and
// egress IPs. Flows:
//
//   - Classifier, per network present (network cookie): "in_port=sygw0,
//     arp,arp_tpa=CIDR" -> reg0=VNI, FlagFromLocal|FlagFromGateway,
//     ARPResponder; "in_port=sygw0,ip,nw_dst=CIDR" -> the same, Conntrack.
//     Per node-port service where its network is present (service cookie,
//     prioGatewayVIP): "in_port=sygw0,ip,nw_dst=VIP" -> the same.
//   - L2Forwarding, per host (host cookie): "dl_dst=HostMAC(self)" -> reg2
//     = sygw0. Per peer host P (P's cookie, shared: hostState.routeFlows):
//     "reg1=0x1/0x1,dl_dst=HostMAC(P)" -> tun_id=reg0, reg2=P's tunnel.
//   - L3Forwarding, per network present: prioExternalReply
//     "ct_state=+est+rpl+trk,reg0=VNI,ip,dl_dst=GW MAC" -> eth_dst=
//     HostMAC(self) (replies of inbound connections leave by this host);
//     with egress on, prioExternal "reg0=VNI,ip,dl_dst=GW MAC" ->
//     eth_dst=HostMAC(self, or the egress IP's holder). Per peer P,
//     prioHostRoute "ct_state=+est+rpl+trk,ip,nw_dst=P's address" ->
//     eth_dst=HostMAC(P) (replies to a Cluster node port SNATed by P).
//   - Cluster node ports to a remote backend (when some network has a
//     Cluster node port), per host: Conntrack prioGatewaySNAT
//     "ip,reg1=0x2/0x2,nw_dst=self" -> ct(zone=GatewaySNATZone,nat,
//     table=HairpinReturn), where the base flow "ct_zone=65522,ip" ->
//     the network's zone with nat; per peer P, ConntrackCommit
//     prioGatewaySNAT "+new, reg1=0x8/0x8, reg2=P's tunnel" -> commit in
//     the network's zone, then ct(commit,zone=GatewaySNATZone,
//     nat(src=self),table=Output); "-new" the same -> ct(zone=
//     GatewaySNATZone,nat,table=Output).
//   - ServiceLB, per Local node-port service port where its network is
//     present, prioLocalTraffic "ct_state=+new+trk,PROTO,reg1=0x8/0x8,
//     reg0=VNI,nw_dst=VIP,tp_dst=PORT" -> group (port group | 1<<31) of
//     this host's usable backends, or reject when it has none.
//
// NAT rules: every local container's published ports (DNAT to it); every
// node-port service on every host (DNAT to VIP:port where its network is
// present, else nothing: the kernel refuses); per
// network present with egress on, an egress rule (SNAT to the egress IP on
// its holder). Routes: every network present (direct) and the VIP of every
// node-port service whose network is present (via its gateway).
//
// Pins (settlePins): a network with a Cluster node-port service is present
// on every host with an address; a network with an egress IP on its
// holder: the Ready host with an address whose SHA-256 of "network\x00host"
// is largest. A pin counts in the presence like a container.
// Incrementally, a host's external state is recomputed when its local
// containers with publish, its presence or its peers change, and every
// host's when a host, a network's egress, or a node-port service changes
// (flushExternal).
//
// # Health checks
//
// Program.HealthChecks: per service with a healthCheck, one HealthProbe per
// selected backend (any weight, healthy or not, so that it can recover) on
// the backend's host: Port is the backend's ContainerPort name, IP its
// address, Check the service's check (port 0: the first port's target).
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
// gateway; anything else is ignored, never half compiled. A service takes
// part as Services says, on the hosts where its network is present, with
// the compiled containers of its network as candidate backends; a health
// verdict counts only for the service and container it names. The snapshot is
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
// A container adds 1 more local flow (Hairpin) and its DNS record, kept
// once per network (not per host): a host's records are those of the
// networks present there. A network present on a host has 8 flows there
// (gateway ARP and echo, hairpin zone, 5 for DNS steering). A service with P ports and B
// usable backends has P ServiceLB flows (plus P*(B+1) AffinityDispatch
// flows and P AffinityLearn flows with affinity) and P groups of B buckets on each host where its
// network is present, built and hashed once per service; a probe per
// selected backend on its host when it has a health check. Incrementally,
// a service is recomputed (O(containers of its network + hosts where it is
// present x its flows and groups)) when it is put or deleted, when a
// container it selects (before or after) appears, leaves, moves, changes
// address or labels, when one of its health verdicts flips, and when its
// network appears on or leaves a host. DNS records follow container and
// service changes in O(hosts where the network is present); a network
// appearing on or leaving a host adds or removes its records there in
// O(its records).
//
// # Digest and flow order
//
// A program's digest is program.Digest's (see package openapi/program):
// order-independent and incremental. Each flow fragment carries its
// program.FlowKey, computed once; each host keeps a program.Sums that Apply
// updates in O(changed flows and ports). Program flows are sorted by
// program.CompareFlows.
package compile
