package compile

import (
	"cmp"
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/controller/internal/service"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Services: load balancing to a service's backends through select groups,
// session affinity through learned flows, reject when nothing can serve,
// the service's DNS record and the health probes of its local backends.
// See the package doc (Services).

// DefaultDNSDomain is the DNS domain when the snapshot names none.
const DefaultDNSDomain = "switchyard.local"

// DefaultAffinityTimeout is the ClientIP affinity timeout when the service
// names none (seconds).
const DefaultAffinityTimeout = 10800

// svcState is one service, parsed, and what it placed.
type svcState struct {
	obj   openapi.Service
	ok    bool // compilable: GroupID set, VIP, ports and selector valid
	sel   selector.Selector
	vip   string
	ports []svcPort

	// What it placed, on the hosts in on (where its network is present),
	// and its probes per host.
	flows  []flowRec
	groups []openapi.Group
	ghash  []program.Key // the groups' content hashes, computed once
	dns    *openapi.DNSRecord
	dnsNet *netState // the network dns was added to
	on     []*hostState
	probes map[*hostState][]openapi.HealthProbe
	dirty  bool
	// localBackends are each host's usable backends (Local node ports).
	localBackends map[*hostState][]lbBackend
}

// svcPort is one port of a service, parsed.
type svcPort struct {
	proto    string // tcp, udp or sctp
	port     int
	target   int
	group    uint32
	nodePort int // 0: none
}

// parseService validates s. A service that cannot be compiled entirely
// compiles nothing.
func parseService(s openapi.Service) *svcState {
	st := &svcState{obj: s}
	vip, err := netip.ParseAddr(s.VIP)
	if err != nil || !vip.Is4() || s.GroupID == 0 || len(s.Ports) == 0 || len(s.Ports) > openapi.MaxServicePorts ||
		uint64(s.GroupID)*openapi.MaxServicePorts+openapi.MaxServicePorts > 1<<32-256 {
		return st
	}
	sel, err := selector.Parse(s.Selector)
	if err != nil {
		return st
	}
	for i, p := range s.Ports {
		proto := strings.ToLower(cmp.Or(p.Protocol, "TCP"))
		target := cmp.Or(p.TargetPort, p.Port)
		if proto != "tcp" && proto != "udp" && proto != "sctp" || p.Port < 1 || p.Port > 65535 || target < 1 || target > 65535 {
			return st
		}
		np := p.NodePort
		if np < openapi.MinExternalPort || np > 65535 || proto == "sctp" {
			np = 0
		}
		st.ports = append(st.ports, svcPort{proto: proto, port: p.Port, target: target,
			group: s.GroupID*openapi.MaxServicePorts + uint32(i), nodePort: np})
	}
	st.ok, st.sel, st.vip = true, sel, vip.String()
	return st
}

// concerns tells whether a container with these labels in the service's
// network is (or would be) one of its backends.
func (s *svcState) concerns(labels map[string]string) bool { return s.ok && s.sel.Matches(labels) }

func (c *Compiler) putService(obj openapi.Service) {
	old := c.services[obj.ID]
	s := parseService(obj)
	if s.nodePorts() || old != nil && old.nodePorts() {
		c.markExtAll() // node ports (and pins) come, change or go
	}
	if old != nil {
		s.flows, s.groups, s.ghash, s.dns, s.dnsNet, s.on, s.probes = old.flows, old.groups, old.ghash, old.dns, old.dnsNet, old.on, old.probes
		c.unindexService(old)
		delete(c.dirtySvcs, old)
	}
	c.services[obj.ID] = s
	if c.svcByNet[obj.Network] == nil {
		c.svcByNet[obj.Network] = map[string]*svcState{}
	}
	c.svcByNet[obj.Network][obj.ID] = s
	c.markService(s)
}

func (c *Compiler) deleteService(id string) {
	s := c.services[id]
	if s == nil {
		return
	}
	delete(c.services, id)
	c.unindexService(s)
	if s.nodePorts() {
		c.markExtAll()
	}
	s.ok = false // the flush removes what it placed
	c.markService(s)
}

func (c *Compiler) unindexService(s *svcState) {
	if m := c.svcByNet[s.obj.Network]; m != nil && m[s.obj.ID] == s {
		delete(m, s.obj.ID)
		if len(m) == 0 {
			delete(c.svcByNet, s.obj.Network)
		}
	}
}

func (c *Compiler) markService(s *svcState) {
	if !s.dirty {
		s.dirty = true
		c.dirtySvcs[s] = true
	}
}

// touchServices marks the services of a network that select a container
// with these labels.
func (c *Compiler) touchServices(network string, labels map[string]string) {
	for _, s := range c.svcByNet[network] {
		if !s.dirty && s.concerns(labels) {
			c.markService(s)
		}
	}
}

// touchAllServices marks every service of a network (it appeared on or
// left a host).
func (c *Compiler) touchAllServices(network string) {
	for _, s := range c.svcByNet[network] {
		c.markService(s)
	}
}

// putHealth records or (e nil) forgets a health verdict.
func (c *Compiler) putHealth(key string, e *openapi.EndpointHealth) {
	svc, _, _ := strings.Cut(key, "/")
	old, had := c.health[key]
	if e == nil {
		if !had {
			return
		}
		delete(c.health, key)
	} else {
		c.health[key] = *e
		if had && old.Healthy == e.Healthy {
			return
		}
	}
	if s := c.services[svc]; s != nil {
		c.markService(s)
	}
}

// healthy tells whether svc's backend ctr may get connections: no verdict
// or a healthy one.
func (c *Compiler) healthy(svc, ctr string) bool {
	e, ok := c.health[svc+"/"+ctr]
	return !ok || e.Healthy
}

// flushServices recomputes every marked service and moves what it placed.
func (c *Compiler) flushServices() {
	if len(c.dirtySvcs) == 0 {
		return
	}
	for _, s := range slices.SortedFunc(maps.Keys(c.dirtySvcs), func(a, b *svcState) int {
		return strings.Compare(a.obj.ID, b.obj.ID)
	}) {
		old := *s
		s.flows, s.groups, s.ghash, s.dns, s.dnsNet, s.on, s.probes, s.localBackends = nil, nil, nil, nil, nil, nil, nil, nil
		c.compileService(s)
		if old.nodePorts() || s.nodePorts() {
			c.markExtAll()
		}
		c.placeService(s, 1)
		c.placeService(&old, -1)
		s.dirty = false
	}
	clear(c.dirtySvcs)
}

// placeService adds (1) or removes (-1) what s placed on its hosts (hosts
// that left took their part with them).
func (c *Compiler) placeService(s *svcState, sign int) {
	for _, h := range s.on {
		if c.hosts[h.obj.Name] != h {
			continue
		}
		c.addFlows(h, s.flows, sign)
		t := c.txnFor(h)
		var gt elemTxn[uint32]
		if t != nil {
			gt = t.groups
		}
		for i := range s.groups {
			place(&groupKind, &h.groups, gt, &s.groups[i], s.ghash[i], sign)
		}
	}
	if s.dns != nil {
		c.netDNS(s.dnsNet, s.dns, sign)
	}
	for h, ps := range s.probes {
		if c.hosts[h.obj.Name] != h {
			continue
		}
		var ht elemTxn[string]
		if t := c.txnFor(h); t != nil {
			ht = t.health
		}
		for i := range ps {
			place(&healthKind, &h.health, ht, &ps[i], program.HealthKey(&ps[i]), sign)
		}
	}
}

// compileService computes s's flows, groups, DNS record and probes from
// its network's current containers and health verdicts.
func (c *Compiler) compileService(s *svcState) {
	if !s.ok {
		return
	}
	n := c.nets[s.obj.Network]
	if n == nil || n.p == nil || len(n.present) == 0 {
		return
	}
	ctrs := make([]openapi.Container, 0, len(n.active))
	byID := make(map[string]*ctrState, len(n.active))
	for _, ct := range n.active {
		if s.sel.Matches(ct.obj.Labels) {
			ctrs = append(ctrs, ct.obj)
			byID[ct.obj.ID] = ct
		}
	}
	all, err := service.Backends(&s.obj, ctrs)
	if err != nil {
		return
	}
	usable := service.Usable(all, func(id string) bool { return c.healthy(s.obj.ID, id) })
	backends := make([]lbBackend, len(usable))
	for i, b := range usable {
		ct := byID[b.Container.ID]
		backends[i] = lbBackend{ip: ct.f.port.IP, weight: b.Weight}
		if s.local() && s.nodePorts() {
			if s.localBackends == nil {
				s.localBackends = map[*hostState][]lbBackend{}
			}
			s.localBackends[ct.host] = append(s.localBackends[ct.host], backends[i])
		}
	}
	s.flows, s.groups = serviceFlows(s, n.p, backends)
	s.flows = append(s.flows, nodePortFlows(s, n.p)...)
	for i := range s.groups {
		s.ghash = append(s.ghash, program.GroupKey(&s.groups[i]))
	}
	s.dns = &openapi.DNSRecord{Network: n.p.name, VNI: n.p.vniNum, Kind: openapi.DNSService, Name: s.obj.Name,
		IP: s.vip, Ports: slices.Clone(s.obj.Ports)}
	s.dnsNet = n
	for name := range n.present {
		s.on = append(s.on, c.hosts[name])
	}
	slices.SortFunc(s.on, func(a, b *hostState) int { return strings.Compare(a.obj.Name, b.obj.Name) })
	if hc := s.obj.HealthCheck; hc != nil {
		check := *hc
		if check.Port == 0 {
			check.Port = s.ports[0].target
		}
		s.probes = map[*hostState][]openapi.HealthProbe{}
		for _, b := range all {
			ct := byID[b.Container.ID]
			s.probes[ct.host] = append(s.probes[ct.host], openapi.HealthProbe{
				Service: s.obj.ID, ServiceName: s.obj.Name, Container: ct.obj.ID,
				Port: ct.f.port.Name, IP: ct.f.port.IP, Check: check,
			})
		}
	}
}

// lbBackend is one usable backend: its address and bucket weight.
type lbBackend struct {
	ip     string
	weight int
}

// serviceFlows are s's ServiceLB and AffinityDispatch flows and its groups,
// the same on every host where its network is present.
func serviceFlows(s *svcState, n *netParams, bs []lbBackend) ([]flowRec, []openapi.Group) {
	cookie := Owner(KindService, s.obj.ID)
	affinity := s.obj.SessionAffinity == openapi.AffinityClientIP
	var fs []flowRec
	var gs []openapi.Group
	for _, p := range s.ports {
		svcMatch := p.proto + "," + n.reg + ",nw_dst=" + s.vip + ",tp_dst=" + strconv.Itoa(p.port)
		lb := "ct_state=+new+trk," + p.proto + "," + matchFromLocal + "," + n.reg + ",nw_dst=" + s.vip + ",tp_dst=" + strconv.Itoa(p.port)
		group := "group:" + strconv.FormatUint(uint64(p.group), 10)
		if len(bs) == 0 {
			fs = append(fs, mkFlow(TableServiceLB, prioService, cookie, lb, rejectAction))
			continue
		}
		if affinity {
			for _, b := range bs {
				fs = append(fs, mkFlow(TableAffinityDispatch, prioDispatch, cookie,
					RegAffinityIP+"="+ipHex(b.ip)+","+RegAffinityPort+"="+strconv.Itoa(p.target)+","+svcMatch, bucketAction(s, p, b, true)))
			}
		}
		gs = append(gs, openapi.Group{ID: p.group, Spec: groupSpec(s, p, bs, true)})
		if affinity {
			fs = append(fs,
				learnFlow(s, n, p, cookie),
				mkFlow(TableServiceLB, prioService, cookie, lb, "set_field:0->"+RegAffinityIP+",set_field:0->"+RegAffinityPort+
					",resubmit(,"+strconv.Itoa(int(TableAffinityLookup))+"),resubmit(,"+strconv.Itoa(int(TableAffinityDispatch))+")"),
				mkFlow(TableAffinityDispatch, prioService, cookie, svcMatch, group))
		} else {
			fs = append(fs, mkFlow(TableServiceLB, prioService, cookie, lb, group))
		}
	}
	return fs, gs
}

// groupSpec is the select group of service port p over backends bs (its
// buckets continue at AffinityLearn when learn and the service has ClientIP
// affinity, else at Hairpin).
func groupSpec(s *svcState, p svcPort, bs []lbBackend, learn bool) string {
	var spec strings.Builder
	spec.WriteString("type=select,selection_method=dp_hash")
	weights, split := fineBuckets(bs)
	for i, b := range bs {
		act := bucketAction(s, p, b, learn)
		spec.WriteString(",bucket=bucket_id:" + strconv.Itoa(i) + ",weight:" + strconv.Itoa(weights[i]) + ",actions=" + act)
		if i == split {
			spec.WriteString(",bucket=bucket_id:" + strconv.Itoa(len(bs)) + ",weight:" + strconv.Itoa(weights[len(bs)]) + ",actions=" + act)
		}
	}
	return spec.String()
}

// Bucket weights for OVS's dp_hash selection. OVS maps a select group's
// buckets onto 2^k hash values, k the smallest with 2^k >= max(16,
// ceil(total weight / smallest weight)) and at most 256 values (beyond, it
// falls back to a method that does not follow weights), apportioned by
// weight. With few buckets that is 16 values, and a 10% canary gets 2/16 =
// 12.5%. fineBuckets gives OVS 256 values wherever it can: it scales the
// weights up, then splits a small piece (1/192 of the total) off the
// heaviest bucket into an extra bucket with the same action, so the
// smallest weight is 1/192 of the total; each bucket's share is then within
// about 0.2 points of its weight's. weights has one more entry than bs
// when split >= 0: the extra bucket's weight, which goes right after
// bucket split.
const (
	dpHashValues   = 256
	fineSplitShare = 192 // the extra bucket weighs total/fineSplitShare
	fineTotal      = 256 * fineSplitShare
)

func fineBuckets(bs []lbBackend) (weights []int, split int) {
	weights = make([]int, len(bs), len(bs)+1)
	total, minW, heaviest := 0, 0, 0
	for i, b := range bs {
		weights[i] = b.weight
		total += b.weight
		if i == 0 || b.weight < minW {
			minW = b.weight
		}
		if b.weight > bs[heaviest].weight {
			heaviest = i
		}
	}
	if len(bs) < 2 || minW <= 0 || (total+minW-1)/minW > dpHashValues/2 {
		// One bucket needs no precision; a smallest share under 1/128
		// already gets 256 values.
		return weights, -1
	}
	if k := fineTotal / total; k > 1 {
		for i := range weights {
			weights[i] *= k
		}
		total *= k
	}
	piece := total / fineSplitShare
	if piece < 1 || weights[heaviest]-piece < 1 {
		return weights, -1
	}
	weights[heaviest] -= piece
	return append(weights, piece), heaviest
}

// rejectAction hands a new connection no backend can serve to the agent,
// which answers TCP RST or ICMP port unreachable (meter RejectMeter).
var rejectAction = "controller(userdata=" + openapi.RejectUserdata + ",meter_id=" + strconv.Itoa(openapi.RejectMeter) + ")"

// tpField is the NXM field of a protocol's destination port.
var tpField = map[string]string{"tcp": "NXM_OF_TCP_DST[]", "udp": "NXM_OF_UDP_DST[]", "sctp": "OXM_OF_SCTP_DST[]"}

var ipProto = map[string]string{"tcp": "6", "udp": "17", "sctp": "132"}

// bucketAction sends a new connection to backend b: it commits the
// connection in the network's zone with DNAT to b and continues at
// AffinityLearn (ClientIP affinity) or Hairpin.
func bucketAction(s *svcState, p svcPort, b lbBackend, learn bool) string {
	next := TableHairpin
	if learn && s.obj.SessionAffinity == openapi.AffinityClientIP {
		next = TableAffinityLearn
	}
	return "ct(commit,table=" + strconv.Itoa(int(next)) + "," + ctZone +
		",nat(dst=" + b.ip + ":" + strconv.Itoa(p.target) + "))"
}

// learnFlow is a ClientIP service port's AffinityLearn flow: a new
// connection to it, just DNATed by a bucket (+dnat; the original tuple is
// the VIP's), teaches AffinityLookup "this network, client, VIP and port ->
// the backend it got" (reg3, reg4), for the affinity timeout.
func learnFlow(s *svcState, n *netParams, p svcPort, cookie uint64) flowRec {
	timeout := cmp.Or(s.obj.SessionAffinityTimeoutSeconds, DefaultAffinityTimeout)
	port := strconv.Itoa(p.port)
	match := "ct_state=+new+dnat+trk," + p.proto + "," + matchFromLocal + "," + n.reg +
		",ct_nw_dst=" + s.vip + ",ct_nw_proto=" + ipProto[p.proto] + ",ct_tp_dst=" + port
	learn := "learn(table=" + strconv.Itoa(int(TableAffinityLookup)) + ",idle_timeout=" + strconv.Itoa(timeout) +
		",priority=" + strconv.Itoa(prioLearned) + ",cookie=0x" + strconv.FormatUint(openapi.LearnedCookie, 16) +
		",delete_learned,eth_type=0x800,nw_proto=" + ipProto[p.proto] + ",NXM_NX_REG0[],NXM_OF_IP_SRC[],ip_dst=" + s.vip +
		"," + p.proto + "_dst=" + port + ",load:NXM_OF_IP_DST[]->NXM_NX_REG3[],load:" + tpField[p.proto] + "->NXM_NX_REG4[0..15])"
	return mkFlow(TableAffinityLearn, prioLearn, cookie, match, learn+","+gotoTable(TableHairpin))
}

// ipHex is an IPv4 address as a 32-bit hexadecimal number.
func ipHex(ip string) string {
	a := netip.MustParseAddr(ip).As4()
	return "0x" + strconv.FormatUint(uint64(binary.BigEndian.Uint32(a[:])), 16)
}
