package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/openapi"
)

// maxHops bounds the hosts one trace crosses.
const maxHops = 4

// Hop is one host on the simulated path: its simulation and the switch
// trace its agent is asked for.
type Hop struct {
	Host   string
	Packet Packet
	Result Result
	Job    openapi.NodeTraceJob
	// compare is how many of the hop's flows the switch must match one by
	// one: all, or up to the flow that picks a service backend (the switch
	// hashes to its own bucket).
	compare int
}

// firstPacket is the packet the source sends, as the first hop sees it.
func (in *intent) firstPacket() (string, Packet, bool) {
	p := Packet{Proto: protoNum(in.req.Protocol), SrcPort: in.req.SourcePort, DstPort: in.req.Port, Src: in.src.ip, Dst: in.dst.ip}
	if p.Proto == 1 {
		p.SrcPort, p.DstPort, p.ICMPType = 0, 0, 8
	}
	if s := in.src.ctr; s != nil {
		p.InPort, p.EthSrc = compile.ContainerPortName(s.ID), s.MAC
		p.EthDst = gatewayMAC(in.x.networks[s.Network])
		if t := in.dst.ctr; t != nil && t.Network == s.Network {
			p.EthDst = t.MAC // on-link: the ARP responder answered with its MAC
		}
		return s.Host, p, true
	}
	if in.via == nil {
		return "", p, false
	}
	return in.via.Name, in.kernelIn(p, in.src.ip), true
}

// kernelIn is the packet a host's kernel sends into br-int by its gateway
// port after DNATing a published or node port: from src to the DNAT target.
func (in *intent) kernelIn(p Packet, src netip.Addr) Packet {
	p.InPort, p.EthSrc = openapi.GatewayPortName, openapi.HostMAC(in.via.Address)
	p.Src, p.Dst = src, in.viaIP
	if p.Proto != 1 {
		p.DstPort = in.viaPort
	}
	p.TunID, p.Regs, p.CtState, p.CtZone = 0, [8]uint32{}, 0, 0
	p.EthDst = ""
	for _, n := range in.env.Snap.Networks {
		if pf, err := netip.ParsePrefix(n.CIDR); err == nil && pf.Contains(p.Dst) {
			p.EthDst = gatewayMAC(&n)
			if t := in.target; t != nil && t.IP == p.Dst.String() {
				p.EthDst = t.MAC
			}
		}
	}
	if in.nodePort != nil {
		for _, n := range in.env.Snap.Networks {
			if n.Name == in.nodePort.Network {
				p.EthDst = gatewayMAC(&n) // routed onlink via the network's gateway
			}
		}
	}
	return p
}

func gatewayMAC(n *openapi.Network) string {
	if n == nil {
		return ""
	}
	m, _ := compile.GatewayMAC(n.Gateway)
	return m
}

func protoNum(p string) int {
	switch p {
	case "UDP":
		return 17
	case "SCTP":
		return 132
	case "ICMP":
		return 1
	}
	return 6
}

// simulate follows the packet through the compiled programs of the hosts
// on its way: over tunnels to the peer, and through a host's kernel into
// the host of a published or node port.
func (in *intent) simulate() ([]Hop, error) {
	host, pkt, ok := in.firstPacket()
	if !ok {
		return nil, nil
	}
	var hops []Hop
	kernelDone := false
	for len(hops) < maxHops && host != "" {
		prog, err := in.program(host)
		if err != nil {
			return nil, err
		}
		r := NewSim(prog).Run(pkt, in.prefer)
		hop := Hop{Host: host, Packet: pkt, Result: r, compare: len(r.Flows),
			Job: openapi.NodeTraceJob{Bridge: compile.BridgeName, Flow: FlowText(pkt), CtNext: r.CtNext}}
		for i, f := range r.Flows {
			if strings.Contains(f.Actions, "group:") {
				// A select group hashes (dp_hash) and recirculates, which
				// ofproto/trace does not follow: a dp_hash given with the
				// flow lets it pick a bucket at once.
				hop.compare = i + 1
				hop.Job.Flow += ",dp_hash=0x1"
				break
			}
		}
		hops = append(hops, hop)
		host = ""
		if r.Verdict != VerdictOutput {
			break
		}
		switch {
		case strings.HasPrefix(r.Output, compile.TunnelPortPrefix):
			for _, t := range prog.Tunnels {
				if t.Name == r.Output {
					next := r.Packet
					next.InPort = compile.TunnelPortName(hops[len(hops)-1].Host)
					next.Regs, next.CtState, next.CtZone = [8]uint32{}, 0, 0
					next.CtOrigDst, next.CtOrigPort, next.CtOrigProto = netip.Addr{}, 0, 0
					host, pkt = t.PeerHost, next
				}
			}
		case r.Output == openapi.GatewayPortName && in.via != nil && !kernelDone && in.src.ctr != nil:
			// Leaves by the source's host (masqueraded) for the published
			// port's host, whose kernel DNATs it into its br-int.
			kernelDone = true
			masq := mustAddr(in.x.hosts[hops[len(hops)-1].Host].Address)
			if n := in.x.networks[in.src.ctr.Network]; n != nil && n.EgressIP != "" {
				masq = mustAddr(n.EgressIP)
			}
			host, pkt = in.via.Name, in.kernelIn(r.Packet, masq)
		}
	}
	return hops, nil
}

// compiledLayer renders the hops.
func compiledLayer(hops []Hop, owners Owners) []openapi.TraceCompiledHost {
	out := make([]openapi.TraceCompiledHost, 0, len(hops))
	for _, h := range hops {
		c := openapi.TraceCompiledHost{Host: h.Host, InPort: h.Packet.InPort, Flow: h.Job.Flow, Verdict: h.Result.Verdict,
			Output: h.Result.Output, Flows: make([]openapi.TraceFlow, 0, len(h.Result.Flows))}
		for _, f := range h.Result.Flows {
			c.Flows = append(c.Flows, openapi.TraceFlow{Table: f.Table, TableName: compile.Table(f.Table).String(), Priority: f.Priority,
				Cookie: CookieString(f.Cookie), Owner: owners.Name(f.Cookie), Match: f.Match, Actions: f.Actions})
		}
		out = append(out, c)
	}
	return out
}

// FlowText is the packet as an ovs-ofctl flow (ofproto/trace's input),
// ports by name.
func FlowText(p Packet) string {
	var b strings.Builder
	b.WriteString("in_port=" + p.InPort)
	if p.TunID != 0 {
		b.WriteString(",tun_id=0x" + strconv.FormatUint(p.TunID, 16))
	}
	switch p.Proto {
	case 6:
		b.WriteString(",tcp")
	case 17:
		b.WriteString(",udp")
	case 132:
		b.WriteString(",sctp")
	case 1:
		b.WriteString(",icmp")
	default:
		b.WriteString(",ip")
	}
	fmt.Fprintf(&b, ",dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64", p.EthSrc, p.EthDst, p.Src, p.Dst)
	switch p.Proto {
	case 1:
		fmt.Fprintf(&b, ",icmp_type=%d,icmp_code=%d", p.ICMPType, p.ICMPCode)
	case 6, 17, 132: // tp_src is TCP's alone in ovs-ofctl's exact flows
		l4 := map[int]string{6: "tcp", 17: "udp", 132: "sctp"}[p.Proto]
		fmt.Fprintf(&b, ",%s_src=%d,%s_dst=%d", l4, p.SrcPort, l4, p.DstPort)
	}
	return b.String()
}
