package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Builders for test snapshots.

func host(name, addr, tunnel string) openapi.Host {
	return openapi.Host{Meta: openapi.Meta{ID: "host-" + name}, Name: name, Address: addr, TunnelType: tunnel}
}

// network i is 10.<i>.0.0/16 with gateway 10.<i>.0.1 and VNI 100+i.
func network(name string, i int) openapi.Network {
	return openapi.Network{
		Meta: openapi.Meta{ID: "net-" + name}, Name: name, CIDR: fmt.Sprintf("10.%d.0.0/16", i),
		Gateway: fmt.Sprintf("10.%d.0.1", i), VNI: int64(100 + i), MTU: 1400,
	}
}

// container k of network i gets IP 10.<i>.<k/256>.<k%256+2> and a MAC made
// of that IP, like the store's IPAM; its ID is a UUID made of (i, k).
func container(name, net string, i, k int, hostName string) openapi.Container {
	off := k + 2
	ip := fmt.Sprintf("10.%d.%d.%d", i, off/256, off%256)
	return openapi.Container{
		Meta:    openapi.Meta{ID: fakeUUID(fmt.Sprint(i, "/", k))},
		Name:    name,
		Network: net,
		Host:    hostName,
		IP:      ip,
		MAC:     fmt.Sprintf("0a:58:0a:%02x:%02x:%02x", i, off/256, off%256),
		Labels:  map[string]string{"app": name},
	}
}

// fakeUUID is a version-4-looking UUID derived from seed.
func fakeUUID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// bigSnapshot has nHosts hosts, nNets networks and nCtrs containers spread
// over them pseudo-randomly (fixed seed).
func bigSnapshot(nHosts, nNets, nCtrs int) *Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	s := &Snapshot{Revision: 1}
	for h := 0; h < nHosts; h++ {
		s.Hosts = append(s.Hosts, host(fmt.Sprintf("host%03d", h), fmt.Sprintf("192.168.%d.%d", h/250, h%250+1), openapi.TunnelGeneve))
	}
	for n := 0; n < nNets; n++ {
		s.Networks = append(s.Networks, network(fmt.Sprintf("net%03d", n), n+1))
	}
	perNet := make([]int, nNets)
	for k := 0; k < nCtrs; k++ {
		n := r.IntN(nNets)
		h := r.IntN(nHosts)
		s.Containers = append(s.Containers, container(fmt.Sprintf("c%05d", k), s.Networks[n].Name, n+1, perNet[n], s.Hosts[h].Name))
		perNet[n]++
	}
	return s
}

// model is a test-side intent store: the snapshot as maps, changed by the
// same Changes the compiler gets.
type model struct {
	rev   int64
	hosts map[string]openapi.Host
	nets  map[string]openapi.Network
	ctrs  map[string]openapi.Container
	svcs  map[string]openapi.Service
	pols  map[string]openapi.Policy
	eh    map[string]openapi.EndpointHealth
	dns   string // DNSDomain
}

func newModel(s *Snapshot) *model {
	m := &model{rev: s.Revision, hosts: map[string]openapi.Host{}, nets: map[string]openapi.Network{},
		ctrs: map[string]openapi.Container{}, svcs: map[string]openapi.Service{}, pols: map[string]openapi.Policy{},
		eh: map[string]openapi.EndpointHealth{}, dns: s.DNSDomain}
	for _, h := range s.Hosts {
		m.hosts[h.Name] = h
	}
	for _, n := range s.Networks {
		m.nets[n.Name] = n
	}
	for _, c := range s.Containers {
		m.ctrs[c.ID] = c
	}
	for _, p := range s.Policies {
		m.pols[p.ID] = p
	}
	for _, sv := range s.Services {
		m.svcs[sv.ID] = sv
	}
	for _, e := range s.EndpointHealth {
		m.eh[e.Service+"/"+e.Container] = e
	}
	return m
}

func (m *model) apply(ch Change) {
	switch ch.kind {
	case KindHost:
		if ch.delete {
			delete(m.hosts, ch.key)
		} else {
			m.hosts[ch.key] = *ch.host
		}
	case KindNetwork:
		if ch.delete {
			delete(m.nets, ch.key)
		} else {
			m.nets[ch.key] = *ch.network
		}
	case KindContainer:
		if ch.delete {
			delete(m.ctrs, ch.key)
		} else {
			m.ctrs[ch.key] = *ch.container
		}
	case kindService:
		if ch.delete {
			delete(m.svcs, ch.key)
		} else {
			m.svcs[ch.key] = *ch.service
		}
	case kindPolicy:
		if ch.delete {
			delete(m.pols, ch.key)
		} else {
			m.pols[ch.key] = *ch.policy
		}
	case kindHealth:
		if ch.delete {
			delete(m.eh, ch.key)
		} else {
			m.eh[ch.key] = *ch.endpoint
		}
	}
}

// snapshot returns the model as a snapshot, lists in a random order when r
// is set (the compiler must not care).
func (m *model) snapshot(r *rand.Rand) *Snapshot {
	s := &Snapshot{Revision: m.rev, DNSDomain: m.dns}
	for _, k := range sortedKeys(m.hosts) {
		s.Hosts = append(s.Hosts, m.hosts[k])
	}
	for _, k := range sortedKeys(m.nets) {
		s.Networks = append(s.Networks, m.nets[k])
	}
	for _, k := range sortedKeys(m.ctrs) {
		s.Containers = append(s.Containers, m.ctrs[k])
	}
	for _, k := range sortedKeys(m.svcs) {
		s.Services = append(s.Services, m.svcs[k])
	}
	for _, k := range sortedKeys(m.pols) {
		s.Policies = append(s.Policies, m.pols[k])
	}
	for _, k := range sortedKeys(m.eh) {
		s.EndpointHealth = append(s.EndpointHealth, m.eh[k])
	}
	if r != nil {
		r.Shuffle(len(s.Services), func(i, j int) { s.Services[i], s.Services[j] = s.Services[j], s.Services[i] })
		r.Shuffle(len(s.EndpointHealth), func(i, j int) {
			s.EndpointHealth[i], s.EndpointHealth[j] = s.EndpointHealth[j], s.EndpointHealth[i]
		})
		r.Shuffle(len(s.Policies), func(i, j int) { s.Policies[i], s.Policies[j] = s.Policies[j], s.Policies[i] })
		r.Shuffle(len(s.Hosts), func(i, j int) { s.Hosts[i], s.Hosts[j] = s.Hosts[j], s.Hosts[i] })
		r.Shuffle(len(s.Networks), func(i, j int) { s.Networks[i], s.Networks[j] = s.Networks[j], s.Networks[i] })
		r.Shuffle(len(s.Containers), func(i, j int) { s.Containers[i], s.Containers[j] = s.Containers[j], s.Containers[i] })
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// randomWorld is the pool random snapshots and changes draw from: small, so
// that collisions (moves, shared networks, removals) are frequent.
type randomWorld struct {
	r    *rand.Rand
	next int // next container number
}

var worldHosts = []string{"h1", "h2", "h3", "h4", "h5"}
var worldNets = []string{"blue", "green", "red"}

func (w *randomWorld) host() openapi.Host {
	i := w.r.IntN(len(worldHosts))
	tt := openapi.TunnelGeneve
	if w.r.IntN(2) == 0 {
		tt = openapi.TunnelVXLAN
	}
	h := host(worldHosts[i], fmt.Sprintf("192.168.1.%d", i+1+10*w.r.IntN(2)), tt)
	h.Labels = map[string]string{"rack": fmt.Sprint(w.r.IntN(3))}
	if w.r.IntN(4) == 0 {
		h.Status = openapi.HostNotReady // egress IPs move away
	}
	return h
}

func (w *randomWorld) network() openapi.Network {
	i := w.r.IntN(len(worldNets))
	n := network(worldNets[i], i+1)
	n.MTU = 1400 + 50*w.r.IntN(2)
	switch w.r.IntN(8) {
	case 0, 1:
		n.VNI += 10 // renumbered
	case 2:
		n.Gateway = "10.99.0.1" // outside its CIDR: the network is ignored
	}
	switch w.r.IntN(4) {
	case 0:
		n.EgressIP = fmt.Sprintf("192.168.1.%d", 200+i)
	case 1:
		n.Egress = &openapi.NetworkEgress{SNAT: false}
	}
	return n
}

// container returns a new container, or a variant of an existing one (moved,
// renamed, readdressed, relabelled) when existing is given.
func (w *randomWorld) container(existing *openapi.Container) openapi.Container {
	if existing != nil {
		c := *existing
		switch w.r.IntN(5) {
		case 0:
			c.Host = worldHosts[w.r.IntN(len(worldHosts))]
		case 1:
			c.Name += "x"
		case 3:
			i := slices.Index(worldNets, c.Network)
			fresh := container(c.Name, c.Network, i+1, w.next, c.Host)
			w.next++
			c.IP, c.MAC = fresh.IP, fresh.MAC
		case 2:
			c.Labels = w.labels()
			if w.r.IntN(2) == 0 {
				c.Publish = w.publish()
			}
		default:
			c.Netns = "/run/netns/x"
		}
		w.block(&c)
		return c
	}
	i := w.r.IntN(len(worldNets))
	k := w.next
	w.next++
	hostName := worldHosts[w.r.IntN(len(worldHosts))]
	if w.r.IntN(10) == 0 {
		hostName = "ghost" // not in any snapshot
	}
	c := container(fmt.Sprintf("c%d", k), worldNets[i], i+1, k, hostName)
	c.Labels = w.labels()
	if w.r.IntN(15) == 0 {
		c.IP = "192.0.2.1" // outside the network: ignored
	}
	if w.r.IntN(4) == 0 {
		c.Publish = w.publish()
	}
	w.block(&c)
	return c
}

// block sets c's IPAM block the way the store does, with a fixed owner per
// /27 block (so that containers share blocks and moves leave them): the
// block when c's host owns it, else none (borrowed); sometimes none anyway,
// sometimes one the compiler must ignore (not holding c's address).
func (w *randomWorld) block(c *openapi.Container) {
	c.IPBlock = ""
	a, err := netip.ParseAddr(c.IP)
	if err != nil || !a.Is4() {
		return
	}
	b := netip.PrefixFrom(a, 27).Masked()
	x := b.Addr().As4()
	if worldHosts[(int(x[2])*8+int(x[3])/32+int(x[1]))%len(worldHosts)] != c.Host {
		return
	}
	switch w.r.IntN(8) {
	case 0:
	case 1:
		c.IPBlock = "10.200.0.0/27"
	default:
		c.IPBlock = b.String()
	}
}

// publish draws a container's published ports (maybe none).
func (w *randomWorld) publish() []openapi.PublishedPort {
	var out []openapi.PublishedPort
	for i := w.r.IntN(3); i > 0; i-- {
		out = append(out, openapi.PublishedPort{HostPort: 8080 + w.r.IntN(3), Port: 80, Protocol: []string{"", "TCP", "UDP"}[w.r.IntN(3)]})
	}
	return out
}

func (w *randomWorld) snapshot() *Snapshot {
	s := &Snapshot{Revision: 1}
	m := newModel(s)
	for i := w.r.IntN(len(worldHosts) + 1); i > 0; i-- {
		h := w.host()
		m.hosts[h.Name] = h
	}
	for i := w.r.IntN(len(worldNets) + 1); i > 0; i-- {
		n := w.network()
		m.nets[n.Name] = n
	}
	for i := w.r.IntN(25); i > 0; i-- {
		c := w.container(nil)
		m.ctrs[c.ID] = c
	}
	for i := w.r.IntN(5); i > 0; i-- {
		p := w.policy()
		m.pols[p.ID] = p
	}
	for i := w.r.IntN(4); i > 0; i-- {
		sv := w.service()
		m.svcs[sv.ID] = sv
	}
	for i := w.r.IntN(4); i > 0 && len(m.ctrs) > 0; i-- {
		e := w.health(m)
		m.eh[e.Service+"/"+e.Container] = e
	}
	return m.snapshot(w.r)
}

// change draws one random change against the model's current content.
func (w *randomWorld) change(m *model) Change {
	pick := func(keys []string) string { return keys[w.r.IntN(len(keys))] }
	switch op := w.r.IntN(31); {
	case op < 6:
		return PutContainer(w.container(nil))
	case op < 10 && len(m.ctrs) > 0:
		c := m.ctrs[pick(sortedKeys(m.ctrs))]
		return PutContainer(w.container(&c))
	case op < 13 && len(m.ctrs) > 0:
		return DeleteContainer(pick(sortedKeys(m.ctrs)))
	case op < 15:
		return PutHost(w.host())
	case op < 16:
		return DeleteHost(worldHosts[w.r.IntN(len(worldHosts))])
	case op < 18:
		return PutNetwork(w.network())
	case op < 19:
		return DeleteNetwork(worldNets[w.r.IntN(len(worldNets))])
	case op < 22:
		return PutPolicy(w.policy())
	case op < 23 && len(m.pols) > 0:
		return DeletePolicy(pick(sortedKeys(m.pols)))
	case op < 26:
		return PutService(w.service())
	case op < 27 && len(m.svcs) > 0:
		return DeleteService(pick(sortedKeys(m.svcs)))
	case op < 29 && len(m.ctrs) > 0:
		return PutEndpointHealth(w.health(m))
	case op < 30 && len(m.eh) > 0:
		svc, ctr, _ := strings.Cut(pick(sortedKeys(m.eh)), "/")
		return DeleteEndpointHealth(svc, ctr)
	default:
		return PutContainer(w.container(nil))
	}
}

// service draws one of a few services: any network, a selector on app or
// tier, maybe weights, affinity and a health check; sometimes one that
// cannot be compiled (no group ID, bad VIP).
func (w *randomWorld) service() openapi.Service {
	i := w.r.IntN(4)
	net := worldNets[w.r.IntN(len(worldNets))]
	s := openapi.Service{
		Meta: openapi.Meta{ID: fmt.Sprint("svc", i)}, Name: fmt.Sprint("s", i), Network: net,
		VIP: fmt.Sprintf("10.%d.255.%d", slices.Index(worldNets, net)+1, 10+i), GroupID: uint32(i + 1),
		Selector:        []string{"app in (a, b)", "ns=x", "app=a", "app"}[w.r.IntN(4)],
		Ports:           []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}},
		SessionAffinity: openapi.AffinityNone,
	}
	if w.r.IntN(2) == 0 {
		s.Ports = append(s.Ports, openapi.ServicePort{Name: "dns", Port: 53, Protocol: "UDP"})
	}
	if w.r.IntN(3) == 0 {
		s.Weights = []openapi.ServiceWeight{{Selector: "ns=x", Weight: 90}, {Selector: "ns=y", Weight: 10}}
	}
	if w.r.IntN(3) == 0 {
		s.SessionAffinity, s.SessionAffinityTimeoutSeconds = openapi.AffinityClientIP, 60*w.r.IntN(3)
	}
	if w.r.IntN(2) == 0 {
		s.HealthCheck = &openapi.HealthCheck{Protocol: "TCP", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}
	}
	if w.r.IntN(2) == 0 {
		s.Ports[0].NodePort = 30080 + i
		if w.r.IntN(2) == 0 {
			s.ExternalTrafficPolicy = openapi.TrafficLocal
		}
	}
	switch w.r.IntN(10) {
	case 0:
		s.GroupID = 0
	case 1:
		s.VIP = "nope"
	}
	return s
}

// health draws a verdict on a random container for a random service.
func (w *randomWorld) health(m *model) openapi.EndpointHealth {
	ids := sortedKeys(m.ctrs)
	return openapi.EndpointHealth{Service: fmt.Sprint("svc", w.r.IntN(4)), Container: ids[w.r.IntN(len(ids))], Healthy: w.r.IntN(3) == 0}
}

// mustProgram returns host's program, failing t on an inconsistency.
func mustProgram(t *testing.T, c *Compiler, host string) *openapi.Program {
	t.Helper()
	p, err := c.Program(host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sameProgram fails t unless a and b are equal except for Revision.
func sameProgram(t *testing.T, what string, a, b *openapi.Program) {
	t.Helper()
	x, y := *a, *b
	x.Revision, y.Revision = 0, 0
	if reflect.DeepEqual(&x, &y) {
		return
	}
	d := program.Diff(a, b)
	t.Fatalf("%s: programs of %s differ (digests %s vs %s):\n%s", what, a.Host, a.Digest, b.Digest, renderDelta(d))
}

// renderDelta prints a delta readably: -/+ lines for flows and ports.
func renderDelta(d *openapi.ProgramDelta) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# delta %s -> %s\n", d.FromDigest, d.Digest)
	if d.Gateway != nil || d.RemoveGateway {
		g, _ := json.Marshal(d.Gateway)
		fmt.Fprintf(&b, "gateway (remove %v): %s\n", d.RemoveGateway, g)
	}
	for _, n := range d.RemoveTunnels {
		fmt.Fprintf(&b, "-tunnel %s\n", n)
	}
	for _, tp := range d.AddTunnels {
		fmt.Fprintf(&b, "+%s\n", tunnelLine(&tp))
	}
	for _, n := range d.RemoveContainers {
		fmt.Fprintf(&b, "-container %s\n", n)
	}
	for _, cp := range d.AddContainers {
		fmt.Fprintf(&b, "+%s\n", containerLine(&cp))
	}
	for _, f := range d.RemoveFlows {
		fmt.Fprintf(&b, "-%s\n", program.AppendFlow(nil, &f))
	}
	for _, f := range d.AddFlows {
		fmt.Fprintf(&b, "+%s\n", program.AppendFlow(nil, &f))
	}
	for _, id := range d.RemoveGroups {
		fmt.Fprintf(&b, "-group %d\n", id)
	}
	for _, g := range d.AddGroups {
		fmt.Fprintf(&b, "+group_id=%d,%s\n", g.ID, g.Spec)
	}
	for _, k := range d.RemoveDNS {
		fmt.Fprintf(&b, "-dns %s\n", k)
	}
	for _, r := range d.AddDNS {
		fmt.Fprintf(&b, "+%s\n", dnsLine(&r))
	}
	for _, k := range d.RemoveHealthChecks {
		fmt.Fprintf(&b, "-probe %s\n", k)
	}
	for _, h := range d.AddHealthChecks {
		fmt.Fprintf(&b, "+%s\n", probeLine(&h))
	}
	return b.String()
}

func tunnelLine(tp *openapi.TunnelPort) string {
	return fmt.Sprintf("tunnel %s type=%s peer=%s remote_ip=%s", tp.Name, tp.Type, tp.PeerHost, tp.RemoteIP)
}

func containerLine(cp *openapi.ContainerPort) string {
	return fmt.Sprintf("container %s name=%s id=%s network=%s ip=%s/%d mac=%s gw=%s mtu=%d netns=%q sandbox=%q dns=%q search=%q",
		cp.Name, cp.Container, cp.ID, cp.Network, cp.IP, cp.PrefixLen, cp.MAC, cp.Gateway, cp.MTU, cp.Netns, cp.Sandbox, cp.DNSDomain, cp.DNSSearch)
}

func dnsLine(r *openapi.DNSRecord) string {
	return fmt.Sprintf("dns %s vni=%d ip=%s ports=%v", r.Key(), r.VNI, r.IP, r.Ports)
}

func probeLine(h *openapi.HealthProbe) string {
	return fmt.Sprintf("probe %s service=%s port=%s ip=%s check=%+v", h.Key(), h.ServiceName, h.Port, h.IP, h.Check)
}

// renderPrograms prints every program: ports as comments, then Render.
func renderPrograms(progs map[string]*openapi.Program) string {
	var b strings.Builder
	for _, name := range sortedKeys(progs) {
		p := progs[name]
		fmt.Fprintf(&b, "## host %s revision=%d digest=%s\n# bridge %s fail_mode=%s\n", p.Host, p.Revision, p.Digest, p.Bridge.Name, p.Bridge.FailMode)
		for _, tp := range p.Tunnels {
			fmt.Fprintf(&b, "# %s\n", tunnelLine(&tp))
		}
		for _, cp := range p.Containers {
			fmt.Fprintf(&b, "# %s\n", containerLine(&cp))
		}
		for _, r := range p.DNS {
			fmt.Fprintf(&b, "# %s\n", dnsLine(&r))
		}
		for _, h := range p.HealthChecks {
			fmt.Fprintf(&b, "# %s\n", probeLine(&h))
		}
		if g := p.Gateway; g != nil {
			fmt.Fprintf(&b, "# gateway mac=%s address=%s egressIPs=%v\n", g.MAC, g.Address, g.EgressIPs)
			for _, r := range g.Routes {
				fmt.Fprintf(&b, "# route %s via=%s\n", r.Dst, r.Via)
			}
			for _, r := range g.NAT {
				fmt.Fprintf(&b, "# nat %s -> %s:%d snat=%s\n", r.Key(), r.ToIP, r.ToPort, r.SNATTo)
			}
		}
		b.WriteString(Render(p))
		for _, g := range p.Groups {
			fmt.Fprintf(&b, "group_id=%d,%s\n", g.ID, g.Spec)
		}
	}
	return b.String()
}

// portRefs lists the port names a flow refers to as ${port:NAME}.
func portRefs(f *openapi.Flow) []string {
	var names []string
	for _, s := range []string{f.Match, f.Actions} {
		for {
			i := strings.Index(s, "${port:")
			if i < 0 {
				break
			}
			s = s[i+len("${port:"):]
			j := strings.IndexByte(s, '}')
			if j < 0 {
				break
			}
			names = append(names, s[:j])
			s = s[j+1:]
		}
	}
	return names
}
