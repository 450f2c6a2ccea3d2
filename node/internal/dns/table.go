package dns

import (
	"net/netip"
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

// build makes the table of prog: its DNS records, qualified with the
// domain of a local container port of the same network. Records of a
// network with no such port (no domain known) are left out.
func build(prog *openapi.Program) *table {
	t := &table{nets: map[int64]*netNames{}, reverse: map[string]bool{}}
	if prog == nil {
		return t
	}
	domainOf := map[string]string{}
	seenDomain := map[string]bool{}
	for _, c := range prog.Containers {
		d := strings.Trim(strings.ToLower(c.DNSDomain), ".")
		if d == "" {
			continue
		}
		if _, ok := domainOf[c.Network]; !ok {
			domainOf[c.Network] = d
		}
		if !seenDomain[d] {
			seenDomain[d] = true
			t.domains = append(t.domains, d+".")
		}
	}
	for i := range prog.DNS {
		r := &prog.DNS[i]
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
