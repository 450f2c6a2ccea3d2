package program

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/switchyard/switchyard/openapi"
)

// Key is the 128-bit content hash of one program element (a flow, a port, a
// group). It is summed into the program digest; it can also key flow
// multisets.
type Key [2]uint64

// Sums is the order-independent accumulator of a program's content: the sums
// of its elements' keys and the number of elements of each kind. Its zero
// value is an empty program. Adding an element with n = -1 removes it.
type Sums struct {
	h                                            Key
	flows, tunnels, containers, groups, dns, hcs int
	gw                                           Key // GatewayKey of the gateway (not summed: one per program)
}

func (s *Sums) add(k Key, n int) {
	s.h[0] += k[0] * uint64(n)
	s.h[1] += k[1] * uint64(n)
}

// AddFlow adds n copies (n < 0: removes -n copies) of the flow whose key is
// k (FlowKey).
func (s *Sums) AddFlow(k Key, n int) { s.add(k, n); s.flows += n }

// AddTunnel adds n copies (n < 0: removes) of the tunnel port whose key is k
// (TunnelKey).
func (s *Sums) AddTunnel(k Key, n int) { s.add(k, n); s.tunnels += n }

// AddContainer adds n copies (n < 0: removes) of the container port whose
// key is k (ContainerKey).
func (s *Sums) AddContainer(k Key, n int) { s.add(k, n); s.containers += n }

// AddGroup adds n copies (n < 0: removes) of the group whose key is k
// (GroupKey).
func (s *Sums) AddGroup(k Key, n int) { s.add(k, n); s.groups += n }

// AddDNS adds n copies (n < 0: removes) of the DNS record whose key is k
// (DNSKey).
func (s *Sums) AddDNS(k Key, n int) { s.add(k, n); s.dns += n }

// AddHealthCheck adds n copies (n < 0: removes) of the health probe whose
// key is k (HealthKey).
func (s *Sums) AddHealthCheck(k Key, n int) { s.add(k, n); s.hcs += n }

// AddSums adds n copies (n < 0: removes) of everything o accumulated: o
// may sum a part shared by several programs.
func (s *Sums) AddSums(o *Sums, n int) {
	s.add(o.h, n)
	s.flows += n * o.flows
	s.tunnels += n * o.tunnels
	s.containers += n * o.containers
	s.groups += n * o.groups
	s.dns += n * o.dns
	s.hcs += n * o.hcs
}

// An element's canonical byte string is a tag byte, then its fields:
// integers as 8 bytes, strings length-prefixed. hashOf hashes it.

func appendInt(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func hashOf(b []byte) Key {
	d := sha256.Sum256(b)
	return Key{binary.BigEndian.Uint64(d[0:8]), binary.BigEndian.Uint64(d[8:16])}
}

// hasherBuf is the size of the stack buffer elements are written to: most
// fit.
const hasherBuf = 512

// FlowKey is f's content hash.
func FlowKey(f *openapi.Flow) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'F')
	b = appendInt(b, int64(f.Table))
	b = appendInt(b, int64(f.Priority))
	b = appendInt(b, int64(f.Cookie))
	b = appendStr(b, f.Match)
	return hashOf(appendStr(b, f.Actions))
}

// TunnelKey is t's content hash.
func TunnelKey(t *openapi.TunnelPort) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'T')
	for _, s := range [...]string{t.Name, t.Type, t.PeerHost, t.RemoteIP} {
		b = appendStr(b, s)
	}
	return hashOf(b)
}

// ContainerKey is c's content hash.
func ContainerKey(c *openapi.ContainerPort) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'C')
	for _, s := range [...]string{c.Name, c.Container, c.ID, c.Network, c.Netns, c.Sandbox, c.IP, c.MAC, c.Gateway} {
		b = appendStr(b, s)
	}
	b = appendInt(b, int64(c.PrefixLen))
	b = appendInt(b, int64(c.MTU))
	if c.DNSDomain != "" || c.DNSSearch != "" {
		b = appendStr(appendStr(b, c.DNSDomain), c.DNSSearch)
	}
	return hashOf(b)
}

// GroupKey is g's content hash.
func GroupKey(g *openapi.Group) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'G')
	b = appendInt(b, int64(g.ID))
	return hashOf(appendStr(b, g.Spec))
}

// DNSKey is r's content hash.
func DNSKey(r *openapi.DNSRecord) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'D')
	for _, x := range [...]string{r.Network, r.Kind, r.Name, r.IP} {
		b = appendStr(b, x)
	}
	b = appendInt(b, r.VNI)
	b = appendInt(b, int64(len(r.Ports)))
	for _, sp := range r.Ports {
		b = appendStr(b, sp.Name)
		b = appendStr(b, sp.Protocol)
		b = appendInt(b, int64(sp.Port))
		b = appendInt(b, int64(sp.TargetPort))
		if sp.NodePort != 0 { // records without node ports keep their keys
			b = appendInt(b, int64(sp.NodePort))
		}
	}
	return hashOf(b)
}

// HealthKey is h's content hash.
func HealthKey(h *openapi.HealthProbe) Key {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'H')
	c := &h.Check
	for _, x := range [...]string{h.Service, h.ServiceName, h.Container, h.Port, h.IP, c.Protocol, c.Path} {
		b = appendStr(b, x)
	}
	for _, n := range [...]int{c.Port, c.IntervalSeconds, c.TimeoutSeconds, c.UnhealthyThreshold, c.HealthyThreshold} {
		b = appendInt(b, int64(n))
	}
	return hashOf(b)
}

// Digest is the digest of the program of host, with bridge br, whose content
// s accumulated: what Digest returns for that program.
func (s *Sums) Digest(host string, br openapi.BridgeSpec) string {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'P')
	for _, x := range [...]string{host, br.Name, br.FailMode} {
		b = appendStr(b, x)
	}
	for _, n := range [...]int64{int64(s.flows), int64(s.tunnels), int64(s.containers), int64(s.groups), int64(s.h[0]), int64(s.h[1])} {
		b = appendInt(b, n)
	}
	// Programs without DNS records or health probes keep the digest they
	// had before these kinds existed.
	if s.dns != 0 || s.hcs != 0 {
		b = appendInt(b, int64(s.dns))
		b = appendInt(b, int64(s.hcs))
	}
	if s.gw != (Key{}) {
		b = appendInt(appendInt(b, int64(s.gw[0])), int64(s.gw[1]))
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:16])
}

// programSums accumulates every element of p.
func programSums(p *openapi.Program) Sums {
	var s Sums
	for i := range p.Flows {
		s.AddFlow(FlowKey(&p.Flows[i]), 1)
	}
	for i := range p.Tunnels {
		s.AddTunnel(TunnelKey(&p.Tunnels[i]), 1)
	}
	for i := range p.Containers {
		s.AddContainer(ContainerKey(&p.Containers[i]), 1)
	}
	for i := range p.Groups {
		s.AddGroup(GroupKey(&p.Groups[i]), 1)
	}
	for i := range p.DNS {
		s.AddDNS(DNSKey(&p.DNS[i]), 1)
	}
	for i := range p.HealthChecks {
		s.AddHealthCheck(HealthKey(&p.HealthChecks[i]), 1)
	}
	s.SetGateway(GatewayKey(p.Gateway))
	return s
}

// Digest computes p's digest from its content (host, bridge, ports, flows,
// groups, DNS records, health probes; not its revision, not p.Digest, not the order of its elements). A
// program built by the controller carries it in p.Digest; an agent can
// recompute it to check what it applied.
func Digest(p *openapi.Program) string {
	s := programSums(p)
	return s.Digest(p.Host, p.Bridge)
}
