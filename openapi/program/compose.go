package program

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/switchyard/switchyard/openapi"
)

// Compose returns one delta with the effect of applying ds in order:
// Patch(p, Compose(ds...)) has the content and digest of patching p with
// each of ds in turn. Each delta must lead from the digest the previous one
// leads to. The deltas are not modified, and the result shares none of
// their slices.
//
// Flows are a multiset: a flow added by one delta and removed by a later
// one cancels out. A port or group touched by several deltas is removed (if
// the first program had it) and added with its last content (if the last
// program has it); one the deltas added and then removed is not mentioned.
// The cost is linear in the sizes of the deltas.
func Compose(ds ...*openapi.ProgramDelta) (*openapi.ProgramDelta, error) {
	if len(ds) == 0 {
		return nil, fmt.Errorf("compose: no delta")
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].FromDigest != ds[i-1].Digest {
			return nil, fmt.Errorf("compose: delta %d is from digest %q, delta %d leads to %q", i, ds[i].FromDigest, i-1, ds[i-1].Digest)
		}
	}
	out := &openapi.ProgramDelta{FromDigest: ds[0].FromDigest, Digest: ds[len(ds)-1].Digest}
	out.AddFlows, out.RemoveFlows = composeFlows(ds)
	out.AddTunnels, out.RemoveTunnels = composeByKey(ds,
		func(d *openapi.ProgramDelta) ([]openapi.TunnelPort, []string) { return d.AddTunnels, d.RemoveTunnels }, tunnelName)
	out.AddContainers, out.RemoveContainers = composeByKey(ds,
		func(d *openapi.ProgramDelta) ([]openapi.ContainerPort, []string) {
			return d.AddContainers, d.RemoveContainers
		}, containerName)
	out.AddGroups, out.RemoveGroups = composeByKey(ds,
		func(d *openapi.ProgramDelta) ([]openapi.Group, []uint32) { return d.AddGroups, d.RemoveGroups }, groupID)
	out.AddDNS, out.RemoveDNS = composeByKey(ds,
		func(d *openapi.ProgramDelta) ([]openapi.DNSRecord, []string) { return d.AddDNS, d.RemoveDNS }, dnsKey)
	out.AddHealthChecks, out.RemoveHealthChecks = composeByKey(ds,
		func(d *openapi.ProgramDelta) ([]openapi.HealthProbe, []string) {
			return d.AddHealthChecks, d.RemoveHealthChecks
		}, healthKey)
	composeGateway(ds, out)
	return out, nil
}

// composeFlows sums the flows' counts over the deltas.
func composeFlows(ds []*openapi.ProgramDelta) (add, remove []openapi.Flow) {
	type count struct {
		f *openapi.Flow
		n int
	}
	net := map[Key]*count{}
	var order []Key
	bump := func(fs []openapi.Flow, n int) {
		for i := range fs {
			k := FlowKey(&fs[i])
			c := net[k]
			if c == nil {
				c = &count{f: &fs[i]}
				net[k] = c
				order = append(order, k)
			}
			c.n += n
		}
	}
	for _, d := range ds {
		bump(d.RemoveFlows, -1)
		bump(d.AddFlows, 1)
	}
	for _, k := range order {
		c := net[k]
		for ; c.n > 0; c.n-- {
			add = append(add, *c.f)
		}
		for ; c.n < 0; c.n++ {
			remove = append(remove, *c.f)
		}
	}
	SortFlows(add)
	SortFlows(remove)
	return add, remove
}

// composeByKey composes the changes of elements with unique keys. For each
// key it follows the deltas in order: whether the first program had it (a
// delta removed it before any delta added it) and what the last program has
// (the last delta that touched it added it, or removed it).
func composeByKey[T any, K cmp.Ordered](ds []*openapi.ProgramDelta, parts func(*openapi.ProgramDelta) ([]T, []K), key func(*T) K) (add []T, remove []K) {
	type state struct {
		hadFirst bool // the first program had it
		last     *T   // what the last program has so far (nil: none)
	}
	st := map[K]*state{}
	get := func(k K, removed bool) *state {
		s := st[k]
		if s == nil {
			s = &state{hadFirst: removed}
			st[k] = s
		}
		return s
	}
	for _, d := range ds {
		adds, removes := parts(d)
		for _, k := range removes {
			get(k, true).last = nil
		}
		for i := range adds {
			get(key(&adds[i]), false).last = &adds[i]
		}
	}
	for k, s := range st {
		if s.hadFirst {
			remove = append(remove, k)
		}
		if s.last != nil {
			add = append(add, *s.last)
		}
	}
	slices.SortFunc(add, func(a, b T) int { return cmp.Compare(key(&a), key(&b)) })
	slices.Sort(remove)
	return add, remove
}

// Size is a rough measure of d's size in bytes (its strings and a few bytes
// per element), to bound how much of a host's history is kept.
func Size(d *openapi.ProgramDelta) int {
	n := len(d.FromDigest) + len(d.Digest)
	for _, fs := range [...][]openapi.Flow{d.AddFlows, d.RemoveFlows} {
		for i := range fs {
			n += 24 + len(fs[i].Match) + len(fs[i].Actions)
		}
	}
	for i := range d.AddTunnels {
		t := &d.AddTunnels[i]
		n += len(t.Name) + len(t.Type) + len(t.PeerHost) + len(t.RemoteIP)
	}
	for i := range d.AddContainers {
		c := &d.AddContainers[i]
		n += 16 + len(c.Name) + len(c.Container) + len(c.ID) + len(c.Network) + len(c.Netns) + len(c.Sandbox) + len(c.IP) + len(c.MAC) + len(c.Gateway)
	}
	for i := range d.AddGroups {
		n += 4 + len(d.AddGroups[i].Spec)
	}
	for i := range d.AddDNS {
		r := &d.AddDNS[i]
		n += 16 + len(r.Network) + len(r.Kind) + len(r.Name) + len(r.IP)
		for _, sp := range r.Ports {
			n += 16 + len(sp.Name) + len(sp.Protocol)
		}
	}
	for i := range d.AddHealthChecks {
		h := &d.AddHealthChecks[i]
		n += 40 + len(h.Service) + len(h.ServiceName) + len(h.Container) + len(h.Port) + len(h.IP) + len(h.Check.Protocol) + len(h.Check.Path)
	}
	for _, names := range [...][]string{d.RemoveTunnels, d.RemoveContainers, d.RemoveDNS, d.RemoveHealthChecks} {
		for _, s := range names {
			n += len(s)
		}
	}
	return n + 4*len(d.RemoveGroups)
}
