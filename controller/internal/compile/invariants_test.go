package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

var gotoRE = regexp.MustCompile(`(?:goto_table:|resubmit\(,?|ct\(table=)(\d+)`)

// checkInvariants checks the table invariants of every program compiled from
// s, and checks the programs against an independent reading of s.
func checkInvariants(t *testing.T, s *Snapshot, progs map[string]*openapi.Program) {
	t.Helper()
	hosts := map[string]openapi.Host{}
	for _, h := range s.Hosts {
		hosts[h.Name] = h
	}
	if len(progs) != len(hosts) {
		t.Fatalf("%d programs for %d hosts", len(progs), len(hosts))
	}
	// The oracle: which containers are compiled, which networks are where.
	nets := map[string]*netParams{}
	for i := range s.Networks {
		if p := parseNetwork(&s.Networks[i]); p != nil {
			nets[s.Networks[i].Name] = p
		}
	}
	type active struct {
		c       openapi.Container
		ip, mac string
	}
	byNet := map[string][]active{}
	present := map[string]map[string]bool{} // host -> networks
	for _, c := range s.Containers {
		n := nets[c.Network]
		if _, ok := hosts[c.Host]; !ok || n == nil {
			continue
		}
		ip, mac, ok := parseContainer(&c, n)
		if !ok {
			continue
		}
		byNet[c.Network] = append(byNet[c.Network], active{c, ip, mac})
		if present[c.Host] == nil {
			present[c.Host] = map[string]bool{}
		}
		present[c.Host][c.Network] = true
	}
	for host, netsThere := range pinsOracle(s, nets) {
		for n := range netsThere {
			if present[host] == nil {
				present[host] = map[string]bool{}
			}
			present[host][n] = true
		}
	}

	for name := range hosts {
		p := progs[name]
		if p == nil {
			t.Fatalf("no program for host %s", name)
		}
		checkStructure(t, p)

		// Ports: exactly the local containers, tunnels to the hosts sharing
		// a network.
		var wantCtrs []string
		for n := range present[name] {
			for _, a := range byNet[n] {
				if a.c.Host == name {
					wantCtrs = append(wantCtrs, a.c.ID)
				}
			}
		}
		var gotCtrs []string
		for _, cp := range p.Containers {
			gotCtrs = append(gotCtrs, cp.ID)
			if n := nets[cp.Network]; cp.MTU != n.mtu || cp.Gateway != n.gw || cp.PrefixLen != n.prefixLen {
				t.Errorf("%s: port %s has mtu/gw/prefix %d/%s/%d", name, cp.Name, cp.MTU, cp.Gateway, cp.PrefixLen)
			}
			// 7 of its own, and its ARP answer and route unless the
			// network's derived ones cover it.
			want := 7
			if cp.MAC != DerivedMAC(cp.IP) {
				want = 9
			}
			if got := countCookie(p, Owner(KindContainer, cp.ID)); got != want {
				t.Errorf("%s: container %s owns %d flows, want %d", name, cp.Container, got, want)
			}
		}
		slices.Sort(wantCtrs)
		slices.Sort(gotCtrs)
		if !slices.Equal(wantCtrs, gotCtrs) {
			t.Errorf("%s: container ports %v, want %v", name, gotCtrs, wantCtrs)
		}
		var wantPeers []string
		for peer := range hosts {
			for n := range present[name] {
				if peer != name && present[peer][n] {
					wantPeers = append(wantPeers, peer)
					break
				}
			}
		}
		var gotPeers []string
		for _, tp := range p.Tunnels {
			gotPeers = append(gotPeers, tp.PeerHost)
			peer := hosts[tp.PeerHost]
			if tp.RemoteIP != peer.Address || tp.Type != TunnelType(hosts[name].TunnelType, peer.TunnelType) {
				t.Errorf("%s: tunnel %+v does not match peer %+v", name, tp, peer)
			}
		}
		slices.Sort(wantPeers)
		slices.Sort(gotPeers)
		if !slices.Equal(wantPeers, gotPeers) {
			t.Errorf("%s: tunnels to %v, want %v", name, gotPeers, wantPeers)
		}
		// DNS: every compiled container of every network present here
		// (services are checked in services_test.go).
		var wantDNS, gotDNS []string
		for n := range present[name] {
			for _, a := range byNet[n] {
				wantDNS = append(wantDNS, n+"/"+a.c.Name+"="+a.ip)
			}
		}
		for _, r := range p.DNS {
			if r.Kind == openapi.DNSContainer {
				gotDNS = append(gotDNS, r.Network+"/"+r.Name+"="+r.IP)
			}
		}
		slices.Sort(wantDNS)
		slices.Sort(gotDNS)
		if !slices.Equal(wantDNS, gotDNS) {
			t.Errorf("%s: DNS records %v, want %v", name, gotDNS, wantDNS)
		}
		// Base flows, plus the delivery to its gateway port (External
		// access) when the host has a gateway.
		wantBase := len(baseFlows)
		if p.Gateway != nil {
			wantBase++
		}
		if len(present[name]) == 0 && len(p.Flows) != wantBase {
			t.Errorf("%s: host without containers has %d flows, want the %d base flows", name, len(p.Flows), wantBase)
		}

		// ARP responder and L2 forwarding know every container of every
		// network present here, on any host, and the gateways.
		matches := map[string]string{}
		for _, f := range p.Flows {
			matches[strconv.Itoa(f.Table)+" "+f.Match] = f.Actions
		}
		for n := range present[name] {
			np := nets[n]
			want := map[string]string{np.gw: np.gwMAC}
			for _, a := range byNet[n] {
				want[a.ip] = a.mac
				l2 := np.reg + ",dl_dst=" + a.mac
				if a.c.Host != name {
					l2 = np.reg + "," + matchFromLocal + ",dl_dst=" + a.mac
				}
				if _, ok := matches[strconv.Itoa(int(TableL2Forwarding))+" "+l2]; !ok {
					// Else by its host's block, to that host's tunnel.
					b := containerBlock(&a.c, np, a.ip, a.mac == DerivedMAC(a.ip))
					act, ok := "", false
					if b.IsValid() && a.c.Host != name {
						f := blockFlow(np, a.c.Host, b)
						act, ok = matches[strconv.Itoa(f.Table)+" "+f.Match]
					}
					if !ok || !strings.Contains(act, TunnelPortName(a.c.Host)) {
						t.Errorf("%s: no L2 flow for %s", name, a.c.Name)
					}
				}
			}
			for ip, mac := range want {
				act, ok := matches[strconv.Itoa(int(TableARPResponder))+" "+np.reg+",arp,arp_op=1,arp_tpa="+ip]
				if !ok && mac == DerivedMAC(ip) {
					// The network's answer with the MAC derived from ip.
					act, ok = matches[strconv.Itoa(int(TableARPResponder))+" "+np.reg+",arp,arp_op=1,arp_tpa="+np.prefix.String()]
					ok = ok && act == arpDerived
				} else {
					ok = ok && strings.Contains(act, "set_field:"+mac+"->arp_sha")
				}
				if !ok {
					t.Errorf("%s: ARP responder does not answer %s is-at %s in %s", name, ip, mac, n)
				}
			}
		}
	}
}

// checkStructure checks what must hold for any program.
func checkStructure(t *testing.T, p *openapi.Program) {
	t.Helper()
	if d := program.Digest(p); d != p.Digest {
		t.Errorf("%s: digest %s, content says %s", p.Host, p.Digest, d)
	}
	if !program.FlowsSorted(p.Flows) {
		t.Errorf("%s: flows not sorted", p.Host)
	}
	ports := map[string]bool{}
	for _, tp := range p.Tunnels {
		ports[tp.Name] = true
	}
	for _, cp := range p.Containers {
		ports[cp.Name] = true
	}
	if len(ports) != len(p.Tunnels)+len(p.Containers) {
		t.Errorf("%s: duplicate port names", p.Host)
	}
	ports[openapi.DNSPortName] = true // the agent's own ports
	if p.Gateway != nil {
		ports[openapi.GatewayPortName] = true
	}
	for name := range ports {
		if len(name) > MaxPortName {
			t.Errorf("%s: port name %q longer than %d bytes", p.Host, name, MaxPortName)
		}
	}
	seen := map[string]bool{}
	miss := map[int]bool{}
	for i := range p.Flows {
		f := &p.Flows[i]
		line := string(program.AppendFlow(nil, f))
		if f.Table < 0 || f.Table >= int(numTables) {
			t.Errorf("%s: flow in unknown table: %s", p.Host, line)
		}
		for _, m := range gotoRE.FindAllStringSubmatch(f.Actions, -1) {
			if n, _ := strconv.Atoi(m[1]); n <= f.Table {
				t.Errorf("%s: flow goes back to table %d: %s", p.Host, n, line)
			}
		}
		for _, name := range portRefs(f) {
			if !ports[name] {
				t.Errorf("%s: flow names unknown port %q: %s", p.Host, name, line)
			}
		}
		key := strconv.Itoa(f.Table) + "/" + strconv.Itoa(f.Priority) + "/" + f.Match
		if seen[key] {
			t.Errorf("%s: two flows with table/priority/match %s", p.Host, key)
		}
		seen[key] = true
		if f.Cookie&^CookieMask != 0 {
			t.Errorf("%s: cookie beyond 48 bits: %s", p.Host, line)
		}
		if f.Priority == 0 {
			if f.Match != "" {
				t.Errorf("%s: priority-0 flow with a match: %s", p.Host, line)
			}
			miss[f.Table] = true
		}
	}
	for _, tb := range Tables() {
		if !miss[int(tb)] {
			t.Errorf("%s: table %v has no priority-0 flow", p.Host, tb)
		}
	}
}

func countCookie(p *openapi.Program, cookie uint64) int {
	n := 0
	for _, f := range p.Flows {
		if f.Cookie&CookieMask == cookie {
			n++
		}
	}
	return n
}

func TestInvariantsRandom(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		w := &randomWorld{r: rand.New(rand.NewPCG(seed, 7))}
		s := w.snapshot()
		checkInvariants(t, s, Compile(s))
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

func TestNames(t *testing.T) {
	if got := ContainerPortName("0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011"); got != "syc0f1e2d3c4b5a" {
		t.Errorf("ContainerPortName = %q", got)
	}
	if got := ContainerPortName("short"); len(got) != MaxPortName || !strings.HasPrefix(got, "syc") {
		t.Errorf("ContainerPortName(short) = %q", got)
	}
	if a, b := TunnelPortName("h1"), TunnelPortName("h2"); a == b || len(a) != MaxPortName || a != TunnelPortName("h1") {
		t.Errorf("TunnelPortName: %q %q", a, b)
	}
	if mac, err := GatewayMAC("10.10.0.1"); err != nil || mac != "0a:58:0a:0a:00:01" {
		t.Errorf("GatewayMAC = %q, %v", mac, err)
	}
	if _, err := GatewayMAC("fd00::1"); err == nil {
		t.Error("GatewayMAC accepts IPv6")
	}
	if Owner(KindContainer, "x") == Owner(KindNetwork, "x") || Owner(KindHost, "")&^CookieMask != 0 {
		t.Error("Owner")
	}
	for tb := TableClassifier; tb < numTables; tb++ {
		if tb.String() == "" || strings.HasPrefix(tb.String(), "Table") {
			t.Errorf("table %d has no name", tb)
		}
	}
	if TunnelType("vxlan", "vxlan") != "vxlan" || TunnelType("vxlan", "geneve") != "geneve" || TunnelType("", "vxlan") != "geneve" {
		t.Error("TunnelType")
	}
}

// pinsOracle is where external access keeps networks present without a
// container, by host: every host with an address for a network with a
// Cluster node port; the holder of a network's egress IP (the Ready host
// with an address whose SHA-256 of "network\x00host" is largest).
func pinsOracle(s *Snapshot, nets map[string]*netParams) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(h, n string) {
		if out[h] == nil {
			out[h] = map[string]bool{}
		}
		out[h][n] = true
	}
	valid := func(h openapi.Host) bool { a, err := netip.ParseAddr(h.Address); return err == nil && a.Is4() }
	for _, sv := range s.Services {
		if parseService(sv).nodePorts() && sv.ExternalTrafficPolicy != openapi.TrafficLocal && nets[sv.Network] != nil {
			for _, h := range s.Hosts {
				if valid(h) {
					add(h.Name, sv.Network)
				}
			}
		}
	}
	for _, n := range s.Networks {
		if nets[n.Name] == nil || egressIP(&n) == "" {
			continue
		}
		best, bestV := "", ""
		for _, h := range s.Hosts {
			if h.Status == openapi.HostNotReady || !valid(h) {
				continue
			}
			sum := sha256.Sum256([]byte(n.Name + "\x00" + h.Name))
			if v := hex.EncodeToString(sum[:8]); best == "" || v > bestV {
				best, bestV = h.Name, v
			}
		}
		if best != "" {
			add(best, n.Name)
		}
	}
	return out
}
