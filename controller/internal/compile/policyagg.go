package compile

import (
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// Policy flows are shared: a conjunction clause flow (table, priority,
// match) may serve many rules, and must then carry all their conjunction
// actions in ONE flow (OpenFlow keeps one flow per table, priority and
// match). So policies do not own flows: each policy places contributions
// on hosts, and each host merges the contributions to a key into one flow.

// polKey is where a policy flow goes: its table, priority and match.
type polKey struct {
	table Table
	prio  int
	match string
}

// contrib is one policy's share of the flow at key: a conjunction action
// (cookie 0), or a verdict (the actions, with the rule's cookie) for a
// conj_id flow or an isolation drop.
type contrib struct {
	key    polKey
	act    string
	cookie uint64
}

type contribVal struct {
	act    string
	cookie uint64
}

// aggFlow is the merged flow at one key of a host: how many times each
// contribution is placed, and the flow rendered from them (0 or 1 flows).
type aggFlow struct {
	n     map[contribVal]int
	rec   []flowRec
	dirty bool
}

// render is the flow of key k from its contributions: a verdict if there is
// one (the smallest cookie wins if several differ, which only happens when
// two rules share an isolation drop or a conjunction id collides), else
// the sorted conjunction actions with the clause cookie.
func (a *aggFlow) render(k polKey) []flowRec {
	var conj []string
	var best *contribVal
	for v := range a.n {
		if v.cookie == 0 {
			conj = append(conj, v.act)
			continue
		}
		if best == nil || v.cookie < best.cookie || v.cookie == best.cookie && v.act < best.act {
			vv := v
			best = &vv
		}
	}
	switch {
	case best != nil:
		return []flowRec{mkFlow(k.table, k.prio, best.cookie, k.match, best.act)}
	case len(conj) > 0:
		slices.Sort(conj)
		return []flowRec{mkFlow(k.table, k.prio, clauseCookie, k.match, strings.Join(conj, ","))}
	}
	return nil
}

// putPolicy adds or replaces a policy; its flows are recomputed when the
// running Apply (or Full) finishes.
func (c *Compiler) putPolicy(p openapi.Policy) {
	old := c.policies[p.ID]
	s := parsePolicy(p)
	if old != nil {
		s.placed = old.placed
		c.unindexPolicy(old)
	}
	c.policies[p.ID] = s
	c.polByNet[p.Network] = ensure(c.polByNet[p.Network])
	c.polByNet[p.Network][p.ID] = s
	c.markPolicy(s)
	if old != nil && old.dirty {
		delete(c.dirtyPols, old) // replaced: s took over its placements
	}
}

func (c *Compiler) deletePolicy(id string) {
	s := c.policies[id]
	if s == nil {
		return
	}
	delete(c.policies, id)
	c.unindexPolicy(s)
	s.ok = false // compiles nothing: the flush removes its placements
	c.markPolicy(s)
}

func ensure(m map[string]*polState) map[string]*polState {
	if m == nil {
		return map[string]*polState{}
	}
	return m
}

func (c *Compiler) unindexPolicy(s *polState) {
	if m := c.polByNet[s.obj.Network]; m != nil && m[s.obj.ID] == s {
		delete(m, s.obj.ID)
		if len(m) == 0 {
			delete(c.polByNet, s.obj.Network)
		}
	}
}

func (c *Compiler) markPolicy(s *polState) {
	if !s.dirty {
		s.dirty = true
		c.dirtyPols[s] = true
	}
}

// touchPolicies marks the policies of a network that a container with these
// labels matters to (selected, or a peer) when it appears in, leaves or
// changes in the network's compiled containers.
func (c *Compiler) touchPolicies(network string, labels map[string]string) {
	for _, s := range c.polByNet[network] {
		if !s.dirty && s.concerns(labels) {
			c.markPolicy(s)
		}
	}
}

// flushPolicies recomputes the placements of every marked policy and
// merges the changes into the hosts' policy flows.
func (c *Compiler) flushPolicies() {
	if len(c.dirtyPols) == 0 {
		return
	}
	type hk struct {
		h *hostState
		k polKey
	}
	var touched []hk
	place := func(h *hostState, cs []contrib, sign int) {
		for i := range cs {
			k := cs[i].key
			a := h.pol[k]
			if a == nil {
				a = &aggFlow{n: map[contribVal]int{}}
				h.pol[k] = a
			}
			v := contribVal{cs[i].act, cs[i].cookie}
			if a.n[v] += sign; a.n[v] == 0 {
				delete(a.n, v)
			}
			if !a.dirty {
				a.dirty = true
				touched = append(touched, hk{h, k})
			}
		}
	}
	for _, s := range slices.SortedFunc(maps.Keys(c.dirtyPols), func(a, b *polState) int {
		return strings.Compare(a.obj.ID, b.obj.ID)
	}) {
		next := c.contribs(s)
		for h, cs := range s.placed {
			if c.hosts[h.obj.Name] == h { // else the host left: its flows went with it
				place(h, cs, -1)
			}
		}
		for h, cs := range next {
			place(h, cs, 1)
		}
		s.placed, s.dirty = next, false
	}
	clear(c.dirtyPols)
	for _, t := range touched {
		a := t.h.pol[t.k]
		a.dirty = false
		rec := a.render(t.k)
		if len(rec) != len(a.rec) || len(rec) == 1 && rec[0].key != a.rec[0].key {
			c.addFlows(t.h, a.rec, -1)
			c.addFlows(t.h, rec, 1)
			a.rec = rec
		}
		if len(a.n) == 0 {
			delete(t.h.pol, t.k)
		}
	}
}
