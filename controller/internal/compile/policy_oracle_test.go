package compile

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// This file checks compiled policy tables against the contract's semantics
// (POLICY-CONTRACT, docs/policy.md), read independently of the compiler: a
// small interpreter of the OpenFlow subset the policy tables use, and an
// oracle that evaluates the policies directly.

// Random policies for randomWorld.

var (
	worldSelectors = []string{"", "app=a", "ns in (x,y)", "app!=b", "ns=z,app=c", "!app", "app in ("}
	worldCIDRs     = []openapi.PolicyPeer{
		{CIDR: "10.1.0.0/16", Except: []string{"10.1.0.0/30"}},
		{CIDR: "10.2.0.8/29"},
		{CIDR: "0.0.0.0/0", Except: []string{"10.3.0.0/16", "192.0.2.0/25"}},
		{CIDR: "192.0.2.0/24"},
		{CIDR: "10.1.0.5/32"},
	}
	worldPorts = []openapi.PolicyPort{
		{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 80, EndPort: 81}, {Port: 81},
		{Protocol: "ICMP"}, {Protocol: "SCTP"}, {Protocol: "TCP", Port: 70, EndPort: 90},
		{Protocol: "UDP"}, {Protocol: "TCP", Port: 1000, EndPort: 2047},
	}
	worldPrios = []int{1, 5, 5, 1000, 1000, 10000, 0}
)

func (w *randomWorld) labels() map[string]string {
	l := map[string]string{}
	if k := w.r.IntN(4); k < 3 {
		l["app"] = string(rune('a' + k))
	}
	l["ns"] = string(rune('x' + w.r.IntN(3)))
	return l
}

func (w *randomWorld) policy() openapi.Policy {
	id := fmt.Sprintf("pol%d", w.r.IntN(6))
	p := openapi.Policy{
		Meta: openapi.Meta{ID: id}, Name: id, Network: worldNets[w.r.IntN(len(worldNets))],
		Selector: worldSelectors[w.r.IntN(len(worldSelectors))],
		Priority: worldPrios[w.r.IntN(len(worldPrios))], Action: openapi.ActionAllow,
	}
	if w.r.IntN(3) == 0 {
		p.Action = openapi.ActionDeny
	}
	p.Log = w.r.IntN(3) == 0
	p.Ingress, p.Egress = w.rules(), w.rules()
	return p
}

func (w *randomWorld) rules() []openapi.PolicyRule {
	switch w.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []openapi.PolicyRule{}
	}
	rules := make([]openapi.PolicyRule, 1+w.r.IntN(3))
	for i := range rules {
		r := openapi.PolicyRule{Peers: []openapi.PolicyPeer{}, Ports: []openapi.PolicyPort{}}
		for k := w.r.IntN(3); k > 0; k-- {
			if w.r.IntN(2) == 0 {
				s := worldSelectors[w.r.IntN(len(worldSelectors))]
				r.Peers = append(r.Peers, openapi.PolicyPeer{Selector: &s})
			} else {
				r.Peers = append(r.Peers, worldCIDRs[w.r.IntN(len(worldCIDRs))])
			}
		}
		for k := w.r.IntN(3); k > 0; k-- {
			r.Ports = append(r.Ports, worldPorts[w.r.IntN(len(worldPorts))])
		}
		rules[i] = r
	}
	return rules
}

// The interpreter.

// packet is what the policy tables look at.
type packet struct {
	inPort, outPort string // port names: the source (egress), the destination (ingress)
	src, dst        netip.Addr
	proto           string // tcp, udp, sctp, icmp
	port            int
}

// matches evaluates an ovs-ofctl match of the policy tables' subset on a
// new connection's packet. conj is the conj_id being searched (0: none).
func matches(t *testing.T, match string, pk packet, conj uint32) bool {
	t.Helper()
	if match == "" {
		return conj == 0
	}
	hasConj := false
	for _, part := range strings.Split(match, ",") {
		k, v, _ := strings.Cut(part, "=")
		var ok bool
		switch k {
		case "ip":
			ok = true
		case "tcp", "udp", "sctp", "icmp":
			ok = pk.proto == k
		case "in_port":
			ok = v == portRef(pk.inPort)
		case RegOutPort:
			ok = v == portRef(pk.outPort)
		case "nw_src", "nw_dst":
			a := pk.src
			if k == "nw_dst" {
				a = pk.dst
			}
			p, err := netip.ParsePrefix(v)
			if err != nil {
				p = netip.PrefixFrom(netip.MustParseAddr(v), 32)
			}
			ok = p.Contains(a)
		case "tp_dst":
			val, mask := v, "0xffff"
			if i := strings.IndexByte(v, '/'); i >= 0 {
				val, mask = v[:i], v[i+1:]
			}
			x, err1 := strconv.ParseInt(val, 0, 32)
			m, err2 := strconv.ParseInt(mask, 0, 32)
			if err1 != nil || err2 != nil {
				t.Fatalf("bad tp_dst in %q", match)
			}
			ok = int64(pk.port)&m == x&m
		case RegFlags:
			// From a local container or a tunnel, never a hairpin.
			ok = v != matchHairpin[len(RegFlags)+1:]
		case "conj_id":
			hasConj = true
			ok = v == strconv.FormatUint(uint64(conj), 10)
		case "ct_state":
			// A new connection's packet: +new+trk, not +est, +rel or +inv.
			ok = v == "+new+trk"
		default:
			t.Fatalf("interpreter does not know %q in %q", k, match)
		}
		if !ok {
			return false
		}
	}
	return hasConj == (conj != 0)
}

// lookup is OpenFlow's lookup in one table with conjunctive matches: the
// highest priority at which a plain flow matches or a conjunction completes
// (its conj_id flow then decides).
func lookup(t *testing.T, p *openapi.Program, table Table, pk packet) *openapi.Flow {
	t.Helper()
	var fs []*openapi.Flow
	for i := range p.Flows {
		if p.Flows[i].Table == int(table) {
			fs = append(fs, &p.Flows[i])
		}
	}
	slices.SortStableFunc(fs, func(a, b *openapi.Flow) int { return b.Priority - a.Priority })
	for i := 0; i < len(fs); {
		j := i
		for j < len(fs) && fs[j].Priority == fs[i].Priority {
			j++
		}
		var plain *openapi.Flow
		got := map[uint32]map[int]bool{}
		need := map[uint32]int{}
		for _, f := range fs[i:j] {
			if !strings.HasPrefix(f.Actions, "conjunction(") {
				if plain == nil && matches(t, f.Match, pk, 0) {
					plain = f
				}
				continue
			}
			if !matches(t, f.Match, pk, 0) {
				continue
			}
			for _, a := range strings.Split(f.Actions, "),") {
				var id uint32
				var k, n int
				if _, err := fmt.Sscanf(strings.TrimSuffix(a, ")"), "conjunction(%d,%d/%d", &id, &k, &n); err != nil {
					t.Fatalf("bad action %q", f.Actions)
				}
				if got[id] == nil {
					got[id] = map[int]bool{}
				}
				got[id][k], need[id] = true, n
			}
		}
		if plain != nil {
			return plain
		}
		var verdicts []*openapi.Flow
		for id, ks := range got {
			if len(ks) != need[id] {
				continue
			}
			for _, f := range fs {
				if matches(t, f.Match, pk, id) {
					verdicts = append(verdicts, f)
					break
				}
			}
		}
		if len(verdicts) > 0 {
			for _, v := range verdicts[1:] {
				if verdictOf(v.Actions) != verdictOf(verdicts[0].Actions) {
					t.Fatalf("overlapping conjunctions at priority %d disagree: %q vs %q", v.Priority, v.Actions, verdicts[0].Actions)
				}
			}
			return verdicts[0]
		}
		i = j
	}
	t.Fatalf("table %v has no flow for %+v", table, pk)
	return nil
}

// The oracle.

type verdict struct {
	pass    bool
	cookies []uint64 // the flows allowed to carry it: winning rules, isolation; none for the default pass
}

func oraclePrio(p int) int {
	switch {
	case p == 0:
		return 1000
	case p < 1:
		return 1
	case p > 10000:
		return 10000
	}
	return p
}

// oracle judges a packet between c (the direction's container) and other
// (the other end: a container of the same network or just an address).
func oracle(s *Snapshot, dir string, c openapi.Container, other netip.Addr, otherLabels map[string]string, proto string, port int) verdict {
	best, bestDeny, isolated := 0, false, false
	var cookies []uint64
	for _, p := range s.Policies {
		sel, err := selector.Parse(p.Selector)
		if p.Network != c.Network || err != nil || !sel.Matches(c.Labels) {
			continue
		}
		rules, deny := p.Ingress, p.Action == openapi.ActionDeny
		if dir == DirEgress {
			rules = p.Egress
		}
		if rules != nil && !deny {
			isolated = true
		}
		prio := oraclePrio(p.Priority)
		for i, r := range rules {
			if !peersMatch(r.Peers, other, otherLabels) || !portsMatch(r.Ports, proto, port) {
				continue
			}
			cookie := RuleCookie(p.ID, dir, i)
			switch {
			case best == 0 || prio < best || prio == best && deny && !bestDeny:
				best, bestDeny, cookies = prio, deny, []uint64{cookie}
			case prio == best && deny == bestDeny:
				cookies = append(cookies, cookie)
			}
		}
	}
	switch {
	case best != 0:
		return verdict{!bestDeny, cookies}
	case isolated:
		return verdict{false, []uint64{IsolationCookie(c.ID, dir)}}
	}
	return verdict{pass: true}
}

func peersMatch(peers []openapi.PolicyPeer, a netip.Addr, labels map[string]string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		switch {
		case p.Selector != nil && p.CIDR == "":
			sel, err := selector.Parse(*p.Selector)
			if err == nil && labels != nil && sel.Matches(labels) {
				return true
			}
		case p.Selector == nil && p.CIDR != "":
			if inPrefix(p.CIDR, a) && !slices.ContainsFunc(p.Except, func(e string) bool { return inPrefix(e, a) }) {
				return true
			}
		}
	}
	return false
}

func inPrefix(cidr string, a netip.Addr) bool {
	p, err := netip.ParsePrefix(cidr)
	return err == nil && p.Contains(a)
}

func portsMatch(ports []openapi.PolicyPort, proto string, port int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		pr := strings.ToLower(pp.Protocol)
		if pr == "" {
			pr = "tcp"
		}
		if pr != proto {
			continue
		}
		if pp.Port == 0 && pp.EndPort == 0 {
			return true
		}
		end := max(pp.EndPort, pp.Port)
		if proto != "icmp" && pp.Port >= 1 && end <= 65535 && port >= pp.Port && port <= end {
			return true
		}
	}
	return false
}

var probes = []struct {
	proto string
	port  int
}{{"tcp", 80}, {"tcp", 81}, {"udp", 80}, {"udp", 81}, {"sctp", 80}, {"icmp", 0}, {"tcp", 1000}, {"tcp", 2047}, {"tcp", 2048}}

// checkPolicies runs every probe between every pair of compiled containers
// of a network (and to and from outside addresses) through the policy
// tables of the programs and compares each verdict with the oracle's.
func checkPolicies(t *testing.T, s *Snapshot, progs map[string]*openapi.Program) (checked int) {
	t.Helper()
	hosts := map[string]bool{}
	for _, h := range s.Hosts {
		hosts[h.Name] = true
	}
	nets := map[string]*netParams{}
	for i := range s.Networks {
		if p := parseNetwork(&s.Networks[i]); p != nil {
			nets[s.Networks[i].Name] = p
		}
	}
	byNet := map[string][]openapi.Container{}
	for _, c := range s.Containers {
		if n := nets[c.Network]; n != nil && hosts[c.Host] {
			if _, _, ok := parseContainer(&c, n); ok {
				byNet[c.Network] = append(byNet[c.Network], c)
			}
		}
	}
	outside := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("10.1.0.1")}
	type end struct {
		addr   netip.Addr
		labels map[string]string
	}
	for _, ctrs := range byNet {
		for _, c := range ctrs {
			others := []end{}
			for _, o := range ctrs {
				others = append(others, end{netip.MustParseAddr(o.IP), o.Labels})
			}
			for _, a := range outside {
				others = append(others, end{a, nil})
			}
			me := netip.MustParseAddr(c.IP)
			for _, o := range others {
				for _, pr := range probes {
					for _, dir := range []string{DirEgress, DirIngress} {
						pk := packet{inPort: ContainerPortName(c.ID), src: me, dst: o.addr, proto: pr.proto, port: pr.port}
						table := TableEgressPolicy
						if dir == DirIngress {
							pk = packet{outPort: ContainerPortName(c.ID), src: o.addr, dst: me, proto: pr.proto, port: pr.port}
							table = TableIngressPolicy
						}
						f := lookup(t, progs[c.Host], table, pk)
						want := oracle(s, dir, c, o.addr, o.labels, pr.proto, pr.port)
						verdict := verdictOf(f.Actions)
						if verdict != f.Actions {
							checkLogAction(t, strings.TrimSuffix(strings.TrimSuffix(f.Actions, verdict), ","), f.Cookie, verdict != actDrop, table)
						}
						pass := verdict == gotoTable(table+1)
						if pass != want.pass || verdict != actDrop && !pass {
							t.Fatalf("%s of %s (%s) with %v %s/%d: flow %q passes=%v, oracle says %v",
								dir, c.Name, c.IP, o.addr, pr.proto, pr.port, f.Match+" actions="+f.Actions, pass, want.pass)
						}
						// A new connection's packet: a rule decides by its
						// +new flow (ConnCookie), isolation by its drop.
						rc := f.Cookie & CookieMask &^ CookieConn
						if f.Cookie&CookieMask != 0 && !slices.Contains(want.cookies, rc) ||
							f.Cookie == 0 && len(want.cookies) != 0 ||
							f.Cookie&CookieCounted != 0 && f.Cookie&CookieConn == 0 {
							t.Fatalf("%s of %s with %v %s/%d: verdict by cookie %#x, want one of %#x (| CookieConn)",
								dir, c.Name, o.addr, pr.proto, pr.port, f.Cookie, want.cookies)
						}
						if logged := f.Cookie&CookieCounted != 0 && loggedRules(s)[rc]; logged != (verdict != f.Actions) {
							t.Fatalf("%s of %s with %v %s/%d: flow %q, the rule's policy has log %v",
								dir, c.Name, o.addr, pr.proto, pr.port, f.Actions, logged)
						}
						checked++
					}
				}
			}
		}
	}
	return checked
}

// loggedRules are the RuleCookies of the rules of logged policies.
func loggedRules(s *Snapshot) map[uint64]bool {
	m := map[uint64]bool{}
	for _, p := range s.Policies {
		for _, d := range []struct {
			dir   string
			rules []openapi.PolicyRule
		}{{DirIngress, p.Ingress}, {DirEgress, p.Egress}} {
			for i := range d.rules {
				m[RuleCookie(p.ID, d.dir, i)] = p.Log
			}
		}
	}
	return m
}

// checkLogAction checks the controller action of a logged verdict flow
// with that cookie (POLICY-CONTRACT.md: the RuleCookie's 8 bytes, the
// verdict 01 allow / 02 deny, the direction 01 ingress / 02 egress, through
// meter 1).
func checkLogAction(t *testing.T, act string, cookie uint64, pass bool, table Table) {
	t.Helper()
	rc := cookie &^ CookieConn
	var ud []string
	for i := 7; i >= 0; i-- {
		ud = append(ud, fmt.Sprintf("%02x", byte(rc>>(8*i))))
	}
	verdict, dir := "02", "02"
	if pass {
		verdict = "01"
	}
	if table == TableIngressPolicy {
		dir = "01"
	}
	want := "controller(userdata=" + strings.Join(append(ud, verdict, dir), ".") + ",meter_id=1)"
	if act != want {
		t.Fatalf("log action %q, want %q", act, want)
	}
}

// verdictOf is the verdict of a verdict flow's actions: a logged flow's
// actions without the controller action (drop when nothing follows it).
func verdictOf(actions string) string {
	if !strings.HasPrefix(actions, "controller(") {
		return actions
	}
	_, rest, _ := strings.Cut(actions, ")")
	if rest == "" {
		return actDrop
	}
	return strings.TrimPrefix(rest, ",")
}
