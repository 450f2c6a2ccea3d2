package dns

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
)

// TestUpdateProperty: random sequences of record sets, applied one after
// another, leave the names a fresh build of the last set gives (the
// table's contents, and the answers to a sample of queries). The sets
// have adds, removes, moved addresses, a container and a service of the
// same name, one address in two networks, service ports changing, records
// twice, unsorted lists, and now and then another set of domains.
func TestUpdateProperty(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			s, err := New(Config{Upstreams: []string{"127.0.0.1:1"}, NetworkOf: loopbackNetworks})
			if err != nil {
				t.Fatal(err)
			}
			g := &recordGen{r: r}
			prog := &openapi.Program{Containers: g.ports(false)}
			for step := range 150 {
				g.mutate()
				if r.IntN(20) == 0 {
					prog.Containers = g.ports(r.IntN(2) == 0)
				}
				prog.DNS = g.records()
				s.Update(prog)
				dom := domains(prog)
				want := build(prog.DNS, dom)
				s.rw.RLock()
				got := dump(s.names)
				s.rw.RUnlock()
				if w := dump(want); !slices.Equal(got, w) {
					t.Fatalf("step %d: after Update\n%q\nfresh build\n%q\nrecords %+v", step, got, w, prog.DNS)
				}
				if step%10 == 9 {
					fresh, _ := New(Config{Upstreams: []string{"127.0.0.1:1"}, NetworkOf: loopbackNetworks})
					fresh.Update(prog)
					compareAnswers(t, step, s, fresh, dom)
				}
			}
			if st := s.updateStats(); st.changes < 100 || st.rebuilds > 20 {
				t.Errorf("%+v: the names were rebuilt, not changed in place", st)
			}
		})
	}
}

// recordGen makes random record sets, at most one record of a key
// (unless twice is set on it) as the controller sends them.
type recordGen struct {
	r    *rand.Rand
	recs []openapi.DNSRecord
}

var (
	genNetworks = []struct {
		name string
		vni  int64
	}{{"net1", 1}, {"net2", 2}, {"net3", 3}} // net3: no local port, no domain
	genNames = []string{"a", "b", "c", "Web", "web"}
	genIPs   = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.96.0.1", "bad"}
	genPorts = []openapi.ServicePort{{Name: "http", Port: 80, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "udp"},
		{Name: "alt", Port: 8080}, {Port: 443, Protocol: "TCP"}, {Name: "zero", Protocol: "TCP"}, {Name: "x", Port: 1, Protocol: "ICMP"}}
)

// ports are the program's local ports: net1 and net2 in
// switchyard.local, or (other) net1 in example.internal alone.
func (g *recordGen) ports(other bool) []openapi.ContainerPort {
	if other {
		return []openapi.ContainerPort{{Network: "net1", DNSDomain: "Example.Internal."}}
	}
	return []openapi.ContainerPort{{Network: "net1", DNSDomain: "switchyard.local"}, {Network: "net2", DNSDomain: "switchyard.local"}}
}

func (g *recordGen) record() openapi.DNSRecord {
	n := genNetworks[g.r.IntN(len(genNetworks))]
	rec := openapi.DNSRecord{Network: n.name, VNI: n.vni, Kind: openapi.DNSContainer,
		Name: genNames[g.r.IntN(len(genNames))], IP: genIPs[g.r.IntN(len(genIPs))]}
	if g.r.IntN(2) == 0 {
		rec.Kind = openapi.DNSService
		rec.Ports = g.servicePorts()
	}
	return rec
}

func (g *recordGen) servicePorts() []openapi.ServicePort {
	var ps []openapi.ServicePort
	for _, p := range genPorts {
		if g.r.IntN(3) == 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// mutate makes one to four changes to the set.
func (g *recordGen) mutate() {
	for range 1 + g.r.IntN(4) {
		switch op := g.r.IntN(10); {
		case op < 4 || len(g.recs) == 0: // add, twice now and then
			rec := g.record()
			if i := slices.IndexFunc(g.recs, func(o openapi.DNSRecord) bool { return o.Key() == rec.Key() }); i >= 0 && g.r.IntN(8) != 0 {
				g.recs[i] = rec
			} else {
				g.recs = append(g.recs, rec)
			}
		case op < 6: // remove
			i := g.r.IntN(len(g.recs))
			g.recs = slices.Delete(g.recs, i, i+1)
		case op < 8: // move
			g.recs[g.r.IntN(len(g.recs))].IP = genIPs[g.r.IntN(len(genIPs))]
		default: // other service ports
			i := g.r.IntN(len(g.recs))
			if g.recs[i].Kind == openapi.DNSService {
				g.recs[i].Ports = g.servicePorts()
			}
		}
	}
}

// records are the set, sorted by key (shuffled one time in four), a copy.
func (g *recordGen) records() []openapi.DNSRecord {
	out := cloneRecords(g.recs)
	if g.r.IntN(4) == 0 {
		g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	} else {
		slices.SortStableFunc(out, func(x, y openapi.DNSRecord) int { return compareKeys(&x, &y) })
	}
	return out
}

// dump is t's contents, one sorted line per name and value.
func dump(t *table) []string {
	out := []string{fmt.Sprint("domains ", t.domains)}
	for rev, c := range t.reverse {
		out = append(out, fmt.Sprint("reverse ", rev, " ", c))
	}
	for vni, n := range t.nets {
		for z, c := range n.zones {
			out = append(out, fmt.Sprint(vni, " zone ", z, " ", c))
		}
		for k, l := range n.a {
			out = append(out, fmt.Sprint(vni, " A ", k, " ", l))
		}
		for k, l := range n.srv {
			out = append(out, fmt.Sprint(vni, " SRV ", k, " ", l))
		}
		for k, l := range n.ptr {
			out = append(out, fmt.Sprint(vni, " PTR ", k, " ", l))
		}
	}
	slices.Sort(out)
	return out
}

// compareAnswers asks got and want the same queries, in every network.
func compareAnswers(t *testing.T, step int, got, want *Server, dom map[string]string) {
	t.Helper()
	var names []string
	for _, ip := range genIPs {
		if rev, err := dns.ReverseAddr(ip); err == nil {
			names = append(names, rev) // locally served: never forwarded
		}
	}
	for _, n := range genNetworks {
		d, ok := dom[n.name]
		if !ok {
			continue // not under a served domain: it would be forwarded
		}
		zone := n.name + "." + d + "."
		names = append(names, zone, "_tcp."+"a."+zone, "nope."+zone)
		for _, name := range genNames {
			names = append(names, name+"."+zone)
			for _, p := range genPorts {
				names = append(names, "_"+p.Name+"._tcp."+name+"."+zone, "_"+p.Name+"._udp."+name+"."+zone)
			}
		}
	}
	for _, local := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		for _, name := range names {
			for _, qt := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypePTR, dns.TypeANY} {
				q := new(dns.Msg)
				q.SetQuestion(name, qt)
				a, b := got.Answer(q, netip.MustParseAddr(local), true), want.Answer(q, netip.MustParseAddr(local), true)
				if a.String() != b.String() {
					t.Fatalf("step %d: %s %s at %s: after Update\n%v\nfresh\n%v", step, name, dns.TypeToString[qt], local, a, b)
				}
			}
		}
	}
}
