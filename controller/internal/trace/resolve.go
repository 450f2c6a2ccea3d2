package trace

import (
	"net/netip"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// index finds objects of a snapshot by name, ID and address.
type index struct {
	s        *compile.Snapshot
	hosts    map[string]*openapi.Host
	networks map[string]*openapi.Network
	byIP     map[netip.Addr][]*openapi.Container
	hostIP   map[netip.Addr]*openapi.Host
	vip      map[netip.Addr]*openapi.Service
}

func newIndex(s *compile.Snapshot) *index {
	x := &index{s: s, hosts: map[string]*openapi.Host{}, networks: map[string]*openapi.Network{},
		byIP: map[netip.Addr][]*openapi.Container{}, hostIP: map[netip.Addr]*openapi.Host{}, vip: map[netip.Addr]*openapi.Service{}}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		x.hosts[h.Name] = h
		if a, err := netip.ParseAddr(h.Address); err == nil {
			x.hostIP[a] = h
		}
	}
	for i := range s.Networks {
		x.networks[s.Networks[i].Name] = &s.Networks[i]
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if a, err := netip.ParseAddr(c.IP); err == nil {
			x.byIP[a] = append(x.byIP[a], c)
		}
	}
	for i := range s.Services {
		if a, err := netip.ParseAddr(s.Services[i].VIP); err == nil {
			x.vip[a] = &s.Services[i]
		}
	}
	return x
}

// container finds a container by name or ID (in network when given):
// 422 when none, 409 when the name is ambiguous.
func (x *index) container(field, ref, network string) (*openapi.Container, error) {
	return findOne(x.s.Containers, field, "container", ref, network, func(c *openapi.Container) (string, string, string) {
		return c.ID, c.Name, c.Network
	})
}

// service is container for services.
func (x *index) service(field, ref, network string) (*openapi.Service, error) {
	return findOne(x.s.Services, field, "service", ref, network, func(s *openapi.Service) (string, string, string) {
		return s.ID, s.Name, s.Network
	})
}

// findOne finds the one item whose ID or name is ref (in network when
// given); key gives an item's ID, name and network.
func findOne[T any](items []T, field, kind, ref, network string, key func(*T) (string, string, string)) (*T, error) {
	var found []*T
	for i := range items {
		id, name, net := key(&items[i])
		if (id == ref || name == ref) && (network == "" || net == network) {
			found = append(found, &items[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, problem.Unresolvable(field, "no %s %q%s", kind, ref, inNetwork(network))
	case 1:
		return found[0], nil
	}
	return nil, problem.Conflict(field, "%s name %q is in several networks: give network", kind, ref)
}

func inNetwork(n string) string {
	if n == "" {
		return ""
	}
	return " in network " + n
}

// ctrByIP is the one container with address a (in network when given).
func (x *index) ctrByIP(a netip.Addr, network string) *openapi.Container {
	var found *openapi.Container
	for _, c := range x.byIP[a] {
		if network == "" || c.Network == network {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// end is a resolved end of a trace.
type end struct {
	kind string
	ctr  *openapi.Container
	svc  *openapi.Service
	host *openapi.Host // published
	ip   netip.Addr
}

func (e end) api(port int) openapi.TraceEnd {
	out := openapi.TraceEnd{Kind: e.kind, IP: e.ip.String()}
	switch {
	case e.ctr != nil:
		out.Name, out.ID, out.Network, out.Host = e.ctr.Name, e.ctr.ID, e.ctr.Network, e.ctr.Host
	case e.svc != nil:
		out.Name, out.ID, out.Network, out.Port = e.svc.Name, e.svc.ID, e.svc.Network, port
	case e.host != nil:
		out.Name, out.Host, out.Port = e.host.Name, e.host.Name, port
	}
	return out
}

// resolve checks the request and finds its ends. Errors are problems
// naming the field.
func (x *index) resolve(req *openapi.TraceRequest) (src, dst end, err error) {
	if req.Protocol == "" {
		req.Protocol = "TCP"
	}
	req.Protocol = strings.ToUpper(req.Protocol)
	switch req.Protocol {
	case "ICMP":
		if req.Port != 0 {
			return src, dst, problem.Invalid("port", "ICMP has no ports: leave port out")
		}
	case "TCP", "UDP", "SCTP":
		if req.Port < 1 || req.Port > 65535 {
			return src, dst, problem.Invalid("port", "port is required for %s (1 to 65535)", req.Protocol)
		}
	default:
		return src, dst, problem.Invalid("protocol", "protocol must be TCP, UDP, SCTP or ICMP")
	}
	if req.SourcePort == 0 {
		req.SourcePort = openapi.DefaultTraceSourcePort
	}
	s, d := req.Source, req.Destination
	switch {
	case s.Service != "" || s.Host != "":
		return src, dst, problem.Invalid("source", "a source is a container or an outside address")
	case (s.Container == "") == (s.Address == ""):
		return src, dst, problem.Invalid("source", "give exactly one of source.container and source.address")
	case s.Container != "":
		c, err := x.container("source.container", s.Container, s.Network)
		if err != nil {
			return src, dst, err
		}
		src = end{kind: openapi.TraceEndContainer, ctr: c, ip: mustAddr(c.IP)}
	default:
		a, err := netip.ParseAddr(s.Address)
		if err != nil || !a.Is4() {
			return src, dst, problem.Invalid("source.address", "not an IPv4 address")
		}
		if c := x.ctrByIP(a, s.Network); c != nil {
			src = end{kind: openapi.TraceEndContainer, ctr: c, ip: a}
		} else {
			src = end{kind: openapi.TraceEndOutside, ip: a}
		}
	}
	n := 0
	for _, v := range []string{d.Container, d.Service, d.Host, d.Address} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return src, dst, problem.Invalid("destination", "give exactly one of destination.container, .service, .host and .address")
	}
	switch {
	case d.Container != "":
		c, err := x.container("destination.container", d.Container, d.Network)
		if err != nil {
			return src, dst, err
		}
		dst = end{kind: openapi.TraceEndContainer, ctr: c, ip: mustAddr(c.IP)}
	case d.Service != "":
		sv, err := x.service("destination.service", d.Service, d.Network)
		if err != nil {
			return src, dst, err
		}
		dst = end{kind: openapi.TraceEndService, svc: sv, ip: mustAddr(sv.VIP)}
	case d.Host != "":
		h := x.hosts[d.Host]
		if h == nil {
			return src, dst, problem.Unresolvable("destination.host", "no host %q", d.Host)
		}
		dst = end{kind: openapi.TraceEndPublished, host: h, ip: mustAddr(h.Address)}
	default:
		a, err := netip.ParseAddr(d.Address)
		if err != nil || !a.Is4() {
			return src, dst, problem.Invalid("destination.address", "not an IPv4 address")
		}
		switch {
		case x.ctrByIP(a, d.Network) != nil:
			dst = end{kind: openapi.TraceEndContainer, ctr: x.ctrByIP(a, d.Network), ip: a}
		case x.vip[a] != nil:
			dst = end{kind: openapi.TraceEndService, svc: x.vip[a], ip: a}
		case x.hostIP[a] != nil:
			dst = end{kind: openapi.TraceEndPublished, host: x.hostIP[a], ip: a}
		default:
			dst = end{kind: openapi.TraceEndOutside, ip: a}
		}
	}
	if src.kind == openapi.TraceEndOutside && dst.kind == openapi.TraceEndOutside {
		return src, dst, problem.Unprocessable("destination", "both ends are outside Switchyard: nothing to trace")
	}
	if req.Probe && src.kind != openapi.TraceEndContainer {
		return src, dst, problem.Unprocessable("probe", "a live probe needs a container source (an outside source has no agent)")
	}
	return src, dst, nil
}

func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}
