package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/policy"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/service"
	"github.com/switchyard/switchyard/openapi"
)

// Env is what a trace reads: the intent at one revision and the hosts'
// compiled programs (the compiler's, at that revision).
type Env struct {
	Snap    *compile.Snapshot
	Program func(host string) (*openapi.Program, error)
}

// intent is the intent layer under construction, with what the compiled
// layer needs from it.
type intent struct {
	x        *index
	env      Env
	req      openapi.TraceRequest
	src, dst end
	out      openapi.TraceIntent
	// target is the container the connection ends at (a service's chosen
	// backend, a published port's container), nil when none.
	target *openapi.Container
	// tport is the port the target sees.
	tport int
	// via is the host whose kernel a published or node port is reached on.
	via *openapi.Host
	// viaIP and viaPort are where that host's kernel DNATs to.
	viaIP   netip.Addr
	viaPort int
	// prefer is the backend "ip:port" the compiled layer follows.
	prefer   string
	nodePort *openapi.Service
	noPath   string // why there is no path, if none
}

func (in *intent) program(host string) (*openapi.Program, error) {
	p, err := in.env.Program(host)
	if err != nil {
		return nil, fmt.Errorf("program of host %s: %w", host, err)
	}
	return p, nil
}

// buildIntent resolves the request and computes the intent layer.
func buildIntent(env Env, req openapi.TraceRequest) (*intent, error) {
	in := &intent{x: newIndex(env.Snap), env: env, req: req}
	var err error
	if in.src, in.dst, err = in.x.resolve(&in.req); err != nil {
		return nil, err
	}
	in.out = openapi.TraceIntent{Source: in.src.api(0), Destination: in.dst.api(in.req.Port), NAT: []openapi.TraceNAT{}, Hosts: []string{}}
	in.tport = in.req.Port
	switch in.dst.kind {
	case openapi.TraceEndContainer:
		in.target = in.dst.ctr
	case openapi.TraceEndService:
		in.throughService(in.dst.svc, in.req.Port, nil)
	case openapi.TraceEndPublished:
		if err := in.published(); err != nil {
			return nil, err
		}
	}
	in.checkPath()
	in.policies()
	in.hosts()
	in.verdict()
	return in, nil
}

// published finds the published or node port the destination names.
func (in *intent) published() error {
	h := in.dst.host
	p, err := in.program(h.Name)
	if err != nil {
		return err
	}
	var rule *openapi.NATRule
	if p.Gateway != nil {
		for i := range p.Gateway.NAT {
			r := &p.Gateway.NAT[i]
			proto := r.Protocol
			if proto == "" {
				proto = "TCP"
			}
			if (r.Kind == openapi.NATPublish || r.Kind == openapi.NATNodePort) && r.HostPort == in.req.Port &&
				proto == in.req.Protocol && (r.HostIP == "" || r.HostIP == h.Address) {
				rule = r
				break
			}
		}
	}
	if rule == nil {
		return problem.Unprocessable("port", "host %s publishes nothing on %s port %d", h.Name, in.req.Protocol, in.req.Port)
	}
	in.via, in.viaIP, in.viaPort = h, mustAddr(rule.ToIP), rule.ToPort
	in.out.NAT = append(in.out.NAT, openapi.TraceNAT{Kind: "dnat", Host: h.Name,
		From: fmt.Sprintf("%s:%d", h.Address, in.req.Port), To: fmt.Sprintf("%s:%d", rule.ToIP, rule.ToPort),
		Why: rule.Kind + " " + rule.Owner + " (the host's nftables)"})
	kind, id, _ := strings.Cut(rule.Owner, "/")
	switch kind {
	case "container":
		for i := range in.env.Snap.Containers {
			if in.env.Snap.Containers[i].ID == id {
				in.target = &in.env.Snap.Containers[i]
			}
		}
		in.tport = rule.ToPort
	case "service":
		for i := range in.env.Snap.Services {
			if sv := &in.env.Snap.Services[i]; sv.ID == id {
				in.nodePort = sv
				in.throughService(sv, rule.ToPort, h)
			}
		}
	}
	return nil
}

// throughService fills the service part: the port the packet is for, the
// backend candidates in bucket order, and the one the trace follows (the
// first usable; for a Local node port, the first usable on host local).
func (in *intent) throughService(sv *openapi.Service, port int, local *openapi.Host) {
	ts := &openapi.TraceService{Name: sv.Name, ID: sv.ID, Network: sv.Network, VIP: sv.VIP, Port: port, Backends: []openapi.TraceBackend{}}
	in.out.Service = ts
	var sp *openapi.ServicePort
	for i := range sv.Ports {
		proto := sv.Ports[i].Protocol
		if proto == "" {
			proto = "TCP"
		}
		if sv.Ports[i].Port == port && proto == in.req.Protocol {
			sp = &sv.Ports[i]
		}
	}
	if sp == nil {
		in.noPath = fmt.Sprintf("service %s has no %s port %d", sv.Name, in.req.Protocol, port)
		return
	}
	ts.TargetPort = sp.TargetPort
	if ts.TargetPort == 0 {
		ts.TargetPort = sp.Port
	}
	in.tport = ts.TargetPort
	bs, err := service.Backends(sv, in.env.Snap.Containers)
	if err != nil {
		in.noPath = fmt.Sprintf("service %s: %v", sv.Name, err)
		return
	}
	unhealthy := map[string]bool{}
	for _, h := range in.env.Snap.EndpointHealth {
		if h.Service == sv.ID && !h.Healthy {
			unhealthy[h.Container] = true
		}
	}
	healthy := func(id string) bool { return !unhealthy[id] }
	usable := map[string]bool{}
	for _, b := range service.Usable(bs, healthy) {
		usable[b.Container.ID] = true
	}
	localOnly := local != nil && sv.ExternalTrafficPolicy == openapi.TrafficLocal
	for _, b := range bs {
		ok := usable[b.Container.ID] && (!localOnly || b.Container.Host == local.Name)
		ts.Backends = append(ts.Backends, openapi.TraceBackend{Container: b.Container.Name, Host: b.Container.Host, IP: b.Container.IP,
			Port: ts.TargetPort, Weight: b.Weight, Usable: ok, Healthy: healthy(b.Container.ID)})
		if ok && in.target == nil {
			in.target = b.Container
		}
	}
	if in.target == nil {
		in.noPath = fmt.Sprintf("service %s has no usable backend for port %d: the switch refuses (TCP reset / ICMP unreachable)", sv.Name, port)
		return
	}
	ts.Chosen = in.target.Name
	in.prefer = fmt.Sprintf("%s:%d", in.target.IP, ts.TargetPort)
	where := in.srcHost()
	if local != nil {
		where = local.Name
	}
	in.out.NAT = append(in.out.NAT, openapi.TraceNAT{Kind: "dnat", Host: where, From: fmt.Sprintf("%s:%d", sv.VIP, port),
		To: in.prefer, Why: "service " + sv.Name + " load balancing (select group in ServiceLB)"})
	if local != nil && sv.ExternalTrafficPolicy != openapi.TrafficLocal && in.target.Host != local.Name {
		in.out.NAT = append(in.out.NAT, openapi.TraceNAT{Kind: "snat", Host: local.Name, From: in.src.ip.String(), To: local.Address,
			Why: "Cluster node port to a backend on another host (zone GatewaySNATZone)"})
	}
}

func (in *intent) srcHost() string {
	if in.src.ctr != nil {
		return in.src.ctr.Host
	}
	return ""
}

// checkPath says when intent has no path at all.
func (in *intent) checkPath() {
	if in.noPath != "" {
		return
	}
	s, t := in.src.ctr, in.target
	switch {
	case in.src.kind == openapi.TraceEndOutside && in.via == nil:
		in.noPath = "from outside, containers are reached only through published ports and node ports (destination.host)"
	case s != nil && t != nil && in.via == nil && s.Network != t.Network:
		in.noPath = fmt.Sprintf("%s (network %s) and %s (network %s) are on different networks, which do not route to each other: use a published or node port",
			s.Name, s.Network, t.Name, t.Network)
	case s != nil && (in.dst.kind == openapi.TraceEndOutside || in.via != nil):
		if n := in.x.networks[s.Network]; n != nil && !n.EgressEnabled() {
			in.noPath = fmt.Sprintf("network %s has egress off (egress.snat false): new outbound connections are dropped", s.Network)
		}
	}
}

// hosts lists the hosts intent expects on the path.
func (in *intent) hosts() {
	add := func(h string) {
		if h != "" && (len(in.out.Hosts) == 0 || in.out.Hosts[len(in.out.Hosts)-1] != h) {
			in.out.Hosts = append(in.out.Hosts, h)
		}
	}
	add(in.srcHost())
	outbound := in.src.ctr != nil && (in.dst.kind == openapi.TraceEndOutside || in.via != nil) && in.noPath == ""
	holder := ""
	if outbound {
		holder = in.egressHolder(in.x.networks[in.src.ctr.Network])
		add(holder)
	}
	if in.via != nil {
		add(in.via.Name)
	}
	if in.target != nil && in.noPath == "" {
		add(in.target.Host)
	}
	switch {
	case in.noPath != "":
		in.out.Path = "none"
	case in.src.kind == openapi.TraceEndOutside:
		in.out.Path = "inbound"
	case in.dst.kind == openapi.TraceEndOutside || in.via != nil:
		in.out.Path = "gateway"
	case len(in.out.Hosts) == 1:
		in.out.Path = "same-host"
	default:
		in.out.Path = "tunnel"
	}
	if s := in.src.ctr; outbound {
		host, to := s.Host, in.x.hosts[s.Host].Address
		if holder != "" {
			host, to = holder, in.x.networks[s.Network].EgressIP
		}
		in.out.NAT = append(in.out.NAT, openapi.TraceNAT{Kind: "snat", Host: host, From: s.IP, To: to,
			Why: "egress of network " + s.Network + " (masquerade in the host's nftables)"})
	}
}

// egressHolder is the host that holds network n's egress IP (its program
// says so), or "" when n has none.
func (in *intent) egressHolder(n *openapi.Network) string {
	if n == nil || n.EgressIP == "" {
		return ""
	}
	for _, h := range in.env.Snap.Hosts {
		if p, err := in.program(h.Name); err == nil && p.Gateway != nil && slices.Contains(p.Gateway.EgressIPs, n.EgressIP) {
			return h.Name
		}
	}
	return ""
}

// policies judges egress at the source and ingress at the target.
func (in *intent) policies() {
	in.out.Egress = openapi.TracePolicySide{Policies: []openapi.TraceConsulted{}, Decision: external()}
	in.out.Ingress = in.out.Egress
	in.out.Ingress.Policies = []openapi.TraceConsulted{}
	proto, port := in.req.Protocol, in.tport
	if proto == "ICMP" {
		port = 0
	}
	// Egress: the source sees the packet after any DNAT in br-int (a
	// service), before the kernel's (a published port).
	if s := in.src.ctr; s != nil {
		other := policy.Endpoint{IP: in.dst.ip}
		eport := in.req.Port
		if in.target != nil && in.via == nil {
			other, eport = endpoint(in.target), port
		}
		if proto == "ICMP" {
			eport = 0
		}
		in.out.Egress = in.side(policy.Egress, s, other, proto, eport)
	}
	if t := in.target; t != nil && in.noPath == "" {
		other := policy.Endpoint{IP: in.src.ip}
		if in.src.ctr != nil && in.via == nil {
			other = endpoint(in.src.ctr)
		}
		if in.src.ctr != nil && in.via != nil { // masqueraded by the source's host
			other = policy.Endpoint{IP: mustAddr(in.x.hosts[in.src.ctr.Host].Address)}
		}
		if in.nodePort != nil && in.nodePort.ExternalTrafficPolicy != openapi.TrafficLocal && t.Host != in.via.Name {
			other = policy.Endpoint{IP: mustAddr(in.via.Address)}
		}
		in.out.Ingress = in.side(policy.Ingress, t, other, proto, port)
	}
}

func endpoint(c *openapi.Container) policy.Endpoint {
	return policy.Endpoint{Name: c.Name, IP: mustAddr(c.IP), Labels: c.Labels}
}

func external() openapi.ReachabilityDecision {
	return openapi.ReachabilityDecision{Allowed: true, Reason: policy.ReasonExternal}
}

// side evaluates direction dir at container c.
func (in *intent) side(dir string, c *openapi.Container, other policy.Endpoint, proto string, port int) openapi.TracePolicySide {
	out := openapi.TracePolicySide{Container: c.Name, Policies: []openapi.TraceConsulted{}}
	if other.Name != "" && !sameNetwork(in.env.Snap, other.Name, c.Network) {
		other = policy.Endpoint{IP: other.IP}
	}
	// One verdict needs only its two ends: which policies select c, and
	// whether their peers match the other end (its labels or address), so
	// the evaluator gets those two, not the whole network.
	ctrs := []policy.Container{{Name: c.Name, IP: mustAddr(c.IP), Labels: c.Labels}}
	if other.Name != "" && other.Name != c.Name {
		ctrs = append(ctrs, policy.Container{Name: other.Name, IP: other.IP, Labels: other.Labels})
	}
	var pols []openapi.Policy
	for _, p := range in.env.Snap.Policies {
		if p.Network == c.Network {
			pols = append(pols, p)
		}
	}
	ev, err := policy.New(ctrs, pols)
	if err != nil {
		out.Decision = openapi.ReachabilityDecision{Reason: policy.ReasonIsolated}
		return out
	}
	me := endpoint(c)
	var d policy.Decision
	if dir == policy.Egress {
		d = ev.Verdict(me, other, proto, port).Egress
	} else {
		d = ev.Verdict(other, me, proto, port).Ingress
	}
	out.Decision = openapi.ReachabilityDecision{Allowed: d.Allowed, Reason: d.Reason, Policy: d.Policy, PolicyID: d.PolicyID,
		Rule: d.RuleField(), Action: d.Action}
	if d.Reason == policy.ReasonSelf { // never judged
		return out
	}
	for _, k := range ev.Consulted(dir, me, other, proto, port) {
		tc := openapi.TraceConsulted{Policy: k.Policy, PolicyID: k.PolicyID, Priority: k.Priority, Action: k.Action}
		if k.Rule >= 0 {
			tc.Rule = fmt.Sprintf("%s[%d]", dir, k.Rule)
			tc.Deciding = d.Reason == policy.ReasonRule && d.PolicyID == k.PolicyID && d.Rule == k.Rule
		}
		out.Policies = append(out.Policies, tc)
	}
	return out
}

func sameNetwork(s *compile.Snapshot, name, network string) bool {
	for _, c := range s.Containers {
		if c.Name == name && c.Network == network {
			return true
		}
	}
	return false
}

// verdict sums the intent layer up.
func (in *intent) verdict() {
	o := &in.out
	e, i := o.Egress.Decision, o.Ingress.Decision
	switch {
	case in.noPath != "":
		o.Allowed, o.Verdict = false, in.noPath
	case !e.Allowed:
		o.Allowed, o.Verdict = false, "denied at the source (egress): "+explain(e)
	case !i.Allowed:
		o.Allowed, o.Verdict = false, "denied at the destination (ingress): "+explain(i)
	default:
		o.Allowed = true
		o.Verdict = "allowed: egress " + explain(e) + "; ingress " + explain(i)
	}
}

// explain says what decided one direction.
func explain(d openapi.ReachabilityDecision) string {
	switch d.Reason {
	case policy.ReasonRule:
		return fmt.Sprintf("%s by policy %s %s", d.Action, d.Policy, d.Rule)
	case policy.ReasonIsolated:
		return fmt.Sprintf("isolated by policy %s (no rule matches)", d.Policy)
	case policy.ReasonBaseline:
		return "baseline (no policy isolates it)"
	case policy.ReasonSelf:
		return "self"
	case policy.ReasonExternal:
		return "not judged (no container of the network)"
	}
	return d.Reason
}
