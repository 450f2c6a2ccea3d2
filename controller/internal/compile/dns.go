package compile

import (
	"slices"
	"strings"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// DNS records are a network's: the same on every host where it is present
// (its containers and compiled services). They are kept once per network,
// not per host; a host's records are those of the networks present on it,
// and its digest sums and deltas follow from the network's changes and the
// network's arrival on or departure from the host.

// dnsTxn remembers, per record key a host's program touched in the
// running Apply, the network it belongs to and what the host showed before.
type dnsTxn map[string]dnsBefore

type dnsBefore struct {
	n      *netState
	before elemBefore
}

// recordDNS notes key k of network n on h before it changes; shown tells
// whether h shows n's records now (n is present on h).
func (c *Compiler) recordDNS(h *hostState, n *netState, k string, shown bool) {
	t := c.txnFor(h)
	if t == nil {
		return
	}
	if b, ok := t.dns[k]; ok {
		b.n = n // the network object may have been replaced meanwhile
		t.dns[k] = b
		return
	}
	var b elemBefore
	if shown {
		if e := n.dns.get(k); e != nil {
			b = elemBefore{e.hash, true}
		}
	}
	t.dns[k] = dnsBefore{n: n, before: b}
}

// netDNS adds (1) or removes (-1) record r of network n.
func (c *Compiler) netDNS(n *netState, r *openapi.DNSRecord, sign int) {
	k := r.Key()
	for name := range n.present {
		c.recordDNS(c.hosts[name], n, k, true)
	}
	hash := program.DNSKey(r)
	if sign > 0 {
		n.dns.add(k, *r, hash)
	} else {
		n.dns.remove(k, hash)
	}
	n.dnsSums = nil
}

// dnsPresence notes every record of n on h before n appears on h (shown
// false) or leaves it (shown true).
func (c *Compiler) dnsPresence(h *hostState, n *netState, shown bool) {
	if c.bulk {
		return
	}
	for k := range n.dns.m {
		c.recordDNS(h, n, k, shown)
	}
}

// foldDNS turns the records t touched on h into delta entries and sums.
func (c *Compiler) foldDNS(h *hostState, t dnsTxn, d *openapi.ProgramDelta) bool {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	changed := false
	for _, k := range keys {
		b := t[k]
		var now *elem[openapi.DNSRecord]
		if b.n.present[h.obj.Name] != nil && c.nets[b.n.obj.Name] == b.n {
			now = b.n.dns.get(k)
		}
		if !b.before.ok && now == nil || b.before.ok && now != nil && b.before.hash == now.hash {
			continue
		}
		changed = true
		if b.before.ok {
			h.sums.AddDNS(b.before.hash, -1)
			d.RemoveDNS = append(d.RemoveDNS, k)
		}
		if now != nil {
			h.sums.AddDNS(now.hash, 1)
			d.AddDNS = append(d.AddDNS, now.v)
		}
	}
	return changed
}

// hostNets are the networks present on h, ordered by name + "/": the
// order of their records' keys (names hold no "/").
func (c *Compiler) hostNets(h *hostState) []*netState {
	var ns []*netState
	for _, n := range c.nets {
		if n.present[h.obj.Name] != nil {
			ns = append(ns, n)
		}
	}
	slices.SortFunc(ns, func(a, b *netState) int { return strings.Compare(a.obj.Name+"/", b.obj.Name+"/") })
	return ns
}

// hostDNS lists h's records sorted by key (nil when none).
func (c *Compiler) hostDNS(h *hostState) []openapi.DNSRecord {
	ns := c.hostNets(h)
	total := 0
	for _, n := range ns {
		total += len(n.dns.m)
	}
	if total == 0 {
		return nil
	}
	out := make([]openapi.DNSRecord, 0, total)
	for _, n := range ns {
		out = append(out, n.dns.list()...)
	}
	return out
}

// sumDNS adds h's records to its sums (after a bulk load): each network's
// records are summed once, for all the hosts where it is present.
func (c *Compiler) sumDNS(h *hostState) {
	for _, n := range c.hostNets(h) {
		if n.dnsSums == nil {
			n.dnsSums = &program.Sums{}
			sumAll(&dnsKind, &n.dns, n.dnsSums)
		}
		h.sums.AddSums(n.dnsSums, 1)
	}
}
