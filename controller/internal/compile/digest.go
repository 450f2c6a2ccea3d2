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

// An element's canonical byte string is a tag byte, then its fields:
// integers as 8 bytes, strings length-prefixed. hashOf hashes it.

func appendInt(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func hashOf(b []byte) hkey {
	d := sha256.Sum256(b)
	return hkey{binary.BigEndian.Uint64(d[0:8]), binary.BigEndian.Uint64(d[8:16])}
}

// hasherBuf is the size of the stack buffer elements are written to: most
// fit.
const hasherBuf = 512

func flowKey(f *openapi.Flow) hkey {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'F')
	b = appendInt(b, int64(f.Table))
	b = appendInt(b, int64(f.Priority))
	b = appendInt(b, int64(f.Cookie))
	b = appendStr(b, f.Match)
	return hashOf(appendStr(b, f.Actions))
}

func tunnelKey(t *openapi.TunnelPort) hkey {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'T')
	for _, s := range [...]string{t.Name, t.Type, t.PeerHost, t.RemoteIP} {
		b = appendStr(b, s)
	}
	return hashOf(b)
}

func containerKey(c *openapi.ContainerPort) hkey {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'C')
	for _, s := range [...]string{c.Name, c.Container, c.ID, c.Network, c.Netns, c.Sandbox, c.IP, c.MAC, c.Gateway} {
		b = appendStr(b, s)
	}
	b = appendInt(b, int64(c.PrefixLen))
	return hashOf(appendInt(b, int64(c.MTU)))
}

func groupKey(g *openapi.Group) hkey {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'G')
	b = appendInt(b, int64(g.ID))
	return hashOf(appendStr(b, g.Spec))
}

// digest turns a host's accumulated content into its digest string.
func (s *sums) digest(host string, br openapi.BridgeSpec) string {
	var buf [hasherBuf]byte
	b := append(buf[:0], 'P')
	for _, x := range [...]string{host, br.Name, br.FailMode} {
		b = appendStr(b, x)
	}
	for _, n := range [...]int64{int64(s.flows), int64(s.tunnels), int64(s.ctrs), int64(s.groups), int64(s.h[0]), int64(s.h[1])} {
		b = appendInt(b, n)
	}
	d := sha256.Sum256(b)
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
