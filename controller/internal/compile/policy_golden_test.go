package compile

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// policyBase is the world the policy goldens run in: network blue on two
// hosts with pods labelled like the Kubernetes truth table (ns x/y, app
// a/b), plus a container of network green.
func policyBase() *Snapshot {
	blue, green := network("blue", 1), network("green", 2)
	pod := func(ns, app string, k int, h string) openapi.Container {
		c := container(ns+app, blue.Name, 1, k, h)
		c.Labels = map[string]string{"ns": ns, "app": app}
		return c
	}
	g := container("g", green.Name, 2, 0, "h2")
	g.Labels = map[string]string{"ns": "x", "app": "a"}
	return &Snapshot{
		Revision: 20,
		Hosts: []openapi.Host{
			host("h1", "192.168.1.1", openapi.TunnelGeneve),
			host("h2", "192.168.1.2", openapi.TunnelGeneve),
		},
		Networks:   []openapi.Network{blue, green},
		Containers: []openapi.Container{pod("x", "a", 0, "h1"), pod("x", "b", 1, "h1"), pod("y", "a", 2, "h2"), g},
	}
}

func sel(s string) *string { return &s }

func pol(id, selector string, prio int, action string, ingress, egress []openapi.PolicyRule) openapi.Policy {
	return openapi.Policy{Meta: openapi.Meta{ID: id}, Name: id, Network: "blue", Selector: selector,
		Priority: prio, Action: action, Ingress: ingress, Egress: egress}
}

func logged(p openapi.Policy) openapi.Policy {
	p.Log = true
	return p
}

func rule(peers []openapi.PolicyPeer, ports ...openapi.PolicyPort) openapi.PolicyRule {
	return openapi.PolicyRule{Peers: peers, Ports: ports}
}

func peers(ps ...openapi.PolicyPeer) []openapi.PolicyPeer { return ps }

var (
	allow, deny = openapi.ActionAllow, openapi.ActionDeny
	tcp80       = openapi.PolicyPort{Protocol: "TCP", Port: 80}
	fromA       = openapi.PolicyPeer{Selector: sel("app=a")}
	fromX       = openapi.PolicyPeer{Selector: sel("ns=x")}
)

// policyScenarios: one per semantic rule of the contract.
func policyScenarios() map[string][]openapi.Policy {
	return map[string][]openapi.Policy{
		// ingress: [] isolates every selected container: only drops.
		"pol-default-deny-ingress": {pol("p1", "", 1000, allow, []openapi.PolicyRule{}, nil)},
		// egress present and empty; ingress absent says nothing.
		"pol-default-deny-egress": {pol("p1", "ns=x", 1000, allow, nil, []openapi.PolicyRule{})},
		// a selector peer and a port: 3 dimensions.
		"pol-allow-from-label": {pol("p1", "app=a", 1000, allow, []openapi.PolicyRule{rule(peers(fromX), tcp80)}, nil)},
		// no peers and no ports: the "ip" dimension.
		"pol-allow-all": {pol("p1", "ns=y", 1000, allow, []openapi.PolicyRule{rule(nil)}, nil)},
		// port ranges split into value/mask matches; UDP, SCTP and ICMP.
		"pol-port-ranges": {pol("p1", "app=b", 1000, allow, []openapi.PolicyRule{rule(nil,
			openapi.PolicyPort{Protocol: "TCP", Port: 80, EndPort: 90},
			openapi.PolicyPort{Protocol: "UDP", Port: 1, EndPort: 65535},
			openapi.PolicyPort{Protocol: "SCTP", Port: 9000},
			openapi.PolicyPort{Protocol: "ICMP"})}, nil)},
		// egress to a cidr with except: the block minus the holes.
		"pol-egress-cidr-except": {pol("p1", "ns=x", 1000, allow, nil, []openapi.PolicyRule{rule(peers(
			openapi.PolicyPeer{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.3.0/24"}}))})},
		// a deny of priority 5 above an allow of priority 10.
		"pol-deny-over-allow": {
			pol("p1", "", 10, allow, []openapi.PolicyRule{rule(nil)}, nil),
			pol("p2", "", 5, deny, []openapi.PolicyRule{rule(peers(fromA), tcp80)}, nil),
		},
		// equal priority: the deny's band is one above the allow's.
		"pol-tie": {
			pol("p1", "", 100, allow, []openapi.PolicyRule{rule(peers(fromA))}, nil),
			pol("p2", "", 100, deny, []openapi.PolicyRule{rule(peers(fromA))}, nil),
		},
		// logged policies: the +new verdict flows also send the packet to
		// the agent through meter 1 (an allow, then continue; a deny, then
		// drop); the -new flows do not log.
		"pol-logged": {
			logged(pol("p1", "app=a", 1000, allow, []openapi.PolicyRule{rule(peers(fromX), tcp80)}, nil)),
			logged(pol("p2", "ns=x", 5, deny, nil, []openapi.PolicyRule{rule(peers(fromA), tcp80)})),
		},
		// two policies at one priority share clause flows: merged, one
		// flow with both conjunction actions.
		"pol-shared-clauses": {
			pol("p1", "app=a", 1000, allow, []openapi.PolicyRule{rule(peers(fromX), tcp80)}, nil),
			pol("p2", "ns=x", 1000, allow, []openapi.PolicyRule{rule(peers(fromX, fromA), tcp80), rule(nil, tcp80)}, nil),
		},
	}
}

func withPolicies(ps []openapi.Policy) *Snapshot {
	s := policyBase()
	s.Policies = ps
	return s
}

// renderPolicyTables prints, per host, the policy tables' flows that are not
// base flows, after a legend of the rule cookies.
func renderPolicyTables(s *Snapshot, progs map[string]*openapi.Program) string {
	var b strings.Builder
	for _, p := range s.Policies {
		for d, rules := range [2][]openapi.PolicyRule{p.Ingress, p.Egress} {
			for i := range rules {
				c := RuleCookie(p.ID, directions[d].name, i)
				fmt.Fprintf(&b, "# rule %s/%s/%d cookie=%#x conn=%#x conj_id=%d log=%v\n", p.ID, directions[d].name, i, c,
					ConnCookie(p.ID, directions[d].name, i), conjID(c), p.Log)
			}
		}
	}
	for _, name := range sortedKeys(progs) {
		fmt.Fprintf(&b, "## host %s\n", name)
		for i := range progs[name].Flows {
			f := &progs[name].Flows[i]
			if (f.Table == int(TableEgressPolicy) || f.Table == int(TableIngressPolicy)) && f.Cookie != 0 {
				b.Write(program.AppendFlow(nil, f))
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

func TestPolicyGolden(t *testing.T) {
	for name, ps := range policyScenarios() {
		t.Run(name, func(t *testing.T) {
			s := withPolicies(ps)
			progs := Compile(s)
			checkInvariants(t, s, progs)
			checkPolicies(t, s, progs)
			checkGolden(t, name, renderPolicyTables(s, progs))
		})
	}
}

// TestPolicyTransitions: for every pair of scenarios A, B, a compiler loaded
// with A that then deletes A's policies and puts B's has exactly the
// programs of a fresh compile of B, and only the hosts whose program
// changed are reported.
func TestPolicyTransitions(t *testing.T) {
	scen := policyScenarios()
	names := sortedKeys(scen)
	names = append(names, "none")
	for _, a := range names {
		for _, b := range names {
			c := New()
			before := c.Full(withPolicies(scen[a]))
			var changes []Change
			for _, p := range scen[a] {
				changes = append(changes, DeletePolicy(p.ID))
			}
			for _, p := range scen[b] {
				changes = append(changes, PutPolicy(p))
			}
			ups := c.Apply(21, changes...)
			want := Compile(withPolicies(scen[b]))
			var changed []string
			for _, h := range c.Hosts() {
				sameProgram(t, a+" then "+b, mustProgram(t, c, h), want[h])
				if before[h].Digest != want[h].Digest {
					changed = append(changed, h)
				}
			}
			var reported []string
			for _, u := range ups {
				reported = append(reported, u.Host)
			}
			if !slices.Equal(changed, reported) {
				t.Fatalf("%s then %s: reported %v, changed %v", a, b, reported, changed)
			}
		}
	}
}

// TestPolicyLabelChange: relabelling a container moves it in and out of
// selections (as the selected container and as a peer), incrementally, on
// the hosts concerned only.
func TestPolicyLabelChange(t *testing.T) {
	s := withPolicies(policyScenarios()["pol-allow-from-label"])
	c := New()
	c.Full(s)
	xb := s.Containers[1] // x/b on h1: a peer (ns=x), not selected (app=a)
	xb.Labels = map[string]string{"ns": "y", "app": "a"}
	ups := c.Apply(21, PutContainer(xb))
	after := *s
	after.Containers = slices.Clone(s.Containers)
	after.Containers[1] = xb
	want := Compile(&after)
	for _, h := range c.Hosts() {
		sameProgram(t, "relabel", mustProgram(t, c, h), want[h])
	}
	if len(ups) != 2 {
		t.Fatalf("relabel changed %d hosts, want 2 (h1 gains a selected container, h2 loses a peer)", len(ups))
	}
	checkPolicies(t, &after, want)
	// A label change that matters to no policy changes nothing.
	g := s.Containers[3]
	g.Labels = map[string]string{"other": "1"}
	if ups := c.Apply(22, PutContainer(g)); len(ups) != 0 {
		t.Fatalf("relabelling a container no policy sees changed %d hosts", len(ups))
	}
}

// TestPolicyRuleCost puts the number on conjunctive matching: one rule
// selecting S=10 containers, with D=20 peers and P=5 port matches, costs
// S+D+P+2 = 37 flows on its host (the verdict is two flows, new and not
// new; plus S isolation drops), not S*D*P = 1,000.
func TestPolicyRuleCost(t *testing.T) {
	blue := network("blue", 1)
	s := &Snapshot{Hosts: []openapi.Host{host("h1", "192.168.1.1", openapi.TunnelGeneve)}, Networks: []openapi.Network{blue}}
	for k := 0; k < 30; k++ {
		c := container(fmt.Sprint("c", k), blue.Name, 1, k, "h1")
		c.Labels = map[string]string{"role": "server"}
		if k >= 10 {
			c.Labels["role"] = "client"
		}
		s.Containers = append(s.Containers, c)
	}
	var ports []openapi.PolicyPort
	for p := 0; p < 5; p++ {
		ports = append(ports, openapi.PolicyPort{Protocol: "TCP", Port: 1000 + 2*p})
	}
	s.Policies = []openapi.Policy{pol("p1", "role=server", 1000, allow,
		[]openapi.PolicyRule{rule(peers(openapi.PolicyPeer{Selector: sel("role=client")}), ports...)}, nil)}
	p := Compile(s)["h1"]
	rule, isolation := 0, 0
	for _, f := range p.Flows {
		switch {
		case f.Table != int(TableIngressPolicy) || f.Cookie == 0:
		case f.Priority == prioIsolate:
			isolation++
		default:
			rule++
		}
	}
	if rule != 10+20+5+2 || isolation != 10 {
		t.Fatalf("rule flows %d (want 37), isolation drops %d (want 10)", rule, isolation)
	}
	checkPolicies(t, s, Compile(s))
}
