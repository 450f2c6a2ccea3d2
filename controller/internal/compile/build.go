package compile

import (
	"cmp"
	"slices"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Where a distinct flow goes in buildAll.
const (
	onAll    = iota // base flows: every host
	onNet           // every host where the network is present
	onTunnel        // same, except the tunnel's peer
	onLocal         // the container's host only
	onRemote        // every host where the network is present, except the container's
	onHosts         // the hosts listed in onHostsLists[host] (policy flows)
)

// uflow is one distinct flow of the snapshot and where it goes.
type uflow struct {
	f    *flowRec
	kind uint8
	net  int32 // index in nets
	host int32 // index in hosts: the tunnel's peer or the container's host
}

// buildAll builds every host's program from scratch after a bulk load. Each
// distinct flow is sorted once (about 10 per container), then dealt, in
// order, to the hosts it is on: O(distinct flows log + total flows), no
// per-host sort.
func (c *Compiler) buildAll() map[string]*openapi.Program {
	hosts := make([]*hostState, 0, len(c.hosts))
	for _, h := range c.hosts {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b *hostState) int { return cmp.Compare(a.obj.Name, b.obj.Name) })
	for i, h := range hosts {
		h.idx = i
	}
	var nets []*netState
	for _, n := range c.nets {
		if n.p != nil && len(n.present) > 0 {
			n.idx = len(nets)
			nets = append(nets, n)
		}
	}
	// at[n] lists the hosts where network n is present.
	at := make([][]int32, len(nets))
	var u []uflow
	add := func(fs []flowRec, kind uint8, net, host int) {
		for i := range fs {
			u = append(u, uflow{f: &fs[i], kind: kind, net: int32(net), host: int32(host)})
		}
	}
	add(baseFlows, onAll, 0, 0)
	// Policy flows are per host, but the same flow (a rule's clauses) is
	// often on several hosts: sort it once, deal it to each.
	var lists [][]int32
	for _, k := range c.pkeys {
		first := len(lists)
		k.each(func(h *hostState, a *aggFlow) {
			for i := range a.rec {
				j := first
				for j < len(lists) && u[len(u)-len(lists)+j].f.key != a.rec[i].key {
					j++
				}
				if j == len(lists) {
					lists = append(lists, nil)
					u = append(u, uflow{f: &a.rec[i], kind: onHosts, host: int32(j)})
				}
				lists[j] = append(lists[j], int32(h.idx))
			}
		})
	}
	for _, h := range hosts {
		add(h.ext.flows, onLocal, 0, h.idx)
	}
	for _, s := range c.services {
		if len(s.on) > 0 {
			add(s.flows, onNet, c.nets[s.obj.Network].idx, 0)
		}
	}
	for _, n := range nets {
		add(n.p.flows, onNet, n.idx, 0)
		for name, pr := range n.present {
			h := c.hosts[name].idx
			at[n.idx] = append(at[n.idx], int32(h))
			add(pr.tun, onTunnel, n.idx, h)
		}
		for _, ct := range n.active {
			add(ct.f.local, onLocal, n.idx, ct.host.idx)
			add(ct.f.common, onNet, n.idx, ct.host.idx)
			add(ct.f.remote, onRemote, n.idx, ct.host.idx)
		}
		for _, b := range n.blocks {
			add(b.flows, onRemote, n.idx, b.host.idx)
		}
	}
	slices.SortFunc(u, func(a, b uflow) int { return program.CompareFlows(&a.f.Flow, &b.f.Flow) })

	// Count each host's flows first, to allocate each program's flows once.
	count := make([]int, len(hosts))
	perNet := make([]int, len(nets))
	for i := range u {
		switch e := &u[i]; e.kind {
		case onAll:
			for h := range count {
				count[h]++
			}
		case onLocal:
			count[e.host]++
		case onHosts:
			for _, h := range lists[e.host] {
				count[h]++
			}
		case onNet:
			perNet[e.net]++
		default: // on every host of the network but its own
			perNet[e.net]++
			count[e.host]--
		}
	}
	for n, hs := range at {
		for _, h := range hs {
			count[h] += perNet[n]
		}
	}
	flows := make([][]openapi.Flow, len(hosts))
	for h := range flows {
		flows[h] = make([]openapi.Flow, 0, count[h])
		hosts[h].sums = program.Sums{}
	}
	deal := func(h int32, e *uflow) {
		flows[h] = append(flows[h], e.f.Flow)
		hosts[h].sums.AddFlow(e.f.key, 1)
	}
	for i := range u {
		e := &u[i]
		switch e.kind {
		case onAll:
			for h := range hosts {
				deal(int32(h), e)
			}
		case onLocal:
			deal(e.host, e)
		case onHosts:
			for _, h := range lists[e.host] {
				deal(h, e)
			}
		case onNet:
			for _, h := range at[e.net] {
				deal(h, e)
			}
		default:
			for _, h := range at[e.net] {
				if h != e.host {
					deal(h, e)
				}
			}
		}
	}

	out := make(map[string]*openapi.Program, len(hosts))
	for _, h := range hosts {
		p := c.newProgram(h, flows[h.idx])
		for i := range p.Tunnels {
			h.sums.AddTunnel(program.TunnelKey(&p.Tunnels[i]), 1)
		}
		for i := range p.Containers {
			h.sums.AddContainer(program.ContainerKey(&p.Containers[i]), 1)
		}
		sumAll(&groupKind, &h.groups, &h.sums)
		c.sumDNS(h)
		sumAll(&healthKind, &h.health, &h.sums)
		h.sums.SetGateway(program.GatewayKey(h.ext.gw))
		h.digest = h.sums.Digest(h.obj.Name, p.Bridge)
		h.rev = c.rev
		p.Digest, p.Revision = h.digest, h.rev
		h.prog, h.pend, h.stale = p, map[program.Key]*pending{}, false
		out[h.obj.Name] = p
	}
	return out
}
