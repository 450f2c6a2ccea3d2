package dns

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
)

// table is the names of the records applied so far. Update changes it in
// place (add and remove are exact inverses of each other, and the result
// does not depend on the order records were added in), under the Server's
// write lock; lookups hold its read lock.
type table struct {
	// domainOf maps each network with a local container port to its
	// domain (domains); it never changes for a table: another one is
	// rebuilt.
	domainOf map[string]string
	// nets holds each network's names, by VNI.
	nets map[int64]*netNames
	// domains are the domains served ("switchyard.local."): names under
	// them are answered here (NXDOMAIN when unknown), never forwarded.
	domains []string
	// reverse counts, for each reverse name ("5.0.60.10.in-addr.arpa."),
	// the records of any network on this host with that address: a PTR
	// query for one is never forwarded, and answered only in the
	// address's own network. An address may be in two networks
	// (overlapping ranges): the name stays until both records are gone.
	reverse map[string]int
}

// netNames are the names of one network, fully qualified and lower case.
// Each list is sorted, and may hold an entry twice (two records).
type netNames struct {
	// zones counts the network's records by zone ("<network>.<domain>.";
	// one zone unless two networks share a VNI): the network's names are
	// gone when it is empty.
	zones map[string]int
	a     map[string][]netip.Addr
	srv   map[string][]srvTarget
	ptr   map[string][]string
}

type srvTarget struct {
	port   uint16
	target string
}

func compareSRV(x, y srvTarget) int {
	return cmp.Or(cmp.Compare(x.port, y.port), strings.Compare(x.target, y.target))
}

// Protocols a service port may have, as they appear in SRV names.
var srvProto = map[string]string{"": "_tcp", "TCP": "_tcp", "UDP": "_udp", "SCTP": "_sctp"}

// domains maps each network with a local container port to its domain
// (lower case, without the trailing dot).
func domains(prog *openapi.Program) map[string]string {
	out := map[string]string{}
	if prog == nil {
		return out
	}
	for _, c := range prog.Containers {
		if d := strings.Trim(strings.ToLower(c.DNSDomain), "."); d != "" {
			if _, ok := out[c.Network]; !ok {
				out[c.Network] = d
			}
		}
	}
	return out
}

// build makes the table of records, qualified with their network's domain
// (domainOf). Records of a network without a domain are left out.
func build(records []openapi.DNSRecord, domainOf map[string]string) *table {
	t := &table{domainOf: domainOf, nets: map[int64]*netNames{}, reverse: map[string]int{}}
	for _, d := range domainOf {
		if !slices.Contains(t.domains, d+".") {
			t.domains = append(t.domains, d+".")
		}
	}
	slices.Sort(t.domains)
	for i := range records {
		if e, ok := t.entry(&records[i]); ok {
			t.add(e)
		}
	}
	return t
}

// entry is what one record puts in a table.
type entry struct {
	vni        int64
	zone, name string
	ip         netip.Addr
	rev        string     // the address's reverse name ("" if none)
	srv        []srvEntry // named service ports
}

type srvEntry struct {
	name string // "_<port>._<proto>.<name>"
	port uint16
}

// entry returns r's entry; false: r puts nothing in t (no domain, no
// name, a bad address). It only reads t.domainOf.
func (t *table) entry(r *openapi.DNSRecord) (entry, bool) {
	d, ok := t.domainOf[r.Network]
	if !ok || r.Name == "" {
		return entry{}, false
	}
	ip, err := netip.ParseAddr(r.IP)
	if err != nil {
		return entry{}, false
	}
	zone := strings.ToLower(r.Network) + "." + d + "."
	e := entry{vni: r.VNI, zone: zone, name: strings.ToLower(r.Name) + "." + zone, ip: ip}
	if rev, err := dns.ReverseAddr(ip.String()); err == nil {
		e.rev = rev
	}
	if r.Kind != openapi.DNSService {
		return e, true
	}
	for _, p := range r.Ports {
		proto, ok := srvProto[strings.ToUpper(p.Protocol)]
		if p.Name == "" || !ok || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		e.srv = append(e.srv, srvEntry{name: "_" + strings.ToLower(p.Name) + "." + proto + "." + e.name, port: uint16(p.Port)})
	}
	return e, true
}

// add puts e's names in t.
func (t *table) add(e entry) {
	n := t.nets[e.vni]
	if n == nil {
		n = &netNames{zones: map[string]int{}, a: map[string][]netip.Addr{}, srv: map[string][]srvTarget{}, ptr: map[string][]string{}}
		t.nets[e.vni] = n
	}
	n.zones[e.zone]++
	insert(n.a, e.name, e.ip, netip.Addr.Compare)
	if e.rev != "" {
		insert(n.ptr, e.rev, e.name, strings.Compare)
		t.reverse[e.rev]++
	}
	for _, s := range e.srv {
		insert(n.srv, s.name, srvTarget{port: s.port, target: e.name}, compareSRV)
	}
}

// remove takes out of t the names add(e) put in it: one of each, another
// record may have the same.
func (t *table) remove(e entry) {
	n := t.nets[e.vni]
	if n == nil || n.zones[e.zone] == 0 {
		return // never added: cannot happen
	}
	if n.zones[e.zone]--; n.zones[e.zone] == 0 {
		delete(n.zones, e.zone)
	}
	if len(n.zones) == 0 {
		delete(t.nets, e.vni) // its last record: every list is empty
		if e.rev != "" {
			decrement(t.reverse, e.rev)
		}
		return
	}
	drop(n.a, e.name, e.ip, netip.Addr.Compare)
	if e.rev != "" {
		drop(n.ptr, e.rev, e.name, strings.Compare)
		decrement(t.reverse, e.rev)
	}
	for _, s := range e.srv {
		drop(n.srv, s.name, srvTarget{port: s.port, target: e.name}, compareSRV)
	}
}

// insert adds v to m[k], kept sorted by compare.
func insert[T any](m map[string][]T, k string, v T, compare func(T, T) int) {
	l := m[k]
	i, _ := slices.BinarySearchFunc(l, v, compare)
	m[k] = slices.Insert(l, i, v)
}

// drop removes one v from m[k], and m[k] when it is empty.
func drop[T any](m map[string][]T, k string, v T, compare func(T, T) int) {
	l := m[k]
	i, found := slices.BinarySearchFunc(l, v, compare)
	if !found {
		return
	}
	if l = slices.Delete(l, i, i+1); len(l) == 0 {
		delete(m, k)
	} else {
		m[k] = l
	}
}

func decrement(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// authoritative reports whether name (lower case, fully qualified) is
// under a served domain.
func (t *table) authoritative(name string) (domain string, ok bool) {
	for _, d := range t.domains {
		if name == d || strings.HasSuffix(name, "."+d) {
			return d, true
		}
	}
	return "", false
}

// exists reports whether name is a zone of n, or a name between a zone
// and a record (a record's own name is in n.a, n.srv or n.ptr).
func (n *netNames) exists(name string) bool {
	if n.zones[name] > 0 {
		return true
	}
	for z := range n.zones {
		if strings.HasSuffix(name, "."+z) {
			return n.hasBelow(name)
		}
	}
	return false
}

// hasBelow reports whether some record's name ends in "."+name.
func (n *netNames) hasBelow(name string) bool {
	for k := range n.a {
		if strings.HasSuffix(k, "."+name) {
			return true
		}
	}
	for k := range n.srv {
		if strings.HasSuffix(k, "."+name) {
			return true
		}
	}
	return false
}
