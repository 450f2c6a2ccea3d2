package compile

import (
	"maps"
	"slices"
	"strconv"
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

// pkey is an interned polKey (Compiler.intern): contributions refer to
// keys by pointer, so hashing a match string happens once per rule, not
// once per host. The key holds the aggregate of every host that has a flow
// at it (a short list, a map once it grows); it is forgotten when none is
// left.
type pkey struct {
	polKey
	aggs   []hostAgg
	byHost map[*hostState]*aggFlow
}

type hostAgg struct {
	h *hostState
	a *aggFlow
}

const pkeySmall = 16

func (k *pkey) agg(h *hostState) *aggFlow {
	if k.byHost != nil {
		return k.byHost[h]
	}
	for _, x := range k.aggs {
		if x.h == h {
			return x.a
		}
	}
	return nil
}

func (k *pkey) setAgg(h *hostState, a *aggFlow) {
	if k.byHost != nil {
		k.byHost[h] = a
		return
	}
	k.aggs = append(k.aggs, hostAgg{h, a})
	if len(k.aggs) > pkeySmall {
		k.byHost = make(map[*hostState]*aggFlow, len(k.aggs))
		for _, x := range k.aggs {
			k.byHost[x.h] = x.a
		}
		k.aggs = nil
	}
}

func (k *pkey) delAgg(h *hostState) {
	if k.byHost != nil {
		delete(k.byHost, h)
		return
	}
	for i, x := range k.aggs {
		if x.h == h {
			k.aggs[i] = k.aggs[len(k.aggs)-1]
			k.aggs[len(k.aggs)-1] = hostAgg{}
			k.aggs = k.aggs[:len(k.aggs)-1]
			return
		}
	}
}

func (k *pkey) hosts() int { return len(k.aggs) + len(k.byHost) }

// each calls f for every host's aggregate at k.
func (k *pkey) each(f func(h *hostState, a *aggFlow)) {
	for _, x := range k.aggs {
		f(x.h, x.a)
	}
	for h, a := range k.byHost {
		f(h, a)
	}
}

// contrib is one policy's share of the flow at key.
type contrib struct {
	key *pkey
	val contribVal
}

// contribVal is a conjunction action (conj set, see conjVal) or a verdict:
// the rule's (or the isolation's) cookie, pass or drop.
type contribVal struct {
	conj   uint64
	cookie uint64
	pass   bool
	log    bool // a verdict that also logs (see logAction)
}

// conjVal packs conjunction(id, k/n) into a contribVal.conj.
func conjVal(id uint32, k, n int) uint64 { return uint64(id)<<16 | uint64(k)<<8 | uint64(n) }

func appendConj(b []byte, v uint64) []byte {
	b = append(b, "conjunction("...)
	b = strconv.AppendUint(b, v>>16, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, v>>8&0xff, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, v&0xff, 10)
	return append(b, ')')
}

type valCount struct {
	v contribVal
	n int
}

// aggFlow is the merged flow at one key of a host: how many times each
// contribution is placed (a short list, a map once it grows), and the flow
// rendered from them (0 or 1 flows).
type aggFlow struct {
	vals  []valCount
	big   map[contribVal]int
	rec   []flowRec
	dirty bool
	// inline backs vals and rec until they grow or (rec) an Apply
	// replaces the flow, so most keys cost one allocation.
	inline [2]valCount
	recBuf [1]flowRec
}

const aggSmall = 16

func (a *aggFlow) add(v contribVal, d int) {
	if a.big != nil {
		if a.big[v] += d; a.big[v] == 0 {
			delete(a.big, v)
		}
		return
	}
	for i := range a.vals {
		if a.vals[i].v == v {
			if a.vals[i].n += d; a.vals[i].n == 0 {
				a.vals[i] = a.vals[len(a.vals)-1]
				a.vals = a.vals[:len(a.vals)-1]
			}
			return
		}
	}
	a.vals = append(a.vals, valCount{v, d})
	if len(a.vals) > aggSmall {
		a.big = make(map[contribVal]int, len(a.vals))
		for _, x := range a.vals {
			a.big[x.v] = x.n
		}
		a.vals = nil
	}
}

func (a *aggFlow) empty() bool { return len(a.vals) == 0 && len(a.big) == 0 }

// render is the flow of key k from its contributions: a verdict if there is
// one (the smallest cookie wins if several differ, which only happens when
// two rules share an isolation drop or a conjunction id collides), else
// the conjunction actions in order with the clause cookie; ok is false when
// nothing is placed at k. scratch is reused between calls.
func (a *aggFlow) render(k *pkey, scratch *renderScratch) (f flowRec, ok bool) {
	conj := scratch.conj[:0]
	var best contribVal
	visit := func(v contribVal) {
		if v.cookie == 0 {
			conj = append(conj, v.conj)
		} else if best.cookie == 0 || v.cookie < best.cookie || v.cookie == best.cookie && !v.pass {
			best = v
		}
	}
	for _, x := range a.vals {
		visit(x.v)
	}
	for v := range a.big {
		visit(v)
	}
	scratch.conj = conj
	switch {
	case best.cookie != 0:
		act := actDrop
		if best.pass {
			act = passAct[k.table]
		}
		if best.log {
			b := logAction(scratch.b[:0], best.cookie, best.pass, k.table)
			if best.pass {
				b = append(append(b, ','), act...)
			}
			scratch.b = b
			act = string(b)
		}
		return mkFlow(k.table, k.prio, best.cookie, k.match, act), true
	case len(conj) > 0:
		slices.Sort(conj)
		b := scratch.b[:0]
		for i, v := range conj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendConj(b, v)
		}
		scratch.b = b
		return mkFlow(k.table, k.prio, clauseCookie, k.match, string(b)), true
	}
	return flowRec{}, false
}

type renderScratch struct {
	conj []uint64
	b    []byte
}

// passAct is the verdict "allow" of each table: continue at the next.
var passAct = func() (a [numTables]string) {
	for t := range a {
		a[t] = gotoTable(Table(t) + 1)
	}
	return a
}()

// intern returns the key's shared pointer.
func (c *Compiler) intern(k polKey) *pkey {
	p := c.pkeys[k]
	if p == nil {
		p = &pkey{polKey: k}
		c.pkeys[k] = p
	}
	return p
}

// dropAgg removes h's aggregate at k, and k once no host has one.
func (c *Compiler) dropAgg(k *pkey, h *hostState) {
	k.delAgg(h)
	if k.hosts() == 0 {
		delete(c.pkeys, k.polKey)
	}
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
		k *pkey
		a *aggFlow
	}
	var touched []hk
	add := func(h *hostState, cs []contrib, sign int) {
		for i := range cs {
			k := cs[i].key
			a := k.agg(h)
			if a == nil {
				a = &aggFlow{}
				a.vals = a.inline[:0]
				k.setAgg(h, a)
			}
			a.add(cs[i].val, sign)
			if !a.dirty {
				a.dirty = true
				touched = append(touched, hk{h, k, a})
			}
		}
	}
	place := func(h *hostState, p *placement, sign int) {
		add(h, p.own, sign)
		for _, cs := range p.shared {
			add(h, cs, sign)
		}
	}
	for _, s := range slices.SortedFunc(maps.Keys(c.dirtyPols), func(a, b *polState) int {
		return strings.Compare(a.obj.ID, b.obj.ID)
	}) {
		// Add the new placements before removing the old ones: a key
		// interned by contribs must not be forgotten in between.
		next := c.contribs(s)
		for h, p := range next {
			place(h, p, 1)
		}
		for h, p := range s.placed {
			if c.hosts[h.obj.Name] == h { // else the host left: its flows went with it
				place(h, p, -1)
			}
		}
		s.placed, s.dirty = next, false
	}
	clear(c.dirtyPols)
	var scratch renderScratch
	for _, t := range touched {
		a := t.a
		a.dirty = false
		f, ok := a.render(t.k, &scratch)
		switch {
		case ok && len(a.rec) == 1 && f.key == a.rec[0].key, !ok && len(a.rec) == 0:
			// unchanged
		case c.bulk:
			// Nothing refers to the old flow: render in place.
			a.rec = a.recBuf[:0]
			if ok {
				a.recBuf[0] = f
				a.rec = a.recBuf[:1]
			}
		default:
			// The running Apply keeps pointers to the old flow.
			c.addFlows(t.h, a.rec, -1)
			a.rec = nil
			if ok {
				a.rec = []flowRec{f}
			}
			c.addFlows(t.h, a.rec, 1)
		}
		if a.empty() {
			c.dropAgg(t.k, t.h)
		}
	}
}

// dropHostPolicies forgets the policy flows of a host that leaves (there
// are none once its containers are gone and the policies flushed, unless
// the bookkeeping is wrong).
func (c *Compiler) dropHostPolicies(h *hostState) {
	for _, k := range c.pkeys {
		if k.agg(h) != nil {
			c.dropAgg(k, h)
		}
	}
}
