package compile

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// External access (see the package doc, External access): every host's
// gateway port towards its own IP stack, the flows that route through it,
// the host's NAT rules (Program.Gateway) and the networks pinned to hosts
// (present there without a container) so that node ports and egress IPs
// work wherever they must.

// FlagFromGateway marks a packet that entered from the gateway port (the
// host's kernel): a published, node-port or egress-return connection. Such
// packets also carry FlagFromLocal, so that they are load-balanced and may
// leave by a tunnel like a local container's.
const FlagFromGateway = 0x8

const (
	flagGateway      = "set_field:0x9/0x9->" + RegFlags // FlagFromLocal|FlagFromGateway
	matchFromGateway = RegFlags + "=0x8/0x8"

	prioExternal      = 50  // L3Forwarding: to outside the overlay, through a host
	prioExternalReply = 60  // L3Forwarding: replies of inbound connections, through this host
	prioHostRoute     = 150 // L3Forwarding: replies to another host's address
	prioGatewayVIP    = 110 // Classifier: a node-port VIP from the gateway
	prioLocalTraffic  = 110 // ServiceLB: a Local node port from the gateway
	prioGatewaySNAT   = 250 // Conntrack: replies to this host's address; HairpinReturn: un-SNATed ones; ConntrackCommit: SNAT to a tunnel

	// localGroupBit marks the groups of Local node ports: a host's own
	// backends of a service port (the port's group ID with this bit).
	localGroupBit = 1 << 31
)

// extState is what external access placed on one host.
type extState struct {
	flows  []flowRec
	groups []openapi.Group
	ghash  []program.Key
	gw     *openapi.Gateway
}

// gatewayPort is the flows' reference to the host's gateway port.
var gatewayPort = portRef(openapi.GatewayPortName)

// gatewayNetFlows are a network's flows for its traffic from the gateway
// port, on every host where it is present: ARP to its addresses (the
// kernel routes its CIDR on the gateway port) and IP to its CIDR.
func gatewayNetFlows(n *netParams) []flowRec {
	cookie := Owner(KindNetwork, n.name)
	in := "in_port=" + gatewayPort
	set := "set_field:" + n.vni + "->" + RegNetwork + "," + flagGateway + ","
	return []flowRec{
		mkFlow(TableClassifier, prioPort, cookie, in+",arp,arp_tpa="+n.prefix.String(), set+gotoTable(TableARPResponder)),
		mkFlow(TableClassifier, prioPort, cookie, in+",ip,nw_dst="+n.prefix.String(), set+gotoTable(TableConntrack)),
	}
}

// nodePortFlows are a node-port service's flows on every host where its
// network is present: its VIP from the gateway (the kernel DNATed a node
// port to it) enters its network.
func nodePortFlows(s *svcState, n *netParams) []flowRec {
	if !s.nodePorts() {
		return nil
	}
	return []flowRec{mkFlow(TableClassifier, prioGatewayVIP, Owner(KindService, s.obj.ID),
		"in_port="+gatewayPort+",ip,nw_dst="+s.vip,
		"set_field:"+n.vni+"->"+RegNetwork+","+flagGateway+","+gotoTable(TableConntrack))}
}

// nodePorts tells whether s publishes a port on the hosts.
func (s *svcState) nodePorts() bool {
	if !s.ok {
		return false
	}
	for _, p := range s.ports {
		if p.nodePort != 0 {
			return true
		}
	}
	return false
}

// local tells whether s's node ports use only the receiving host's backends.
func (s *svcState) local() bool { return s.obj.ExternalTrafficPolicy == openapi.TrafficLocal }

// hostReady tells whether h may hold egress IPs (a status the snapshot
// does not give counts as Ready).
func hostReady(h *hostState) bool { return h.obj.Status != openapi.HostNotReady }

// hostAddr is h's address, valid IPv4, or "".
func hostAddr(h *hostState) string {
	a, err := netip.ParseAddr(h.obj.Address)
	if err != nil || !a.Is4() {
		return ""
	}
	return a.String()
}

// egressHolder is the host that holds network n's egress IP: of the Ready
// hosts with an address, the one with the highest rendezvous hash of
// (network, host), so it moves only when its holder goes away; nil when n
// has no (valid) egress IP or no host can hold it.
func (c *Compiler) egressHolder(n *netState) *hostState {
	if n.p == nil || egressIP(&n.obj) == "" {
		return nil
	}
	var best *hostState
	var bestH uint64
	for _, h := range c.hosts {
		if !hostReady(h) || hostAddr(h) == "" {
			continue
		}
		sum := sha256.Sum256([]byte(n.obj.Name + "\x00" + h.obj.Name))
		v := binary.BigEndian.Uint64(sum[:8])
		if best == nil || v > bestH || v == bestH && h.obj.Name < best.obj.Name {
			best, bestH = h, v
		}
	}
	return best
}

// egressIP is n's egress IP normalized, or "" when unset or not IPv4.
func egressIP(n *openapi.Network) string {
	a, err := netip.ParseAddr(n.EgressIP)
	if err != nil || !a.Is4() {
		return ""
	}
	return a.String()
}

// settlePins makes every network present where external access needs it
// without a container: everywhere for a network with a Cluster node port
// (any host's address reaches it), on its egress IP's holder (the
// holder's kernel sends the network's outbound traffic and routes the
// replies back into it).
//
// It runs only when something it depends on may have changed (markExtAll:
// hosts, networks, node-port services), and caches the egress IP holders
// for flushExternal.
func (c *Compiler) settlePins() {
	if !c.extAll && !c.bulk {
		return
	}
	c.holders = map[*netState]*hostState{}
	for _, n := range c.nets {
		if h := c.egressHolder(n); h != nil {
			c.holders[n] = h
		}
	}
	clusterNP := map[string]bool{}
	for _, s := range c.services {
		if n := c.nets[s.obj.Network]; s.nodePorts() && !s.local() && n != nil && n.p != nil {
			clusterNP[s.obj.Network] = true
		}
	}
	c.clusterNP = len(clusterNP) > 0
	for name, n := range c.nets {
		want := map[string]bool{}
		if n.p != nil {
			if clusterNP[name] {
				for hn, h := range c.hosts {
					if hostAddr(h) != "" {
						want[hn] = true
					}
				}
			}
			if h := c.holders[n]; h != nil {
				want[h.obj.Name] = true
			}
		}
		for hn := range n.pins {
			if !want[hn] {
				c.pin(n, hn, -1)
			}
		}
		for hn := range want {
			if !n.pins[hn] {
				c.pin(n, hn, 1)
			}
		}
	}
}

// pin adds (1) or removes (-1) one pin of n on host hn: a presence that
// counts like a container.
func (c *Compiler) pin(n *netState, hn string, sign int) {
	h := c.hosts[hn]
	if sign > 0 {
		if n.pins == nil {
			n.pins = map[string]bool{}
		}
		n.pins[hn] = true
		pr := n.present[hn]
		if pr == nil {
			pr = c.presenceUp(n, h)
		}
		pr.n++
		return
	}
	delete(n.pins, hn)
	if h == nil || c.hosts[hn] != h {
		return
	}
	if pr := n.present[hn]; pr != nil {
		if pr.n--; pr.n == 0 {
			c.presenceDown(n, h)
		}
	}
}

// unpinHost drops every pin on h (it is going away).
func (c *Compiler) unpinHost(h *hostState) {
	for _, n := range c.nets {
		if n.pins[h.obj.Name] {
			c.pin(n, h.obj.Name, -1)
		}
	}
}

// unpinNet drops every pin of n (its containers are being deactivated).
func (c *Compiler) unpinNet(n *netState) {
	for hn := range n.pins {
		c.pin(n, hn, -1)
	}
}

// markExt asks for h's external state to be recomputed in this Apply;
// markExtAll for every host's.
func (c *Compiler) markExt(h *hostState) {
	if h != nil {
		c.extDirty[h] = true
	}
}

func (c *Compiler) markExtAll() { c.extAll = true }

// flushExternal recomputes the external state of the marked hosts (every
// host in a bulk load) and moves what changed.
func (c *Compiler) flushExternal() {
	var hosts []*hostState
	if c.extAll || c.bulk {
		for _, h := range c.hosts {
			hosts = append(hosts, h)
		}
	} else {
		for h := range c.extDirty {
			if c.hosts[h.obj.Name] == h {
				hosts = append(hosts, h)
			}
		}
	}
	clear(c.extDirty)
	c.extAll = false
	slices.SortFunc(hosts, func(a, b *hostState) int { return strings.Compare(a.obj.Name, b.obj.Name) })
	for _, h := range hosts {
		c.placeExternal(h, c.computeExternal(h))
	}
}

// placeExternal replaces h's external state with e.
func (c *Compiler) placeExternal(h *hostState, e extState) {
	old := h.ext
	h.ext = e
	t := c.txnFor(h)
	if t != nil && !t.gwTouched {
		t.gwTouched, t.gwBefore = true, old.gw
	}
	c.addFlows(h, e.flows, 1)
	c.addFlows(h, old.flows, -1)
	var gt elemTxn[uint32]
	if t != nil {
		gt = t.groups
	}
	for i := range e.groups {
		place(&groupKind, &h.groups, gt, &e.groups[i], e.ghash[i], 1)
	}
	for i := range old.groups {
		place(&groupKind, &h.groups, gt, &old.groups[i], old.ghash[i], -1)
	}
}

// computeExternal is h's external state from the compiler's current state.
// It walks maps in no particular order: flows and groups are placed by
// key, and the gateway's routes, NAT rules and egress IPs are sorted at
// the end, so the result does not depend on the walk.
func (c *Compiler) computeExternal(h *hostState) extState {
	var e extState
	self := hostAddr(h)
	if self == "" {
		return e
	}
	gw := &openapi.Gateway{MAC: openapi.HostMAC(self), Address: self}
	cookie := Owner(KindHost, h.obj.Name)
	e.flows = append(e.flows, mkFlow(TableL2Forwarding, prioPort, cookie, "dl_dst="+gw.MAC,
		"set_field:"+gatewayPort+"->"+RegOutPort+","+gotoTable(TableIngressPolicy)))
	// Replies to another host's address (a node-port connection that host
	// SNATed to itself) go back to it over the tunnel.
	for peer := range h.peers {
		e.flows = append(e.flows, c.hosts[peer].routeFlows()...)
	}
	if c.clusterNP {
		e.flows = append(e.flows, c.gatewaySNATFlows(h, self, cookie)...)
	}
	for _, n := range c.nets {
		if n.p == nil || n.present[h.obj.Name] == nil {
			continue
		}
		c.externalNet(h, n, c.holders[n], gw, &e)
	}
	for id, ct := range h.local {
		for _, p := range ct.obj.Publish {
			gw.NAT = append(gw.NAT, openapi.NATRule{Kind: openapi.NATPublish, Owner: KindContainer + "/" + id,
				Protocol: cmp.Or(p.Protocol, "TCP"), HostIP: p.HostIP, HostPort: p.HostPort, ToIP: ct.f.port.IP, ToPort: p.Port})
		}
	}
	for _, s := range c.services {
		c.externalService(h, s, gw, &e)
	}
	for n, holder := range c.holders {
		if holder == h {
			gw.EgressIPs = append(gw.EgressIPs, egressIP(&n.obj))
		}
	}
	slices.Sort(gw.EgressIPs)
	gw.EgressIPs = slices.Compact(gw.EgressIPs)
	slices.SortFunc(gw.Routes, func(a, b openapi.GatewayRoute) int { return cmp.Compare(a.Dst, b.Dst) })
	slices.SortFunc(gw.NAT, func(a, b openapi.NATRule) int { return cmp.Compare(a.Key(), b.Key()) })
	e.gw = gw
	for i := range e.groups {
		e.ghash = append(e.ghash, program.GroupKey(&e.groups[i]))
	}
	return e
}

// gatewaySNATFlows are h's flows for Cluster node ports with a remote
// backend: a new connection from the gateway leaving by a tunnel is SNATed
// to h's address in GatewaySNATZone (after its commit in its network's
// zone), and so is every later packet of it, so that the backend's reply comes back to h (routeFlows on the
// backend's host); the reply, from a tunnel to h's address, is un-SNATed
// there first, then un-DNATed in its network's zone (HairpinReturn). A
// local backend gets the connection unchanged: it sees the client.
func (c *Compiler) gatewaySNATFlows(h *hostState, self string, cookie uint64) []flowRec {
	fs := []flowRec{mkFlow(TableConntrack, prioGatewaySNAT, cookie, "ip,"+RegFlags+"=0x2/0x2,nw_dst="+self,
		ctNAT(TableHairpinReturn, gwSNATZone))}
	out := strconv.Itoa(int(TableOutput))
	for peer := range h.peers {
		toPeer := matchFromGateway + "," + RegOutPort + "=" + portRef(TunnelPortName(peer))
		fs = append(fs,
			mkFlow(TableConntrackCommit, prioGatewaySNAT, cookie, matchCtNew+","+toPeer,
				"ct(commit,"+ctZone+"),ct(commit,table="+out+","+gwSNATZone+",nat(src="+self+"))"),
			// Every later packet of such a connection is SNATed the same
			// way; a gateway packet of any other connection (an egress
			// reply to a remote container) has no entry there and passes
			// unchanged (tracked, not committed).
			mkFlow(TableConntrackCommit, prioGatewaySNAT, cookie, "ct_state=-new+trk,ip,"+toPeer,
				"ct(table="+out+","+gwSNATZone+",nat)"))
	}
	return fs
}

// routeFlows are the flows by which other hosts reach h's gateway port
// (the same on each of them, so built once): replies to h's address, over
// the tunnel towards h.
func (h *hostState) routeFlows() []flowRec {
	addr := hostAddr(h)
	if h.route != nil || addr == "" {
		return h.route
	}
	pc, mac := Owner(KindHost, h.obj.Name), openapi.HostMAC(addr)
	h.route = []flowRec{
		mkFlow(TableL3Forwarding, prioHostRoute, pc, matchCtReply+",ip,nw_dst="+addr,
			"set_field:"+mac+"->eth_dst,"+gotoTable(TableL2Forwarding)),
		mkFlow(TableL2Forwarding, prioPort, pc, matchFromLocal+",dl_dst="+mac,
			"move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],set_field:"+portRef(TunnelPortName(h.obj.Name))+"->"+RegOutPort+","+
				gotoTable(TableIngressPolicy)),
	}
	return h.route
}

// externalNet adds network n's part of h's external state: the route of
// its CIDR, its way out (through h, or through its egress IP's holder),
// and its egress NAT rule.
func (c *Compiler) externalNet(h *hostState, n *netState, holder *hostState, gw *openapi.Gateway, e *extState) {
	p := n.p
	cookie := Owner(KindNetwork, p.name)
	gw.Routes = append(gw.Routes, openapi.GatewayRoute{Dst: p.prefix.String()})
	toward := func(mac string) string {
		return "set_field:" + p.gwMAC + "->eth_src,set_field:" + mac + "->eth_dst,dec_ttl," + gotoTable(TableL2Forwarding)
	}
	out := p.reg + ",ip,dl_dst=" + p.gwMAC
	// Replies of connections that came in through this host go back
	// through it, whatever the network's egress.
	e.flows = append(e.flows, mkFlow(TableL3Forwarding, prioExternalReply, cookie, matchCtReply+","+out, toward(gw.MAC)))
	if !n.obj.EgressEnabled() {
		return
	}
	via := gw.MAC
	if holder != nil && holder != h {
		via = openapi.HostMAC(hostAddr(holder))
	}
	e.flows = append(e.flows, mkFlow(TableL3Forwarding, prioExternal, cookie, out, toward(via)))
	rule := openapi.NATRule{Kind: openapi.NATEgress, Owner: KindNetwork + "/" + p.name, Source: p.prefix.String()}
	if holder == h {
		rule.SNATTo = egressIP(&n.obj)
	}
	gw.NAT = append(gw.NAT, rule)
}

// externalService adds s's node ports to h's external state: the NAT rule
// of each (on every host), the route of its VIP where its network is
// present, and for a Local service the flows and groups that keep h's
// node-port connections on h's backends.
func (c *Compiler) externalService(h *hostState, s *svcState, gw *openapi.Gateway, e *extState) {
	if !s.nodePorts() {
		return
	}
	n := c.nets[s.obj.Network]
	present := n != nil && n.p != nil && n.present[h.obj.Name] != nil
	if present {
		gw.Routes = append(gw.Routes, openapi.GatewayRoute{Dst: s.vip + "/32", Via: n.p.gw})
	}
	cookie := Owner(KindService, s.obj.ID)
	local := s.localBackends[h]
	for _, p := range s.ports {
		if p.nodePort == 0 {
			continue
		}
		r := openapi.NATRule{Kind: openapi.NATNodePort, Owner: KindService + "/" + s.obj.ID,
			Protocol: strings.ToUpper(p.proto), HostPort: p.nodePort}
		if present {
			r.ToIP, r.ToPort = s.vip, p.port
		}
		gw.NAT = append(gw.NAT, r)
		if !present || !s.local() {
			continue
		}
		match := "ct_state=+new+trk," + p.proto + "," + matchFromGateway + "," + n.p.reg + ",nw_dst=" + s.vip + ",tp_dst=" + strconv.Itoa(p.port)
		if len(local) == 0 {
			e.flows = append(e.flows, mkFlow(TableServiceLB, prioLocalTraffic, cookie, match, rejectAction))
			continue
		}
		id := p.group | localGroupBit
		e.groups = append(e.groups, openapi.Group{ID: id, Spec: groupSpec(s, p, local, false)})
		e.flows = append(e.flows, mkFlow(TableServiceLB, prioLocalTraffic, cookie, match, "group:"+strconv.FormatUint(uint64(id), 10)))
	}
}

// publishChanged tells whether a container's published ports changed.
func publishChanged(a, b *openapi.Container) bool { return !reflect.DeepEqual(a.Publish, b.Publish) }

// externalNetChanged tells whether a network's egress settings changed.
func externalNetChanged(a, b *openapi.Network) bool {
	return a.EgressEnabled() != b.EgressEnabled() || a.EgressIP != b.EgressIP
}

// foldGateway puts h's gateway change into d and h's sums.
func foldGateway(h *hostState, t *hostTxn, d *openapi.ProgramDelta) bool {
	if !t.gwTouched || reflect.DeepEqual(t.gwBefore, h.ext.gw) {
		return false
	}
	if h.ext.gw == nil {
		d.RemoveGateway = true
	} else {
		g := *h.ext.gw
		d.Gateway = &g
	}
	h.sums.SetGateway(program.GatewayKey(h.ext.gw))
	return true
}
