package compile

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// flowRec is a flow with its content hash. Fragments are built once per
// object and shared by every host program that contains them.
type flowRec struct {
	openapi.Flow
	key program.Key
}

func mkFlow(t Table, prio int, cookie uint64, match, actions string) flowRec {
	f := flowRec{Flow: openapi.Flow{Table: int(t), Priority: prio, Cookie: cookie, Match: match, Actions: actions}}
	f.key = program.FlowKey(&f.Flow)
	return f
}

// Flow priorities, per table.
const (
	prioMiss       = 0
	prioCatch      = 100 // SpoofGuard: drop the rest of a port; ARPResponder: drop other ARP
	prioPort       = 100 // Classifier: one port; L2Forwarding: one MAC
	prioAllow      = 200 // SpoofGuard: a port's own addresses
	prioAnswer     = 200 // ARPResponder: answer for an IP; L3Forwarding: route to an IP
	prioGratuitous = 210 // ARPResponder: a container's ARP for its own IP
	prioEcho       = 300 // L3Forwarding: ICMP echo to the gateway
	prioDerived    = 140 // ARPResponder, L3Forwarding: any address of the network, its MAC derived from it
	prioBlock      = 90  // L2Forwarding: another host's IPAM block (a prefix of MACs)
	prioTrack      = 100 // Conntrack: send IP through ct(); ConntrackCommit: commit +new
	prioGateway    = 200 // Conntrack: IP to a gateway goes through the hairpin zone

	prioHairpinReply = 200 // HairpinReturn: a reply in the hairpin zone
	prioHairpinSkip  = 200 // ConntrackCommit: hairpin packets are committed already
	prioHairpinFlow  = 100 // Hairpin: a local container's packet to itself
	prioService      = 100 // ServiceLB: a service port; AffinityDispatch: a port's miss
	prioDispatch     = 200 // AffinityDispatch: a learned backend
	prioDNS          = 300 // ServiceLB: DNS to the gateway, to the node-local resolver
	prioLearned      = 100 // AffinityLookup: learned flows (not in programs)
	prioLearn        = 100 // AffinityLearn: a new connection to a ClientIP service port

	// The policy tables (EgressPolicy, IngressPolicy), highest first; see
	// the package doc. Policy rules take the band policyPrio returns,
	// between prioIsolate and prioCtReply.
	prioCtInvalid = 65000 // EgressPolicy: drop +inv
	prioCtReply   = 64000 // both: replies (+est+rpl) and +rel skip policy
	prioIsolate   = 1000  // both: drop the rest of an isolated container
)

const (
	actDrop        = "drop"
	flagLocal      = "set_field:0x1/0x1->" + RegFlags
	flagTunnel     = "set_field:0x2/0x2->" + RegFlags
	flagHairpin    = "set_field:0x4/0x4->" + RegFlags
	matchHairpin   = RegFlags + "=0x4/0x4"
	matchFromLocal = RegFlags + "=0x1/0x1"
	outputOutPort  = "output:" + RegOutPort

	// ctZone is the conntrack zone of the packet's network: the low 16
	// bits of its VNI (reg0).
	ctZone          = "zone=NXM_NX_REG0[0..15]"
	hairpinZone     = "zone=65520" // HairpinZone
	dnsZone         = "zone=65521" // DNSZone
	gwSNATZone      = "zone=65522" // GatewaySNATZone
	matchCtReplyDir = "ct_state=+rpl+trk,ip"
	matchCtInvalid  = "ct_state=+inv+trk"
	matchCtReply    = "ct_state=+est+rpl+trk"
	matchCtRelated  = "ct_state=+rel+trk"
	matchCtNew      = "ct_state=+new+trk,ip"
)

// baseFlows are on every host, with cookie 0: the miss flow of every table,
// the ARP catch-all, conntrack, and the hairpin flag's effects.
var baseFlows = func() []flowRec {
	next := func(t Table) string { return gotoTable(t + 1) }
	return []flowRec{
		mkFlow(TableClassifier, prioMiss, 0, "", actDrop),
		mkFlow(TableSpoofGuard, prioMiss, 0, "", actDrop),
		mkFlow(TableARPResponder, prioCatch, 0, "arp", actDrop),
		mkFlow(TableARPResponder, prioMiss, 0, "", next(TableARPResponder)),
		mkFlow(TableConntrack, prioTrack, 0, "ip", ctNAT(TableServiceLB, ctZone)),
		mkFlow(TableConntrack, prioMiss, 0, "", gotoTable(TableServiceLB)),
		// Packets to a gateway went through the hairpin zone first (see
		// netFlows): a reply there is a hairpin reply, un-SNATed.
		mkFlow(TableHairpinReturn, prioHairpinReply, 0, matchCtReplyDir,
			flagHairpin+","+ctNAT(TableServiceLB, ctZone)),
		mkFlow(TableHairpinReturn, prioTrack, 0, "ip", ctNAT(TableServiceLB, ctZone)),
		// Answers of the node-local resolver, un-SNATed in the DNS zone
		// (see netFlows): un-DNAT them in their network's zone.
		mkFlow(TableHairpinReturn, prioDNS, 0, "in_port="+portRef(openapi.DNSPortName)+",ip", ctNAT(TableL3Forwarding, ctZone)),
		// Replies of node-port connections a host SNATed to itself for a
		// remote backend (see External access), un-SNATed in the gateway
		// SNAT zone: un-DNAT them in their network's zone.
		mkFlow(TableHairpinReturn, prioGatewaySNAT, 0, "ct_zone=65522,ip", ctNAT(TableServiceLB, ctZone)),
		mkFlow(TableHairpinReturn, prioMiss, 0, "", actDrop),
		mkFlow(TableServiceLB, prioMiss, 0, "", gotoTable(TableHairpin)),
		mkFlow(TableAffinityLookup, prioMiss, 0, "", actDrop),   // no learned flow: return
		mkFlow(TableAffinityDispatch, prioMiss, 0, "", actDrop), // not reached: every service port has a miss
		mkFlow(TableAffinityLearn, prioMiss, 0, "", next(TableAffinityLearn)),
		mkFlow(TableHairpin, prioMiss, 0, "", next(TableHairpin)),
		mkFlow(TableEgressPolicy, prioCtInvalid, 0, matchCtInvalid, actDrop),
		mkFlow(TableEgressPolicy, prioCtReply, 0, matchCtReply, next(TableEgressPolicy)),
		mkFlow(TableEgressPolicy, prioCtReply, 0, matchCtRelated, next(TableEgressPolicy)),
		mkFlow(TableEgressPolicy, prioMiss, 0, "", next(TableEgressPolicy)),
		mkFlow(TableL3Forwarding, prioMiss, 0, "", next(TableL3Forwarding)),
		mkFlow(TableL2Forwarding, prioMiss, 0, "", actDrop),
		mkFlow(TableIngressPolicy, prioCtReply, 0, matchCtReply, next(TableIngressPolicy)),
		mkFlow(TableIngressPolicy, prioCtReply, 0, matchCtRelated, next(TableIngressPolicy)),
		mkFlow(TableIngressPolicy, prioCtReply, 0, matchHairpin, next(TableIngressPolicy)),
		mkFlow(TableIngressPolicy, prioMiss, 0, "", next(TableIngressPolicy)),
		mkFlow(TableConntrackCommit, prioHairpinSkip, 0, matchHairpin, next(TableConntrackCommit)),
		mkFlow(TableConntrackCommit, prioTrack, 0, matchCtNew, "ct(commit,"+ctZone+"),"+next(TableConntrackCommit)),
		mkFlow(TableConntrackCommit, prioMiss, 0, "", next(TableConntrackCommit)),
		mkFlow(TableOutput, prioTrack, 0, matchHairpin, "IN_PORT"),
		mkFlow(TableOutput, prioMiss, 0, "", outputOutPort),
	}
}()

// ctNAT sends the packet through conntrack in zone (a "zone=..." argument)
// with nat (established connections are translated), continuing at t.
func ctNAT(t Table, zone string) string {
	return "ct(table=" + strconv.Itoa(int(t)) + "," + zone + ",nat)"
}

// arpAnswer turns an ARP request into the reply "ip is at mac", out IN_PORT.
func arpAnswer(mac, ip string) string {
	return "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:" + mac + "->eth_src," +
		"set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:" + mac + "->arp_sha," +
		"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:" + ip + "->arp_spa,IN_PORT"
}

// arpDerived answers an ARP request for any address with the MAC derived
// from it (DerivedMAC), out IN_PORT: the address goes into the low 32 bits
// of eth_src, which then becomes arp_sha, and arp_spa and arp_tpa swap.
const arpDerived = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]," +
	"move:NXM_OF_ARP_TPA[]->NXM_OF_ETH_SRC[0..31],set_field:" + derivedOUI + "->eth_src," +
	"set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ETH_SRC[]->NXM_NX_ARP_SHA[]," +
	"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],move:NXM_OF_ETH_SRC[0..31]->NXM_OF_ARP_SPA[],IN_PORT"

// derivedOUI sets the top 16 bits of a derived MAC (0a:58), spelled as
// ovs-ofctl prints it (the switch shows a load of those bits this way), so
// that programs and dumped tables compare as text.
const derivedOUI = "0a:58:00:00:00:00/ff:ff:00:00:00:00"

// netFlows are a network's flows on every host where it is present: the
// gateway's ARP answer and its ICMP echo responder, the hairpin-zone pass of
// packets to the gateway, and DNS steering to the node-local resolver.
func netFlows(n *netParams) []flowRec {
	cookie := Owner(KindNetwork, n.name)
	echo := "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:" + n.gwMAC + "->eth_src," +
		"move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],set_field:" + n.gw + "->ip_src,set_field:0->icmp_type,IN_PORT"
	dns := openapi.DNSAddr(n.vniNum)
	toDNS := "set_field:" + openapi.DNSMAC + "->eth_dst,"
	fs := []flowRec{
		mkFlow(TableARPResponder, prioAnswer, cookie, n.reg+",arp,arp_op=1,arp_tpa="+n.gw, arpAnswer(n.gwMAC, n.gw)),
		mkFlow(TableL3Forwarding, prioEcho, cookie,
			n.reg+",icmp,dl_dst="+n.gwMAC+",nw_dst="+n.gw+",icmp_type=8,icmp_code=0", echo),
		// Every address of the network has the MAC derived from it
		// (DerivedMAC), so one flow answers ARP for all of them and one
		// routes to all of them, wherever they are: a new container needs
		// neither on any host. A container whose MAC is not derived gets
		// its own, above these.
		mkFlow(TableARPResponder, prioDerived, cookie, n.reg+",arp,arp_op=1,arp_tpa="+n.prefix.String(), arpDerived),
		mkFlow(TableL3Forwarding, prioDerived, cookie, n.reg+",ip,dl_dst="+n.gwMAC+",nw_dst="+n.prefix.String(),
			"move:NXM_OF_IP_DST[]->NXM_OF_ETH_DST[0..31],set_field:"+derivedOUI+"->eth_dst,"+
				"set_field:"+n.gwMAC+"->eth_src,dec_ttl,"+gotoTable(TableL2Forwarding)),
		// The gateway's MAC is in the range of a block (its address is in
		// one): what reaches L2Forwarding still addressed to it is not for
		// another host.
		mkFlow(TableL2Forwarding, prioPort, cookie, n.reg+",dl_dst="+n.gwMAC, actDrop),
		mkFlow(TableConntrack, prioGateway, cookie, "ip,"+n.reg+",nw_dst="+n.gw, ctNAT(TableHairpinReturn, hairpinZone)),
		// The resolver's answers: back into the network, un-DNATed to
		// come from the gateway, routed to the asking container.
		mkFlow(TableClassifier, prioPort, cookie, "in_port="+portRef(openapi.DNSPortName)+",ip,nw_src="+dns,
			"set_field:"+n.vni+"->"+RegNetwork+",set_field:"+n.gwMAC+"->eth_dst,"+ctNAT(TableHairpinReturn, dnsZone)),
		mkFlow(TableServiceLB, prioDNS, cookie, "ct_state=+est+trk,ip,"+matchFromLocal+","+n.reg+",nw_dst="+dns,
			toDNS+gotoTable(TableL2Forwarding)),
		// The query is SNATed to DNSClientAddr in the DNS zone: the
		// resolver's namespace then never sees container addresses
		// (networks may overlap, and one could equal a local address).
		mkFlow(TableL2Forwarding, prioPort, cookie, n.reg+",ip,dl_dst="+openapi.DNSMAC,
			"set_field:"+portRef(openapi.DNSPortName)+"->"+RegOutPort+
				",ct(commit,table="+strconv.Itoa(int(TableOutput))+","+dnsZone+",nat(src="+DNSClientAddr+"))"),
	}
	for _, proto := range []string{"tcp", "udp"} {
		fs = append(fs, mkFlow(TableServiceLB, prioDNS, cookie,
			"ct_state=+new+trk,"+proto+","+matchFromLocal+","+n.reg+",nw_dst="+n.gw+",tp_dst=53",
			toDNS+"ct(commit,table="+strconv.Itoa(int(TableL2Forwarding))+","+ctZone+",nat(dst="+dns+"))"))
	}
	return fs
}

// tunnelFlow classifies traffic of network n arriving from the tunnel towards
// peer. It depends only on (peer, n), so it is shared by every host.
func tunnelFlow(peer string, n *netParams) flowRec {
	return mkFlow(TableClassifier, prioPort, Owner(KindHost, peer),
		"in_port="+portRef(TunnelPortName(peer))+",tun_id="+n.vni,
		"set_field:"+n.vni+"->"+RegNetwork+","+flagTunnel+","+gotoTable(TableConntrack))
}

// ctrFlows are the flow fragments of one container.
type ctrFlows struct {
	port openapi.ContainerPort
	// dns is its name, on every host where the network is present.
	dns openapi.DNSRecord
	// local flows are on the container's host only.
	local []flowRec
	// common flows are on every host where the network is present: none
	// when its MAC is derived from its address (netFlows answer for it).
	common []flowRec
	// remote flows are on every host where the network is present, except
	// the container's own: none when block is set.
	remote []flowRec
	// block is the IPAM block of its host it is reached by (see
	// blocks.go), when it has one.
	block netip.Prefix
	// polSel and polPeer are the matches policy flows use for it, per
	// direction (see directions): as a selected container, as a peer.
	polSel, polPeer [2]string
}

// compileContainer builds c's port and flow fragments; ip and mac are its
// parsed, normalized addresses.
func compileContainer(c *openapi.Container, n *netParams, ip, mac, domain string) *ctrFlows {
	name := ContainerPortName(c.ID)
	port := openapi.ContainerPort{
		Name: name, Container: c.Name, ID: c.ID, Network: n.name, Netns: c.Netns,
		IP: ip, PrefixLen: n.prefixLen, MAC: mac, Gateway: n.gw, MTU: n.mtu,
		DNSDomain: domain, DNSSearch: n.name + "." + domain + " " + domain,
	}
	if c.Netns == "" {
		port.Sandbox = SandboxName(c.Name, n.name)
	}
	cookie := Owner(KindContainer, c.ID)
	in := "in_port=" + portRef(name)
	f := &ctrFlows{
		port:    port,
		dns:     openapi.DNSRecord{Network: n.name, VNI: n.vniNum, Kind: openapi.DNSContainer, Name: c.Name, IP: ip},
		polSel:  [2]string{selectedMatch(0, name), selectedMatch(1, name)},
		polPeer: [2]string{"ip," + peerField[0] + "=" + ip, "ip," + peerField[1] + "=" + ip},
		local: []flowRec{
			mkFlow(TableClassifier, prioPort, cookie, in,
				"set_field:"+n.vni+"->"+RegNetwork+","+flagLocal+","+gotoTable(TableSpoofGuard)),
			mkFlow(TableSpoofGuard, prioAllow, cookie, in+",dl_src="+mac+",ip,nw_src="+ip,
				gotoTable(TableARPResponder)),
			mkFlow(TableSpoofGuard, prioAllow, cookie, in+",dl_src="+mac+",arp,arp_spa="+ip+",arp_sha="+mac,
				gotoTable(TableARPResponder)),
			mkFlow(TableSpoofGuard, prioCatch, cookie, in, actDrop),
			mkFlow(TableARPResponder, prioGratuitous, cookie, n.reg+",arp,arp_spa="+ip+",arp_tpa="+ip, actDrop),
			mkFlow(TableL2Forwarding, prioPort, cookie, n.reg+",dl_dst="+mac,
				"set_field:"+portRef(name)+"->"+RegOutPort+","+gotoTable(TableIngressPolicy)),
			// Hairpin: its own packet to itself can only be a service
			// connection DNATed to it (the kernel keeps traffic to its
			// own address on lo); SNAT it to the gateway so that the
			// reply comes back through the switch (see the package doc).
			mkFlow(TableHairpin, prioHairpinFlow, cookie, "ct_state=-rpl+trk,ip,"+matchFromLocal+","+in+",nw_dst="+ip,
				flagHairpin+",ct(commit,table="+strconv.Itoa(int(TableEgressPolicy))+","+hairpinZone+",nat(src="+n.gw+"))"),
		},
	}
	derived := mac == DerivedMAC(ip)
	if !derived {
		f.common = []flowRec{
			mkFlow(TableARPResponder, prioAnswer, cookie, n.reg+",arp,arp_op=1,arp_tpa="+ip, arpAnswer(mac, ip)),
			mkFlow(TableL3Forwarding, prioAnswer, cookie, n.reg+",ip,dl_dst="+n.gwMAC+",nw_dst="+ip,
				"set_field:"+mac+"->eth_dst,set_field:"+n.gwMAC+"->eth_src,dec_ttl,"+gotoTable(TableL2Forwarding)),
		}
	}
	if f.block = containerBlock(c, n, ip, derived); !f.block.IsValid() {
		f.remote = []flowRec{
			mkFlow(TableL2Forwarding, prioPort, cookie, n.reg+","+matchFromLocal+",dl_dst="+mac, toTunnel(n, c.Host)),
		}
	}
	return f
}

// netParams is a validated network, with the strings its flows use.
type netParams struct {
	name      string
	vniNum    int64
	vni       string // decimal VNI
	reg       string // "reg0=VNI"
	gw        string
	gwMAC     string
	prefixLen int
	mtu       int
	prefix    netip.Prefix
	flows     []flowRec // netFlows
}

// maxVNI is the largest VNI a Geneve or VXLAN header carries.
const maxVNI = 1<<24 - 1

// parseNetwork validates n: an IPv4 CIDR, a gateway inside it and a VNI in
// 1..maxVNI. It returns nil when n cannot be compiled.
func parseNetwork(n *openapi.Network) *netParams {
	pfx, err := netip.ParsePrefix(n.CIDR)
	if err != nil || !pfx.Addr().Is4() {
		return nil
	}
	pfx = pfx.Masked()
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil || !gw.Is4() || !pfx.Contains(gw) || n.VNI < 1 || n.VNI > maxVNI {
		return nil
	}
	gwMAC, err := GatewayMAC(gw.String())
	if err != nil {
		return nil
	}
	p := &netParams{
		name: n.Name, vniNum: n.VNI, vni: strconv.FormatInt(n.VNI, 10), gw: gw.String(), gwMAC: gwMAC,
		prefixLen: pfx.Bits(), mtu: n.MTU, prefix: pfx,
	}
	p.reg = RegNetwork + "=" + p.vni
	p.flows = append(netFlows(p), gatewayNetFlows(p)...)
	return p
}

// parseContainer validates c's addresses against its network: an IPv4
// address inside the CIDR other than the gateway, and a 6-byte MAC. It
// returns them normalized, or ok=false.
func parseContainer(c *openapi.Container, n *netParams) (ip, mac string, ok bool) {
	a, err := netip.ParseAddr(c.IP)
	if err != nil || !a.Is4() || !n.prefix.Contains(a) || a.String() == n.gw {
		return "", "", false
	}
	hw, err := net.ParseMAC(c.MAC)
	if err != nil || len(hw) != 6 {
		return "", "", false
	}
	return a.String(), hw.String(), true
}
