package compile

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/switchyard/switchyard/openapi"
)

// IPAM blocks. The store hands a network's addresses to hosts in aligned
// blocks (openapi.Container.IPBlock: the block of its host its address comes
// from). MACs are derived from addresses (DerivedMAC), so a block is also a
// prefix of MACs, and one L2Forwarding flow per (network, block) sends every
// container of the block to its host's tunnel: on every other host where the
// network is present, "reg0=VNI,reg1=0x1/0x1,dl_dst=<block's MACs>" at
// prioBlock, below the per-container flows (a container whose address is
// borrowed or moved off its block's host keeps its own flow, prioPort). With
// the network-wide ARP answer and route of netFlows, a container created in
// a block that already has one changes no other host's flows at all.
//
// The flow is counted per block (blockState.n, the block's active
// containers): it comes with the first and goes with the last. The store
// guarantees that a container names a block only while its host owns it, so
// two hosts never claim one block here.

// DerivedMAC is the MAC of a network address: 0a:58 followed by its four
// bytes (what the store gives every container; GatewayMAC for a gateway).
// Empty for anything but IPv4.
func DerivedMAC(ip string) string {
	m, err := GatewayMAC(ip)
	if err != nil {
		return ""
	}
	return m
}

// blockKey is one host's block of a network.
type blockKey struct {
	host   string
	prefix netip.Prefix
}

// blockState is a block with active containers, and its flow.
type blockState struct {
	n     int
	host  *hostState
	flows []flowRec // one: blockFlow
}

// containerBlock is c's block when the compiler can use it: an IPv4 prefix,
// masked, inside the network, holding ip, and c's MAC derived from ip
// (derived: a block routes by MAC). Else the zero Prefix: c is routed on
// its own.
func containerBlock(c *openapi.Container, n *netParams, ip string, derived bool) netip.Prefix {
	if c.IPBlock == "" || !derived {
		return netip.Prefix{}
	}
	b, err := netip.ParsePrefix(c.IPBlock)
	a, aerr := netip.ParseAddr(ip)
	if err != nil || aerr != nil || !b.Addr().Is4() || b != b.Masked() ||
		b.Bits() < n.prefix.Bits() || !n.prefix.Contains(b.Addr()) || !b.Contains(a) {
		return netip.Prefix{}
	}
	return b
}

// toTunnel sends a packet of network n to host's tunnel.
func toTunnel(n *netParams, host string) string {
	return "set_field:" + n.vni + "->tun_id,set_field:" + portRef(TunnelPortName(host)) + "->" + RegOutPort + "," +
		gotoTable(TableIngressPolicy)
}

// blockFlow is the flow by which the other hosts reach host's block b of
// network n. Its cookie is the host's (Owner(KindHost, host)).
func blockFlow(n *netParams, host string, b netip.Prefix) flowRec {
	m := net.CIDRMask(b.Bits(), 32)
	mask := fmt.Sprintf("ff:ff:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3])
	return mkFlow(TableL2Forwarding, prioBlock, Owner(KindHost, host),
		n.reg+","+matchFromLocal+",dl_dst="+DerivedMAC(b.Addr().String())+"/"+mask, toTunnel(n, host))
}

// blockUp counts ct in its block, placing the block's flow on the other
// hosts of its network when it is the first.
func (c *Compiler) blockUp(n *netState, ct *ctrState) {
	k := blockKey{ct.host.obj.Name, ct.f.block}
	b := n.blocks[k]
	if b == nil {
		if n.blocks == nil {
			n.blocks = map[blockKey]*blockState{}
		}
		b = &blockState{host: ct.host, flows: []flowRec{blockFlow(n.p, k.host, k.prefix)}}
		n.blocks[k] = b
		c.othersFlows(n, k.host, 1, b.flows)
	}
	b.n++
}

// blockDown undoes blockUp.
func (c *Compiler) blockDown(n *netState, ct *ctrState) {
	k := blockKey{ct.host.obj.Name, ct.f.block}
	b := n.blocks[k]
	if b.n--; b.n == 0 {
		delete(n.blocks, k)
		c.othersFlows(n, k.host, -1, b.flows)
	}
}

// othersFlows adds (sign 1) or removes (-1) each of fss on the hosts where
// n is present but host. A bulk load skips it: buildAll places flows
// itself.
func (c *Compiler) othersFlows(n *netState, host string, sign int, fss ...[]flowRec) {
	if c.bulk {
		return
	}
	for name := range n.present {
		if name != host {
			for _, fs := range fss {
				c.addFlows(c.hosts[name], fs, sign)
			}
		}
	}
}
