package compile

import (
	"cmp"
	"slices"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Keyed program elements other than ports: groups (by ID), DNS records and
// health probes (by Key). Each host holds, per key, every element placed
// at it (one, unless the snapshot is inconsistent: two services with one
// group ID, two containers with one name); the program shows the one with
// the smallest content hash, so the result does not depend on the order of
// changes.
type elemSet[K cmp.Ordered, T any] struct {
	m map[K][]elem[T]
	// cache is list's answer until the set changes (shared: callers
	// copy it).
	cache []T
	fresh bool
}

type elem[T any] struct {
	v    T
	hash program.Key
}

func (s *elemSet[K, T]) add(k K, v T, hash program.Key) {
	if s.m == nil {
		s.m = map[K][]elem[T]{}
	}
	s.m[k] = append(s.m[k], elem[T]{v, hash})
	s.fresh = false
}

func (s *elemSet[K, T]) remove(k K, hash program.Key) {
	s.fresh = false
	es := s.m[k]
	for i := range es {
		if es[i].hash == hash {
			es[i] = es[len(es)-1]
			es = es[:len(es)-1]
			break
		}
	}
	if len(es) == 0 {
		delete(s.m, k)
	} else {
		s.m[k] = es
	}
}

// get is the element the program shows at k.
func (s *elemSet[K, T]) get(k K) *elem[T] {
	es := s.m[k]
	if len(es) == 0 {
		return nil
	}
	best := &es[0]
	for i := 1; i < len(es); i++ {
		if h := es[i].hash; h[0] < best.hash[0] || h[0] == best.hash[0] && h[1] < best.hash[1] {
			best = &es[i]
		}
	}
	return best
}

// list is the program's elements, sorted by key; nil when empty. The
// slice is shared until the set changes: callers must not modify it.
func (s *elemSet[K, T]) list() []T {
	if s.fresh {
		return s.cache
	}
	s.cache, s.fresh = s.sorted(), true
	return s.cache
}

func (s *elemSet[K, T]) sorted() []T {
	if len(s.m) == 0 {
		return nil
	}
	keys := make([]K, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = s.get(k).v
	}
	return out
}

// elemKind is what differs between the kinds: how an element is keyed and
// summed into the digest, and where a delta carries it (hashes are computed
// by the callers, once per element).
type elemKind[K cmp.Ordered, T any] struct {
	key  func(*T) K
	sum  func(*program.Sums, program.Key, int)
	emit func(d *openapi.ProgramDelta, add *T, remove *K)
}

var (
	groupKind = elemKind[uint32, openapi.Group]{
		key: groupID, sum: (*program.Sums).AddGroup,
		emit: func(d *openapi.ProgramDelta, add *openapi.Group, remove *uint32) {
			if remove != nil {
				d.RemoveGroups = append(d.RemoveGroups, *remove)
			}
			if add != nil {
				d.AddGroups = append(d.AddGroups, *add)
			}
		},
	}
	dnsKind = elemKind[string, openapi.DNSRecord]{
		key: (*openapi.DNSRecord).Key, sum: (*program.Sums).AddDNS,
		emit: func(d *openapi.ProgramDelta, add *openapi.DNSRecord, remove *string) {
			if remove != nil {
				d.RemoveDNS = append(d.RemoveDNS, *remove)
			}
			if add != nil {
				d.AddDNS = append(d.AddDNS, *add)
			}
		},
	}
	healthKind = elemKind[string, openapi.HealthProbe]{
		key: (*openapi.HealthProbe).Key, sum: (*program.Sums).AddHealthCheck,
		emit: func(d *openapi.ProgramDelta, add *openapi.HealthProbe, remove *string) {
			if remove != nil {
				d.RemoveHealthChecks = append(d.RemoveHealthChecks, *remove)
			}
			if add != nil {
				d.AddHealthChecks = append(d.AddHealthChecks, *add)
			}
		},
	}
)

func groupID(g *openapi.Group) uint32 { return g.ID }

// elemTxn remembers, per key touched by the running Apply, the hash of the
// element the program showed before (ok=false: none).
type elemTxn[K cmp.Ordered] map[K]elemBefore

type elemBefore struct {
	hash program.Key
	ok   bool
}

// place adds (sign 1) or removes (-1) v, whose content hash is hash, at
// h's set s, recording the key's previous state in the running Apply's t.
func place[K cmp.Ordered, T any](kind *elemKind[K, T], s *elemSet[K, T], t elemTxn[K], v *T, hash program.Key, sign int) {
	k := kind.key(v)
	if t != nil {
		if _, ok := t[k]; !ok {
			var b elemBefore
			if e := s.get(k); e != nil {
				b = elemBefore{e.hash, true}
			}
			t[k] = b
		}
	}
	if sign > 0 {
		s.add(k, *v, hash)
	} else {
		s.remove(k, hash)
	}
}

// fold turns the keys t touched into delta entries and digest sums; it
// tells whether anything changed. The delta's lists are sorted by key.
func fold[K cmp.Ordered, T any](kind *elemKind[K, T], s *elemSet[K, T], t elemTxn[K], sums *program.Sums, d *openapi.ProgramDelta) bool {
	keys := make([]K, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	changed := false
	for _, k := range keys {
		b, now := t[k], s.get(k)
		if !b.ok && now == nil || b.ok && now != nil && b.hash == now.hash {
			continue
		}
		changed = true
		var add *T
		var remove *K
		if b.ok {
			kind.sum(sums, b.hash, -1)
			remove = &k
		}
		if now != nil {
			kind.sum(sums, now.hash, 1)
			add = &now.v
		}
		kind.emit(d, add, remove)
	}
	return changed
}

// sumAll adds every element s shows to sums (after a bulk load).
func sumAll[K cmp.Ordered, T any](kind *elemKind[K, T], s *elemSet[K, T], sums *program.Sums) {
	for k := range s.m {
		kind.sum(sums, s.get(k).hash, 1)
	}
}
