package dns

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
)

// table is one program's names, immutable once built: Update swaps a new
// one in atomically, so a lookup sees one program or the next, never half.
type table struct {
	// nets holds each network's names, by VNI.
	nets map[int64]*netNames
	// domains are the domains served ("switchyard.local."): names under
	// them are answered here (NXDOMAIN when unknown), never forwarded.
	domains []string
	// reverse is every reverse name ("5.0.60.10.in-addr.arpa.") of an
	// address of any network on this host: a PTR query for one is never
	// forwarded, and answered only in the address's own network.
	reverse map[string]bool
}

// netNames are the names of one network, fully qualified and lower case.
type netNames struct {
	zone string // "<network>.<domain>."
	a    map[string][]netip.Addr
	srv  map[string][]srvTarget
	ptr  map[string][]string
}

type srvTarget struct {
	port   uint16
	target string
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
	t := &table{nets: map[int64]*netNames{}, reverse: map[string]bool{}}
	for _, d := range domainOf {
		if !slices.Contains(t.domains, d+".") {
			t.domains = append(t.domains, d+".")
		}
	}
	slices.Sort(t.domains)
	for i := range records {
		r := &records[i]
		d, ok := domainOf[r.Network]
		if !ok || r.Name == "" {
			continue
		}
		ip, err := netip.ParseAddr(r.IP)
		if err != nil {
			continue
		}
		n := t.nets[r.VNI]
		if n == nil {
			n = &netNames{zone: strings.ToLower(r.Network) + "." + d + ".",
				a: map[string][]netip.Addr{}, srv: map[string][]srvTarget{}, ptr: map[string][]string{}}
			t.nets[r.VNI] = n
		}
		name := strings.ToLower(r.Name) + "." + n.zone
		n.a[name] = append(n.a[name], ip)
		if rev, err := dns.ReverseAddr(ip.String()); err == nil {
			n.ptr[rev] = append(n.ptr[rev], name)
			t.reverse[rev] = true
		}
		if r.Kind != openapi.DNSService {
			continue
		}
		for _, p := range r.Ports {
			proto, ok := srvProto[strings.ToUpper(p.Protocol)]
			if p.Name == "" || !ok || p.Port <= 0 || p.Port > 65535 {
				continue
			}
			s := "_" + strings.ToLower(p.Name) + "." + proto + "." + name
			n.srv[s] = append(n.srv[s], srvTarget{port: uint16(p.Port), target: name})
		}
	}
	return t
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

// sameRecords reports whether a and b are the same records in the same order.
func sameRecords(a, b []openapi.DNSRecord) bool {
	return slices.EqualFunc(a, b, func(x, y openapi.DNSRecord) bool {
		return x.Network == y.Network && x.VNI == y.VNI && x.Kind == y.Kind && x.Name == y.Name && x.IP == y.IP &&
			slices.Equal(x.Ports, y.Ports)
	})
}

// cloneRecords copies records, their ports too.
func cloneRecords(records []openapi.DNSRecord) []openapi.DNSRecord {
	out := slices.Clone(records)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
	}
	return out
}
