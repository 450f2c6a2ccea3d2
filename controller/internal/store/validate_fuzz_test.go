package store

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// FuzzAddrPorts: the addresses, CIDRs and ports the API takes (a host's
// address, a network's CIDR, a policy peer's cidr and except, a policy
// port's range and protocol, a service's port, targetPort, nodePort and
// protocol, a container's address and published ports) are refused only
// with a 4xx problem naming the field, never with another error (a 5xx),
// and what passes is in range: a canonical IPv4 CIDR, ports 1-65535, an
// end port not below its port, a published port neither privileged nor
// reserved. No database: the checks run before any SQL.
func FuzzAddrPorts(f *testing.F) {
	f.Add("192.168.200.11", "10.30.0.0/24", "10.30.0.128/25", 80, 90, 30080, "TCP")
	f.Add("10.10.0.300", "10.30.0.1/24", "10.31.0.0/24", 0, -1, 80, "udp")
	f.Add("::1", "::1/128", "", 65535, 65536, 6081, "ICMP")
	f.Add("010.1.1.1", "10.30.0.0/33", "10.30.0.0/24 ", 1, 1, 1<<40, "SCTP")
	f.Add("1.2.3.4%eth0", "010.030.000.000/24", "10.30.0.0/0", -80, 5, 4789, "\x00")
	st := &Store{opts: Options{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/16")}}
	f.Fuzz(func(t *testing.T, addr, cidr, except string, port, endPort, hostPort int, proto string) {
		refused := func(what string, err error) bool {
			t.Helper()
			if err == nil {
				return false
			}
			pe, ok := problem.As(err)
			if !ok || pe.Status < 400 || pe.Status > 499 || pe.Field == "" {
				t.Fatalf("%s: %v is not a 4xx problem naming a field (the API would answer %v)", what, err, pe)
			}
			return true
		}
		inRange := func(p int) bool { return p >= 1 && p <= 65535 }

		if p, err := parseCIDR("cidr", cidr); !refused("cidr", err) && (!p.Addr().Is4() || p.Masked() != p) {
			t.Fatalf("cidr %q accepted as %s", cidr, p)
		}
		refused("host", validateHost(&openapi.Host{Name: "h1", Address: addr}))

		pol := &openapi.Policy{Name: "p", Network: "blue", Ingress: []openapi.PolicyRule{{
			Peers: []openapi.PolicyPeer{{CIDR: cidr, Except: []string{except}}},
			Ports: []openapi.PolicyPort{{Port: port, EndPort: endPort, Protocol: proto}}}}}
		if !refused("policy", validatePolicy(pol)) {
			pp := pol.Ingress[0].Ports[0]
			if pp.Protocol != "ICMP" && (pp.Port != 0 && !inRange(pp.Port) || pp.EndPort != 0 && (pp.EndPort < pp.Port || !inRange(pp.EndPort))) {
				t.Fatalf("policy port %+v accepted", pp)
			}
		}

		svc := &openapi.Service{Name: "s", Network: "blue", Ports: []openapi.ServicePort{{Port: port, TargetPort: endPort, Protocol: proto, NodePort: hostPort}}}
		if !refused("service", st.validateService(svc)) {
			sp := svc.Ports[0]
			if !inRange(sp.Port) || !inRange(sp.TargetPort) || sp.NodePort != 0 && !external(sp.NodePort) {
				t.Fatalf("service port %+v accepted", sp)
			}
		}

		c := &openapi.Container{Name: "c", Network: "blue", Host: "h1", IP: addr,
			Publish: []openapi.PublishedPort{{HostPort: hostPort, Port: port, Protocol: proto, HostIP: addr}}}
		if !refused("container", validateContainer(c)) && len(c.Publish) == 1 {
			if pub := c.Publish[0]; !external(pub.HostPort) || !inRange(pub.Port) {
				t.Fatalf("published port %+v accepted", pub)
			}
		}
	})
}

// external tells whether p may be published on hosts' addresses.
func external(p int) bool {
	return p >= openapi.MinExternalPort && p <= 65535 && !slices.Contains(openapi.ReservedPorts, p)
}
