package compile

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/switchyard/switchyard/openapi"
)

// hkey is the 128-bit content hash of one program element (a flow, a port, a
// group). It keys flow multisets and is summed into the program digest.
type hkey [2]uint64

// sums is the order-independent accumulator of a program's content: the sums
// of its elements' hashes and the number of elements of each kind.
type sums struct {
	h                            hkey
	flows, tunnels, ctrs, groups int
}

func (s *sums) add(k hkey, n int) {
	s.h[0] += k[0] * uint64(n)
	s.h[1] += k[1] * uint64(n)
}

// elementHasher builds the canonical byte string of one element and hashes it.
type elementHasher struct{ b []byte }

func (e *elementHasher) tag(t byte) *elementHasher { e.b = append(e.b[:0], t); return e }

func (e *elementHasher) int(v int64) *elementHasher {
	e.b = binary.BigEndian.AppendUint64(e.b, uint64(v))
	return e
}

func (e *elementHasher) str(s string) *elementHasher {
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(s)))
	e.b = append(e.b, s...)
	return e
}

func (e *elementHasher) sum() hkey {
	d := sha256.Sum256(e.b)
	return hkey{binary.BigEndian.Uint64(d[0:8]), binary.BigEndian.Uint64(d[8:16])}
}

func flowKey(f *openapi.Flow) hkey {
	var e elementHasher
	e.b = make([]byte, 0, 32+len(f.Match)+len(f.Actions))
	return e.tag('F').int(int64(f.Table)).int(int64(f.Priority)).int(int64(f.Cookie)).
		str(f.Match).str(f.Actions).sum()
}

func tunnelKey(t *openapi.TunnelPort) hkey {
	var e elementHasher
	return e.tag('T').str(t.Name).str(t.Type).str(t.PeerHost).str(t.RemoteIP).sum()
}

func containerKey(c *openapi.ContainerPort) hkey {
	var e elementHasher
	return e.tag('C').str(c.Name).str(c.Container).str(c.ID).str(c.Network).str(c.Netns).
		str(c.Sandbox).str(c.IP).int(int64(c.PrefixLen)).str(c.MAC).str(c.Gateway).
		int(int64(c.MTU)).sum()
}

func groupKey(g *openapi.Group) hkey {
	var e elementHasher
	return e.tag('G').int(int64(g.ID)).str(g.Spec).sum()
}

// digest turns a host's accumulated content into its digest string.
func (s *sums) digest(host string, br openapi.BridgeSpec) string {
	var e elementHasher
	e.tag('P').str(host).str(br.Name).str(br.FailMode).
		int(int64(s.flows)).int(int64(s.tunnels)).int(int64(s.ctrs)).int(int64(s.groups)).
		int(int64(s.h[0])).int(int64(s.h[1]))
	d := sha256.Sum256(e.b)
	return hex.EncodeToString(d[:16])
}

// programSums accumulates every element of p.
func programSums(p *openapi.Program) sums {
	var s sums
	for i := range p.Flows {
		s.add(flowKey(&p.Flows[i]), 1)
	}
	for i := range p.Tunnels {
		s.add(tunnelKey(&p.Tunnels[i]), 1)
	}
	for i := range p.Containers {
		s.add(containerKey(&p.Containers[i]), 1)
	}
	for i := range p.Groups {
		s.add(groupKey(&p.Groups[i]), 1)
	}
	s.flows, s.tunnels, s.ctrs, s.groups = len(p.Flows), len(p.Tunnels), len(p.Containers), len(p.Groups)
	return s
}

// Digest computes p's digest from its content (host, bridge, ports, flows,
// groups; not its revision, not the order of its elements). A program built
// by this package carries it in p.Digest; an agent can recompute it to check
// what it applied.
func Digest(p *openapi.Program) string {
	s := programSums(p)
	return s.digest(p.Host, p.Bridge)
}
