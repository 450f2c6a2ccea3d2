package compile

import (
	"cmp"
	"maps"
	"slices"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// hostTxn is what the running Apply changed on one host: the net flow
// changes, and each touched port as it was before the Apply.
type hostTxn struct {
	h          *hostState // nil once the host is removed
	existed    bool       // the host had a program before this Apply
	fromDigest string
	flows      map[program.Key]*pending
	tunBefore  map[string]*openapi.TunnelPort    // peer host -> port before (nil: none)
	ctrBefore  map[string]*openapi.ContainerPort // container ID -> port before (nil: none)
	groups     elemTxn[uint32]
	dns        dnsTxn
	health     elemTxn[string]
	// gwBefore is the gateway before the Apply, once gwTouched.
	gwBefore  *openapi.Gateway
	gwTouched bool
}

// Apply applies changes in order, as one step at revision rev, and returns
// the hosts whose program changed (sorted by name), each with its new digest
// and the delta from its previous program. Hosts whose program did not change
// are not listed and keep their revision. Use Program for a full program.
func (c *Compiler) Apply(rev int64, changes ...Change) []HostUpdate {
	c.rev = rev
	c.txn = map[string]*hostTxn{}
	for _, ch := range changes {
		c.apply(ch)
	}
	c.settlePins()
	c.flushPolicies()
	c.flushServices()
	c.flushExternal()
	ups := c.finish(rev)
	c.txn = nil
	return ups
}

func (c *Compiler) apply(ch Change) {
	switch ch.kind {
	case KindHost:
		if ch.delete {
			c.deleteHost(ch.key)
		} else {
			c.putHost(*ch.host)
		}
	case KindNetwork:
		if ch.delete {
			c.deleteNetwork(ch.key)
		} else {
			c.putNetwork(*ch.network)
		}
	case KindContainer:
		if ch.delete {
			c.deleteContainer(ch.key)
		} else {
			c.putContainer(*ch.container)
		}
	case kindService:
		if ch.delete {
			c.deleteService(ch.key)
		} else {
			c.putService(*ch.service)
		}
	case kindHealth:
		c.putHealth(ch.key, ch.endpoint)
	case kindPolicy:
		if ch.delete {
			c.deletePolicy(ch.key)
		} else {
			c.putPolicy(*ch.policy)
		}
	}
}

// txnFor returns h's record in the running Apply, or nil during a bulk load.
func (c *Compiler) txnFor(h *hostState) *hostTxn {
	if c.bulk {
		return nil
	}
	t := c.txn[h.obj.Name]
	if t != nil && t.h == h {
		return t
	}
	if t == nil {
		t = &hostTxn{existed: h.hasProgram(), fromDigest: h.digest}
		c.txn[h.obj.Name] = t
	} else {
		// Removed earlier in this Apply and now added again: the new
		// program starts from nothing.
		t.existed, t.fromDigest = false, ""
	}
	t.h = h
	t.flows = map[program.Key]*pending{}
	t.tunBefore = map[string]*openapi.TunnelPort{}
	t.ctrBefore = map[string]*openapi.ContainerPort{}
	t.groups, t.dns, t.health = elemTxn[uint32]{}, dnsTxn{}, elemTxn[string]{}
	t.gwBefore, t.gwTouched = nil, false
	return t
}

// addFlows records that fs are added to (sign 1) or removed from (sign -1)
// h's program.
func (c *Compiler) addFlows(h *hostState, fs []flowRec, sign int) {
	t := c.txnFor(h)
	if t == nil {
		return
	}
	for i := range fs {
		p := t.flows[fs[i].key]
		if p == nil {
			p = &pending{f: &fs[i]}
			t.flows[fs[i].key] = p
		}
		p.n += sign
	}
}

// touchTunnel remembers h's tunnel port towards peer before it changes.
func (c *Compiler) touchTunnel(h *hostState, peer string) {
	t := c.txnFor(h)
	if t == nil {
		return
	}
	if _, ok := t.tunBefore[peer]; !ok {
		t.tunBefore[peer] = c.currentTunnel(h, peer)
	}
}

// touchCtr remembers h's port of container id before it changes.
func (c *Compiler) touchCtr(h *hostState, id string) {
	t := c.txnFor(h)
	if t == nil {
		return
	}
	if _, ok := t.ctrBefore[id]; !ok {
		t.ctrBefore[id] = currentCtr(h, id)
	}
}

func (c *Compiler) currentTunnel(h *hostState, peer string) *openapi.TunnelPort {
	if h.peers[peer] == 0 {
		return nil
	}
	tp := tunnelPort(h, c.hosts[peer])
	return &tp
}

func currentCtr(h *hostState, id string) *openapi.ContainerPort {
	ct := h.local[id]
	if ct == nil {
		return nil
	}
	cp := ct.f.port
	return &cp
}

func (c *Compiler) putHost(obj openapi.Host) {
	h := c.hosts[obj.Name]
	if h == nil {
		h = &hostState{obj: obj, peers: map[string]int{}, local: map[string]*ctrState{}, pend: map[program.Key]*pending{}}
		c.hosts[obj.Name] = h
		c.addFlows(h, baseFlows, 1)
		c.markExtAll()
		for _, ct := range c.byHost[obj.Name] {
			c.activate(ct)
		}
		return
	}
	if h.obj.Address != obj.Address || h.obj.Status != obj.Status {
		// Egress IP holders, node-port pins and routes to this host.
		h.route = nil
		c.markExtAll()
	}
	if h.obj.Address != obj.Address || h.obj.TunnelType != obj.TunnelType {
		// Tunnel ports to and from this host change; flows do not.
		for peer := range h.peers {
			c.touchTunnel(h, peer)
			c.touchTunnel(c.hosts[peer], obj.Name)
		}
	}
	h.obj = obj
}

func (c *Compiler) deleteHost(name string) {
	h := c.hosts[name]
	if h == nil {
		return
	}
	c.unpinHost(h)
	c.markExtAll()
	for _, ct := range h.local {
		c.deactivate(ct)
	}
	c.flushPolicies() // while the host is known: its placements go first
	c.flushServices()
	c.dropHostPolicies(h)
	delete(c.hosts, name)
	if t := c.txn[name]; t != nil {
		t.h = nil
	} else if !c.bulk {
		c.txn[name] = &hostTxn{existed: h.hasProgram()}
	}
}

func (c *Compiler) putNetwork(obj openapi.Network) {
	n := c.nets[obj.Name]
	if n == nil {
		n = &netState{active: map[string]*ctrState{}, present: map[string]*presence{}}
		c.nets[obj.Name] = n
	} else if n.obj.CIDR == obj.CIDR && n.obj.Gateway == obj.Gateway && n.obj.VNI == obj.VNI && n.obj.MTU == obj.MTU {
		if externalNetChanged(&n.obj, &obj) {
			c.markExtAll()
		}
		n.obj = obj
		return
	} else {
		c.unpinNet(n)
		c.deactivateAll(n)
	}
	c.markExtAll()
	n.obj = obj
	n.p = parseNetwork(&obj)
	for _, ct := range c.byNet[obj.Name] {
		c.activate(ct)
	}
}

func (c *Compiler) deleteNetwork(name string) {
	if n := c.nets[name]; n != nil {
		c.unpinNet(n)
		c.markExtAll()
		c.deactivateAll(n)
		delete(c.nets, name)
	}
}

func (c *Compiler) deactivateAll(n *netState) {
	for _, ct := range n.active {
		c.deactivate(ct)
	}
}

func (c *Compiler) putContainer(obj openapi.Container) {
	ct := c.ctrs[obj.ID]
	if ct == nil {
		ct = &ctrState{}
		c.ctrs[obj.ID] = ct
	} else {
		o := &ct.obj
		if o.Name == obj.Name && o.Network == obj.Network && o.Host == obj.Host &&
			o.IP == obj.IP && o.MAC == obj.MAC && o.Netns == obj.Netns && o.IPBlock == obj.IPBlock {
			if ct.f != nil && !maps.Equal(o.Labels, obj.Labels) {
				// Selections change: policies that select it (or have it
				// as a peer) before or after.
				c.touchNet(ct.net.obj.Name, o.Labels)
				c.touchNet(ct.net.obj.Name, obj.Labels)
			}
			if ct.f != nil && publishChanged(o, &obj) {
				c.markExt(ct.host)
			}
			ct.obj = obj // status: nothing compiled changes
			return
		}
		c.deactivate(ct)
		c.unindex(ct)
	}
	ct.obj = obj
	index(c.byHost, obj.Host, ct)
	index(c.byNet, obj.Network, ct)
	c.activate(ct)
}

func (c *Compiler) deleteContainer(id string) {
	if ct := c.ctrs[id]; ct != nil {
		c.deactivate(ct)
		c.unindex(ct)
		delete(c.ctrs, id)
	}
}

func index(m map[string]map[string]*ctrState, key string, ct *ctrState) {
	if m[key] == nil {
		m[key] = map[string]*ctrState{}
	}
	m[key][ct.obj.ID] = ct
}

func (c *Compiler) unindex(ct *ctrState) {
	for _, x := range []struct {
		m   map[string]map[string]*ctrState
		key string
	}{{c.byHost, ct.obj.Host}, {c.byNet, ct.obj.Network}} {
		delete(x.m[x.key], ct.obj.ID)
		if len(x.m[x.key]) == 0 {
			delete(x.m, x.key)
		}
	}
}

// activate compiles ct into the programs if its host and network allow it.
func (c *Compiler) activate(ct *ctrState) {
	if ct.f != nil {
		return
	}
	h, n := c.hosts[ct.obj.Host], c.nets[ct.obj.Network]
	if h == nil || n == nil || n.p == nil {
		return
	}
	ip, mac, ok := parseContainer(&ct.obj, n.p)
	if !ok {
		return
	}
	ct.f, ct.net, ct.host = compileContainer(&ct.obj, n.p, ip, mac, c.domain), n, h
	pr := n.present[h.obj.Name]
	if pr == nil {
		pr = c.presenceUp(n, h)
	}
	pr.n++
	id := ct.obj.ID
	c.touchCtr(h, id)
	h.local[id] = ct
	c.addFlows(h, ct.f.local, 1)
	c.addFlows(h, ct.f.common, 1)
	c.remoteFlows(n, ct, 1)
	if ct.f.block.IsValid() {
		c.blockUp(n, ct)
	}
	n.active[id] = ct
	c.netDNS(n, &ct.f.dns, 1)
	if len(ct.obj.Publish) > 0 {
		c.markExt(h)
	}
	c.touchNet(n.obj.Name, ct.obj.Labels)
}

// touchNet marks the policies and services of a network that a container
// with these labels matters to.
func (c *Compiler) touchNet(network string, labels map[string]string) {
	c.touchPolicies(network, labels)
	c.touchServices(network, labels)
}

// deactivate takes ct out of every program.
func (c *Compiler) deactivate(ct *ctrState) {
	if ct.f == nil {
		return
	}
	n, h, id := ct.net, ct.host, ct.obj.ID
	c.touchNet(n.obj.Name, ct.obj.Labels)
	if len(ct.obj.Publish) > 0 {
		c.markExt(h)
	}
	delete(n.active, id)
	c.netDNS(n, &ct.f.dns, -1)
	c.touchCtr(h, id)
	delete(h.local, id)
	c.addFlows(h, ct.f.local, -1)
	c.addFlows(h, ct.f.common, -1)
	c.remoteFlows(n, ct, -1)
	if ct.f.block.IsValid() {
		c.blockDown(n, ct)
	}
	pr := n.present[h.obj.Name]
	if pr.n--; pr.n == 0 {
		c.presenceDown(n, h)
	}
	ct.f, ct.net, ct.host = nil, nil, nil
}

// remoteFlows adds or removes ct's flows on the other hosts where its
// network is present. A bulk load skips it: buildAll places flows itself.
func (c *Compiler) remoteFlows(n *netState, ct *ctrState, sign int) {
	c.othersFlows(n, ct.host.obj.Name, sign, ct.f.common, ct.f.remote)
}

// presenceUp makes network n present on host h: its gateway flows, tunnels
// between h and the other hosts where n is present, and the flows of n's
// containers and blocks on those hosts.
func (c *Compiler) presenceUp(n *netState, h *hostState) *presence {
	pr := &presence{tun: []flowRec{tunnelFlow(h.obj.Name, n.p)}}
	c.addFlows(h, n.p.flows, 1)
	c.linkPeers(n, h, pr, 1)
	if !c.bulk {
		for _, ct := range n.active { // all on other hosts
			c.addFlows(h, ct.f.common, 1)
			c.addFlows(h, ct.f.remote, 1)
		}
		for _, b := range n.blocks { // all other hosts'
			c.addFlows(h, b.flows, 1)
		}
	}
	c.dnsPresence(h, n, false)
	n.present[h.obj.Name] = pr
	c.markExt(h)
	c.touchAllServices(n.obj.Name)
	return pr
}

// presenceDown undoes presenceUp once n's last container left h.
func (c *Compiler) presenceDown(n *netState, h *hostState) {
	pr := n.present[h.obj.Name]
	c.dnsPresence(h, n, true)
	delete(n.present, h.obj.Name)
	c.markExt(h)
	c.addFlows(h, n.p.flows, -1)
	c.linkPeers(n, h, pr, -1)
	for _, ct := range n.active { // all on other hosts
		c.addFlows(h, ct.f.common, -1)
		c.addFlows(h, ct.f.remote, -1)
	}
	for _, b := range n.blocks { // all other hosts'
		c.addFlows(h, b.flows, -1)
	}
	c.touchAllServices(n.obj.Name)
}

// linkPeers counts network n as shared (sign 1) or no longer shared (-1)
// between h and every other host where n is present, with the tunnel
// classifier flows both ways.
func (c *Compiler) linkPeers(n *netState, h *hostState, pr *presence, sign int) {
	name := h.obj.Name
	for peer, ppr := range n.present {
		if peer == name {
			continue
		}
		p := c.hosts[peer]
		c.markExt(p)
		c.touchTunnel(h, peer)
		c.touchTunnel(p, name)
		bump(h.peers, peer, sign)
		bump(p.peers, name, sign)
		c.addFlows(h, ppr.tun, sign)
		c.addFlows(p, pr.tun, sign)
	}
}

// hasProgram tells whether h's program was ever computed (by Full or a
// finished Apply).
func (h *hostState) hasProgram() bool { return h.prog != nil || h.stale }

func bump(m map[string]int, k string, d int) {
	if m[k] += d; m[k] == 0 {
		delete(m, k)
	}
}

// finish turns the running Apply's records into host updates and folds them
// into each host's digest and pending changes.
func (c *Compiler) finish(rev int64) []HostUpdate {
	names := make([]string, 0, len(c.txn))
	for name := range c.txn {
		names = append(names, name)
	}
	slices.Sort(names)
	var ups []HostUpdate
	for _, name := range names {
		t := c.txn[name]
		h := t.h
		if h == nil {
			if t.existed {
				ups = append(ups, HostUpdate{Host: name, Removed: true})
			}
			continue
		}
		d := &openapi.ProgramDelta{FromDigest: t.fromDigest}
		changed := c.foldFlows(h, t, d)
		changed = c.foldTunnels(h, t, d) || changed
		changed = foldCtrs(h, t, d) || changed
		changed = fold(&groupKind, &h.groups, t.groups, &h.sums, d) || changed
		changed = c.foldDNS(h, t.dns, d) || changed
		changed = fold(&healthKind, &h.health, t.health, &h.sums, d) || changed
		changed = foldGateway(h, t, d) || changed
		if !changed && t.existed {
			continue
		}
		h.digest = h.sums.Digest(name, bridgeSpec())
		h.rev, h.stale = rev, true
		d.Digest = h.digest
		ups = append(ups, HostUpdate{Host: name, New: !t.existed, Digest: h.digest, Delta: d})
	}
	return ups
}

func (c *Compiler) foldFlows(h *hostState, t *hostTxn, d *openapi.ProgramDelta) bool {
	changed := false
	for k, p := range t.flows {
		if p.n == 0 {
			continue
		}
		changed = true
		for i := 0; i < p.n; i++ {
			d.AddFlows = append(d.AddFlows, p.f.Flow)
		}
		for i := 0; i < -p.n; i++ {
			d.RemoveFlows = append(d.RemoveFlows, p.f.Flow)
		}
		h.sums.AddFlow(k, p.n)
		q := h.pend[k]
		if q == nil {
			q = &pending{f: p.f}
			h.pend[k] = q
		}
		if q.n += p.n; q.n == 0 {
			delete(h.pend, k)
		}
	}
	program.SortFlows(d.AddFlows)
	program.SortFlows(d.RemoveFlows)
	return changed
}

func (c *Compiler) foldTunnels(h *hostState, t *hostTxn, d *openapi.ProgramDelta) bool {
	changed := false
	for peer, before := range t.tunBefore {
		now := c.currentTunnel(h, peer)
		if before != nil && now != nil && *before == *now || before == nil && now == nil {
			continue
		}
		changed = true
		if before != nil {
			d.RemoveTunnels = append(d.RemoveTunnels, before.Name)
			h.sums.AddTunnel(program.TunnelKey(before), -1)
		}
		if now != nil {
			d.AddTunnels = append(d.AddTunnels, *now)
			h.sums.AddTunnel(program.TunnelKey(now), 1)
		}
	}
	slices.Sort(d.RemoveTunnels)
	slices.SortFunc(d.AddTunnels, func(a, b openapi.TunnelPort) int { return cmp.Compare(a.Name, b.Name) })
	return changed
}

func foldCtrs(h *hostState, t *hostTxn, d *openapi.ProgramDelta) bool {
	changed := false
	for id, before := range t.ctrBefore {
		now := currentCtr(h, id)
		if before != nil && now != nil && *before == *now || before == nil && now == nil {
			continue
		}
		changed = true
		if before != nil {
			d.RemoveContainers = append(d.RemoveContainers, before.Name)
			h.sums.AddContainer(program.ContainerKey(before), -1)
		}
		if now != nil {
			d.AddContainers = append(d.AddContainers, *now)
			h.sums.AddContainer(program.ContainerKey(now), 1)
		}
	}
	slices.Sort(d.RemoveContainers)
	slices.SortFunc(d.AddContainers, func(a, b openapi.ContainerPort) int { return cmp.Compare(a.Name, b.Name) })
	return changed
}
