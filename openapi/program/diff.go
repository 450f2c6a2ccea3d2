package program

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"sort"

	"github.com/switchyard/switchyard/openapi"
)

// Diff is the delta that turns from into to (two programs of one host). A
// nil from stands for no program: the delta then adds everything. A port or
// group whose content changed is removed and added again. Flows may be in
// any order; the delta's flows are sorted.
func Diff(from, to *openapi.Program) *openapi.ProgramDelta {
	if from == nil {
		from = &openapi.Program{}
	}
	d := &openapi.ProgramDelta{FromDigest: from.Digest, Digest: to.Digest}
	d.AddFlows, d.RemoveFlows = diffFlows(from.Flows, to.Flows)
	d.AddTunnels, d.RemoveTunnels = diffByKey(from.Tunnels, to.Tunnels, tunnelName)
	d.AddContainers, d.RemoveContainers = diffByKey(from.Containers, to.Containers, containerName)
	d.AddGroups, d.RemoveGroups = diffByKey(from.Groups, to.Groups, groupID)
	d.AddDNS, d.RemoveDNS = diffByKey(from.DNS, to.DNS, dnsKey)
	d.AddHealthChecks, d.RemoveHealthChecks = diffByKey(from.HealthChecks, to.HealthChecks, healthKey)
	diffGateway(from.Gateway, to.Gateway, d)
	return d
}

// Patch applies d to from and returns the new program (from is not
// modified). It fails if d was not computed against from (FromDigest), if d
// removes what from does not have or adds a port or group from already has,
// or if the result does not have d's digest (an empty d.Digest is not
// checked). The result's flows are sorted, its ports and groups sorted by
// name and ID, and its Digest is computed from its content. It keeps from's
// host, bridge and revision: the caller sets the revision the delta came
// with.
func Patch(from *openapi.Program, d *openapi.ProgramDelta) (*openapi.Program, error) {
	p, err := patchContent(from, d, false)
	if err != nil {
		return nil, err
	}
	return p, setDigest(p, d, Digest(p))
}

// patchContent applies d to from without computing the result's digest.
// sorted says from's flows are known to be sorted (a patch's result is),
// which spares a pass over them.
func patchContent(from *openapi.Program, d *openapi.ProgramDelta, sorted bool) (*openapi.Program, error) {
	if from == nil {
		return nil, fmt.Errorf("patch: no program to patch")
	}
	if d.FromDigest != from.Digest {
		return nil, fmt.Errorf("patch: delta is from digest %q, program has %q", d.FromDigest, from.Digest)
	}
	p := &openapi.Program{Host: from.Host, Revision: from.Revision, Bridge: from.Bridge}
	var err error
	if p.Flows, err = patchFlows(from.Flows, d.AddFlows, d.RemoveFlows, sorted); err != nil {
		return nil, fmt.Errorf("patch: %v", err)
	}
	if p.Tunnels, err = patchKeyed(sorted, from.Tunnels, d.RemoveTunnels, d.AddTunnels, tunnelName, "tunnel"); err != nil {
		return nil, err
	}
	if p.Containers, err = patchKeyed(sorted, from.Containers, d.RemoveContainers, d.AddContainers, containerName, "container port"); err != nil {
		return nil, err
	}
	if p.Groups, err = patchKeyed(sorted, from.Groups, d.RemoveGroups, d.AddGroups, groupID, "group"); err != nil {
		return nil, err
	}
	if p.DNS, err = patchKeyed(sorted, from.DNS, d.RemoveDNS, d.AddDNS, dnsKey, "DNS record"); err != nil {
		return nil, err
	}
	if p.HealthChecks, err = patchKeyed(sorted, from.HealthChecks, d.RemoveHealthChecks, d.AddHealthChecks, healthKey, "health check"); err != nil {
		return nil, err
	}
	p.Gateway = patchGateway(from.Gateway, d)
	if len(p.DNS) == 0 {
		p.DNS = nil
	}
	if len(p.HealthChecks) == 0 {
		p.HealthChecks = nil
	}
	return p, nil
}

// setDigest gives p its digest, checking it against the delta's.
func setDigest(p *openapi.Program, d *openapi.ProgramDelta, digest string) error {
	p.Digest = digest
	if d.Digest != "" && d.Digest != p.Digest {
		return fmt.Errorf("patch: result has digest %q, delta says %q", p.Digest, d.Digest)
	}
	return nil
}

// Tracked is a program with the sums of its content, so that patching it
// costs the size of the delta instead of hashing the whole program again.
// An agent keeps its current program this way.
type Tracked struct {
	P    *openapi.Program
	sums Sums
	// sorted: P's flows are sorted (P came from a patch). A whole program
	// from the controller is checked, and sorted if need be, on its first
	// patch; after that the check, a pass over every flow, is skipped.
	// P must not be modified.
	sorted bool
}

// Track starts tracking p (one pass over its content).
func Track(p *openapi.Program) *Tracked { return &Tracked{P: p, sums: programSums(p)} }

// Patch applies d like the package's Patch, with the same checks, and
// returns the tracked result; t is not modified.
func (t *Tracked) Patch(d *openapi.ProgramDelta) (*Tracked, error) {
	p, err := patchContent(t.P, d, t.sorted)
	if err != nil {
		return nil, err
	}
	s := t.sums
	for i := range d.RemoveFlows {
		s.AddFlow(FlowKey(&d.RemoveFlows[i]), -1)
	}
	for i := range d.AddFlows {
		s.AddFlow(FlowKey(&d.AddFlows[i]), 1)
	}
	gone := nameSet(d.RemoveTunnels)
	for i := range t.P.Tunnels {
		if gone[t.P.Tunnels[i].Name] {
			s.AddTunnel(TunnelKey(&t.P.Tunnels[i]), -1)
		}
	}
	for i := range d.AddTunnels {
		s.AddTunnel(TunnelKey(&d.AddTunnels[i]), 1)
	}
	gone = nameSet(d.RemoveContainers)
	for i := range t.P.Containers {
		if gone[t.P.Containers[i].Name] {
			s.AddContainer(ContainerKey(&t.P.Containers[i]), -1)
		}
	}
	for i := range d.AddContainers {
		s.AddContainer(ContainerKey(&d.AddContainers[i]), 1)
	}
	ids := make(map[uint32]bool, len(d.RemoveGroups))
	for _, id := range d.RemoveGroups {
		ids[id] = true
	}
	for i := range t.P.Groups {
		if ids[t.P.Groups[i].ID] {
			s.AddGroup(GroupKey(&t.P.Groups[i]), -1)
		}
	}
	for i := range d.AddGroups {
		s.AddGroup(GroupKey(&d.AddGroups[i]), 1)
	}
	keyed(t.P.DNS, d.RemoveDNS, d.AddDNS, dnsKey, DNSKey, s.AddDNS, t.sorted)
	keyed(t.P.HealthChecks, d.RemoveHealthChecks, d.AddHealthChecks, healthKey, HealthKey, s.AddHealthCheck, t.sorted)
	s.SetGateway(GatewayKey(p.Gateway))
	if err := setDigest(p, d, s.Digest(p.Host, p.Bridge)); err != nil {
		return nil, err
	}
	return &Tracked{P: p, sums: s, sorted: true}, nil
}

// keyed updates sums (add) for elements of from removed by key and for
// added elements. sorted: from is sorted by key (found by binary search
// instead of computing every element's key).
func keyed[T any](from []T, remove []string, adds []T, key func(*T) string, hash func(*T) Key, add func(Key, int), sorted bool) {
	switch {
	case len(remove) == 0:
	case sorted:
		for _, k := range remove {
			if i, ok := findKey(from, k, key); ok {
				add(hash(&from[i]), -1)
			}
		}
	default:
		gone := nameSet(remove)
		for i := range from {
			if gone[key(&from[i])] {
				add(hash(&from[i]), -1)
			}
		}
	}
	for i := range adds {
		add(hash(&adds[i]), 1)
	}
}

// findKey finds the element of k in from, sorted by key.
func findKey[T any, K cmp.Ordered](from []T, k K, key func(*T) K) (int, bool) {
	return sort.Find(len(from), func(i int) int { return cmp.Compare(k, key(&from[i])) })
}

func dnsKey(r *openapi.DNSRecord) string            { return r.Key() }
func healthKey(h *openapi.HealthProbe) string       { return h.Key() }
func tunnelName(t *openapi.TunnelPort) string       { return t.Name }
func containerName(c *openapi.ContainerPort) string { return c.Name }
func groupID(g *openapi.Group) uint32               { return g.ID }

// diffFlows walks both sorted flow lists once.
func diffFlows(from, to []openapi.Flow) (add, remove []openapi.Flow) {
	from, to = sortedFlows(from), sortedFlows(to)
	i, j := 0, 0
	for i < len(from) || j < len(to) {
		var c int
		switch {
		case i == len(from):
			c = 1
		case j == len(to):
			c = -1
		default:
			c = CompareFlows(&from[i], &to[j])
		}
		switch {
		case c < 0:
			remove = append(remove, from[i])
			i++
		case c > 0:
			add = append(add, to[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, remove
}

func patchFlows(from, add, remove []openapi.Flow, sorted bool) ([]openapi.Flow, error) {
	ptrs := func(fs []openapi.Flow) []*openapi.Flow {
		ps := make([]*openapi.Flow, len(fs))
		for i := range fs {
			ps[i] = &fs[i]
		}
		return ps
	}
	if !sorted {
		from = sortedFlows(from)
	}
	return MergeFlows(from, ptrs(add), ptrs(remove))
}

// diffByKey compares two lists of elements with unique keys: added or changed
// elements are in add, removed or changed keys in remove (both sorted).
func diffByKey[T any, K cmp.Ordered](from, to []T, key func(*T) K) (add []T, remove []K) {
	old := make(map[K]*T, len(from))
	for i := range from {
		old[key(&from[i])] = &from[i]
	}
	seen := make(map[K]bool, len(to))
	for i := range to {
		k := key(&to[i])
		seen[k] = true
		if o := old[k]; o == nil || !reflect.DeepEqual(*o, to[i]) {
			add = append(add, to[i])
			if o != nil {
				remove = append(remove, k)
			}
		}
	}
	for k := range old {
		if !seen[k] {
			remove = append(remove, k)
		}
	}
	slices.SortFunc(add, func(a, b T) int { return cmp.Compare(key(&a), key(&b)) })
	slices.Sort(remove)
	return add, remove
}

// patchByKey removes then adds elements by key and returns them sorted by
// key, never nil. Programs keep their elements sorted by key: when from is
// (checked, each key computed once), it is patchSorted's. Only the first
// patch after a whole program takes this check (a patch's result is known
// sorted: patchKeyed).
func patchByKey[T any, K cmp.Ordered](from []T, remove []K, add []T, key func(*T) K, what string) ([]T, error) {
	var prev K
	for i := range from {
		k := key(&from[i])
		if i > 0 && prev >= k {
			return patchByKeyUnsorted(from, remove, add, key, what)
		}
		prev = k
	}
	return patchSorted(from, remove, add, key, what)
}

// patchKeyed is patchByKey, or patchSorted when from is known to be sorted
// by key (a patch's result is).
func patchKeyed[T any, K cmp.Ordered](sorted bool, from []T, remove []K, add []T, key func(*T) K, what string) ([]T, error) {
	if sorted {
		return patchSorted(from, remove, add, key, what)
	}
	return patchByKey(from, remove, add, key, what)
}

// patchSorted is patchByKey for from known to be sorted by key, with no
// key twice: it finds the removed and added keys by binary search, so it
// computes O(k log n) keys instead of n (a DNS record's key is built by
// concatenation), and copies the rest in runs.
func patchSorted[T any, K cmp.Ordered](from []T, remove []K, add []T, key func(*T) K, what string) ([]T, error) {
	gone := make([]int, 0, len(remove))
	for _, k := range remove {
		i, ok := findKey(from, k, key)
		if !ok {
			return nil, fmt.Errorf("patch: %s %v to remove is not in the program", what, k)
		}
		gone = append(gone, i)
	}
	slices.Sort(gone)
	for i := 1; i < len(gone); i++ {
		if gone[i] == gone[i-1] {
			return nil, fmt.Errorf("patch: %s %v to remove is not in the program", what, key(&from[gone[i]]))
		}
	}
	type insert struct {
		at int
		k  K
		v  *T
	}
	ins := make([]insert, len(add))
	for i := range add {
		k := key(&add[i])
		at, found := findKey(from, k, key)
		if _, removed := slices.BinarySearch(gone, at); found && !removed {
			return nil, fmt.Errorf("patch: %s %v to add is already in the program", what, k)
		}
		ins[i] = insert{at, k, &add[i]}
	}
	slices.SortFunc(ins, func(a, b insert) int { return cmp.Compare(a.k, b.k) })
	for i := 1; i < len(ins); i++ {
		if ins[i].k == ins[i-1].k {
			return nil, fmt.Errorf("patch: %s %v to add is already in the program", what, ins[i].k)
		}
	}
	out := make([]T, 0, len(from)-len(gone)+len(add))
	cur, g := 0, 0
	upTo := func(end int) { // from[cur:end], less the removed
		for ; g < len(gone) && gone[g] < end; g++ {
			out = append(out, from[cur:gone[g]]...)
			cur = gone[g] + 1
		}
		out = append(out, from[cur:end]...)
		cur = end
	}
	for _, x := range ins {
		upTo(x.at)
		out = append(out, *x.v)
	}
	upTo(len(from))
	return out, nil
}

// patchByKeyUnsorted is patchByKey for element lists not sorted by key.
func patchByKeyUnsorted[T any, K cmp.Ordered](from []T, remove []K, add []T, key func(*T) K, what string) ([]T, error) {
	m := make(map[K]T, len(from)+len(add))
	for i := range from {
		m[key(&from[i])] = from[i]
	}
	for _, k := range remove {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("patch: %s %v to remove is not in the program", what, k)
		}
		delete(m, k)
	}
	for i := range add {
		k := key(&add[i])
		if _, ok := m[k]; ok {
			return nil, fmt.Errorf("patch: %s %v to add is already in the program", what, k)
		}
		m[k] = add[i]
	}
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(key(&a), key(&b)) })
	return out, nil
}

func nameSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
