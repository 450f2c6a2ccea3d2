package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// TestPolicy runs the network-policy truth-table scenarios (issue 9) over
// Geneve and over VXLAN, one cluster per encapsulation shared by every
// scenario: nine containers labelled like the pods x/a ... z/c of the
// Kubernetes network-policy e2e tests, spread over three hosts, each
// probing all nine on TCP 80, TCP 81 and UDP 80 (some scenarios ICMP).
// Every policy write waits until realized; each scenario compares the whole
// observed table to the one it writes out and prints the grids on a
// difference; policies and labels are reset between scenarios.
//
// Run one scenario: go test ./tests/e2e/ -run 'TestPolicy/geneve/tie' -v
func TestPolicy(t *testing.T) {
	for _, tunnel := range []string{openapi.TunnelGeneve, openapi.TunnelVXLAN} {
		t.Run(tunnel, func(t *testing.T) {
			start := time.Now()
			e := newPolicyLab(t, tunnel)
			t.Logf("lab up in %s", time.Since(start).Round(time.Millisecond))
			for _, sc := range policyScenarios {
				if e.kept {
					break
				}
				t.Run(sc.name, func(t *testing.T) {
					t.Cleanup(func() { e.reset(t) })
					sc.run(t, e)
				})
			}
			e.Lab.DumpOnFailure(t)
		})
	}
}

// policyScenarios are the truth-table scenarios, in the order they run.
var policyScenarios = []struct {
	name string
	run  func(t *testing.T, e *policyLab)
}{
	{"baseline", func(t *testing.T, e *policyLab) {
		// No policy: everyone reaches everyone, ICMP included.
		e.expect(t, everything(tcp80, tcp81, udp80, icmpEc))
	}},
	{"default-deny-ingress", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-deny-in", "ns=x").ingress())
		// x/* still open connections out: replies are not judged.
		e.expect(t, everything().isolateIn("x/*"))
	}},
	{"default-deny-egress", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-deny-out", "ns=x").egress())
		e.expect(t, everything().isolateOut("x/*"))
	}},
	{"default-deny-whole-network", func(t *testing.T, e *policyLab) {
		// The empty selector selects every container of the network.
		e.apply(t, policy("deny-all", "").ingress().egress())
		e.expect(t, everything().block("*", "*"))
	}},
	{"allow-same-namespace", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-from-x", "ns=x").ingress(peers(sel("ns=x"))))
		e.expect(t, everything().isolateIn("x/*", "x/*"))
	}},
	{"allow-from-label", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-from-b", "ns=x").ingress(peers(sel("pod=b"))))
		e.expect(t, everything().isolateIn("x/*", "*/b"))
	}},
	{"allow-from-namespace-and-pod", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-from-yc", "ns=x").ingress(peers(sel("ns=y,pod=c"))))
		e.expect(t, everything().isolateIn("x/*", "y/c"))
	}},
	{"set-based-selectors", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("set", "ns in (x,y),pod!=c").ingress(peers(sel("ns notin (x),pod in (a,b)"))))
		e.expect(t, everything().isolateIn("x/a,x/b,y/a,y/b", "y/a,y/b,z/a,z/b"))
	}},
	{"egress-to-namespace", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-to-y", "ns=x").egress(peers(sel("ns=y"))))
		e.expect(t, everything().isolateOut("x/*", "y/*"))
	}},
	{"egress-cidr-except", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-to-cidr", "ns=x").egress(peers(cidr(policyCIDR, e.ip("y/b")+"/32", e.ip("z/c")+"/32"))))
		e.expect(t, everything().block("x/*", "y/b,z/c"))
	}},
	{"ingress-from-cidr", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("a-from-zc", "pod=a").ingress(peers(cidr(e.ip("z/c")+"/32"))))
		e.expect(t, everything().isolateIn("*/a", "z/c"))
	}},
	{"port-ranges", func(t *testing.T, e *policyLab) {
		// Both ends of a range are in it: TCP 81..85 lets 81 in, not 80;
		// UDP 70..80 lets 80 in.
		e.apply(t, policy("x-ranges", "ns=x").ingress(peers().on(proto("TCP", 81, 85), proto("UDP", 70, 80))))
		e.expect(t, everything().isolateIn("x/*").allow("*", "x/*", tcp81, udp80))
	}},
	{"protocol-every-port", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-udp-from-y", "ns=x").ingress(peers(sel("ns=y")).on(proto("UDP"))))
		e.expect(t, everything().isolateIn("x/*").allow("y/*", "x/*", udp80))
	}},
	{"any-peer-one-port", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-tcp80", "ns=x").ingress(peers().on(proto("TCP", 80))))
		e.expect(t, everything().isolateIn("x/*").allow("*", "x/*", tcp80))
	}},
	{"ingress-absent-vs-empty", func(t *testing.T, e *policyLab) {
		// ingress absent: the policy says nothing about ingress.
		e.apply(t, policy("x-dirs", "ns=x").egress(peers()))
		e.expect(t, everything())
		// ingress: [] isolates and allows nothing.
		e.replace(t, policy("x-dirs", "ns=x").egress(peers()).ingress())
		e.expect(t, everything().isolateIn("x/*"))
	}},
	{"deny-does-not-isolate", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-deny-y", "ns=x").deny().ingress(peers(sel("ns=y"))))
		e.expect(t, everything().block("y/*", "x/*"))
		// A deny policy with `ingress: []` denies nothing and isolates nothing.
		e.apply(t, policy("z-deny-nothing", "ns=z").deny().ingress().egress())
		e.expect(t, everything().block("y/*", "x/*"))
	}},
	{"deny-overrides-lower-priority-allow", func(t *testing.T, e *policyLab) {
		e.apply(t,
			policy("x-allow-all", "ns=x").prio(500).ingress(peers()),
			policy("x-deny-y", "ns=x").deny().prio(100).ingress(peers(sel("ns=y"))))
		e.expect(t, everything().block("y/*", "x/*"))
	}},
	{"allow-overrides-lower-priority-deny", func(t *testing.T, e *policyLab) {
		e.apply(t,
			policy("x-allow-ya", "ns=x").prio(100).ingress(peers(sel("ns=y,pod=a"))),
			policy("x-deny-y", "ns=x").deny().prio(200).ingress(peers(sel("ns=y"))),
			policy("x-allow-all", "ns=x").prio(300).ingress(peers()))
		e.expect(t, everything().block("y/b,y/c", "x/*"))
	}},
	{"tie-deny-wins", func(t *testing.T, e *policyLab) {
		// y/a matches the allow and the deny at 100: the deny wins.
		e.apply(t,
			policy("x-allow-y", "ns=x").prio(100).ingress(peers(sel("ns=y"))),
			policy("x-deny-a", "ns=x").deny().prio(100).ingress(peers(sel("pod=a"))),
			policy("x-allow-all", "ns=x").prio(1000).ingress(peers()))
		e.expect(t, everything().block("*/a", "x/*"))
	}},
	{"deny-egress", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-deny-to-z", "ns=x").deny().egress(peers(sel("ns=z"))))
		e.expect(t, everything().block("x/*", "z/*"))
	}},
	{"policies-union", func(t *testing.T, e *policyLab) {
		e.apply(t,
			policy("a-from-y", "pod=a").ingress(peers(sel("ns=y"))),
			policy("xa-from-b", "ns=x,pod=a").ingress(peers(sel("pod=b"))))
		e.expect(t, everything().isolateIn("*/a", "y/*").allow("*/b", "x/a"))
	}},
	{"both-ends-must-allow", func(t *testing.T, e *policyLab) {
		// x/a may send only to y/*, and y/* take only from */b: x/a
		// reaches nobody.
		e.apply(t,
			policy("xa-to-y", "ns=x,pod=a").egress(peers(sel("ns=y"))),
			policy("y-from-b", "ns=y").ingress(peers(sel("pod=b"))))
		e.expect(t, everything().isolateOut("x/a", "y/*").isolateIn("y/*", "*/b"))
	}},
	{"update-and-delete-restore", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-in", "ns=x").ingress())
		e.expect(t, everything().isolateIn("x/*"))
		e.replace(t, policy("x-in", "ns=x").ingress(peers(sel("ns=y"))))
		e.expect(t, everything().isolateIn("x/*", "y/*"))
		e.remove(t, "x-in")
		e.expect(t, everything())
	}},
	{"label-changes", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-from-b", "ns=x").ingress(peers(sel("pod=b"))))
		e.expect(t, everything().isolateIn("x/*", "*/b"))
		// y/a becomes a peer the policy allows.
		e.relabel(t, "y/a", map[string]string{"ns": "y", "pod": "b"})
		e.expect(t, everything().isolateIn("x/*", "*/b", "y/a"))
		// x/c leaves the policy's selection.
		e.relabel(t, "x/c", map[string]string{"ns": "w", "pod": "c"})
		e.expect(t, everything().isolateIn("x/a,x/b", "*/b", "y/a"))
	}},
	{"established-connection", established},
	{"counters-and-log", countersAndLog},
	{"icmp-allow", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("x-icmp", "ns=x").ingress(peers().on(proto("ICMP"))))
		e.expect(t, everything(tcp80, icmpEc).isolateIn("x/*").allow("*", "x/*", icmpEc))
	}},
	{"icmp-deny", func(t *testing.T, e *policyLab) {
		e.apply(t, policy("z-deny-icmp-y", "ns=z").deny().ingress(peers(sel("ns=y")).on(proto("ICMP"))))
		e.expect(t, everything(tcp80, icmpEc).block("y/*", "z/*", icmpEc))
	}},
}

// established: a TCP connection from x/a (h1) to y/b (h3) opened with no
// policy keeps working while policies allow it, replies included (x/a
// isolated for ingress still gets y/b's answers), stops at once when a
// change denies it, and works again when the policy is deleted (TCP
// retransmits what was dropped; the conntrack entry was left alone).
func established(t *testing.T, e *policyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	xa := e.probes[pods("x/a")[0]]
	c, err := xa.Open(ctx, e.ip("y/b")+":80", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	send := func(step string, want bool, timeout time.Duration) {
		t.Helper()
		r, err := c.Send(ctx, timeout)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if r.OK != want {
			t.Errorf("%s: x/a -> y/b on the open connection: %+v, want ok=%v", step, r, want)
		}
	}
	send("no policy", true, 5*time.Second)
	e.apply(t, policy("xa-deny-in", "ns=x,pod=a").ingress())
	send("x/a isolated for ingress (replies pass)", true, 5*time.Second)
	e.apply(t, policy("yb-in", "ns=y,pod=b").ingress(peers(sel("ns=x"))))
	send("y/b allows x/*", true, 5*time.Second)
	e.replace(t, policy("yb-in", "ns=y,pod=b").ingress(peers(sel("ns=z"))))
	send("y/b allows only z/*", false, 2*time.Second)
	e.remove(t, "yb-in")
	send("y/b's policy deleted", true, 15*time.Second)
}
