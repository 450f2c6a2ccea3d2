package bench

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// policyDPFillers is the number of filler containers per host of
// BenchmarkPolicyDatapath: the filler policies select them, so their flows
// are on both hosts' policy tables.
const policyDPFillers = 10

// tableEgressPolicy is br-int's EgressPolicy table (see tableIngressPolicy).
const tableEgressPolicy = 10

// BenchmarkPolicyDatapath measures the cost of policy in the data plane:
// TCP throughput (iperf3 -t 5) and ping RTT, idle and under that load,
// between two containers on two hosts (geneve), through two Switchyard
// clusters side by side: "nopolicy" (the stateful pipeline, no policy) and
// "policies" (1,000 filler policies present, selecting filler containers
// on both hosts, and allow policies on the pair: the server's ingress from
// the client, the client's egress to the server, so both policy tables
// judge its packets). Both have the same containers. One op is a round
// that measures each (order alternating), as in BenchmarkDatapath.
func BenchmarkPolicyDatapath(b *testing.B) {
	for _, bin := range []string{"iperf3", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s is not installed", bin)
		}
	}
	plain := policyDPSetup(b, "nopolicy", 0)
	pol := policyDPSetup(b, "policies", 1000)
	res, rounds := compare(b, plain, pol, "cross-host")
	b.ReportMetric(pct(res[pol.name].mbps, 50)/pct(res[plain.name].mbps, 50)*100, "policies/nopolicy-%")
	b.ReportMetric(float64(rounds), "rounds")
	for _, s := range []setup{plain, pol} {
		b.ReportMetric(float64(policyFlows(b, s.lab)), s.name+"-policy-flows/host")
	}
	b.ReportMetric(loadAverage(), "load1")
}

// policyDPSetup is a two-host cluster with the pair (client on h1, server
// on h2), filler containers, and, when policies > 0, that many filler
// policies and the pair's allow policies, applied on both hosts.
func policyDPSetup(b *testing.B, name string, policies int) setup {
	b.Helper()
	c := cluster.New(b, cluster.Options{Hosts: 2, Tunnel: openapi.TunnelGeneve})
	c.Network(b, "dp", "10.70.0.0/24")
	ep := func(ctr, host string, labels map[string]string) endpoint {
		ct := c.Container(b, ctr, "dp", host, map[string]any{"labels": labels})
		return endpoint{c.Sandbox(host, ctr, "dp"), ct.IP}
	}
	client := ep("client", "h1", map[string]string{"role": "client"})
	server := ep("server", "h2", map[string]string{"role": "server"})
	for i := range 2 * policyDPFillers {
		ep(fmt.Sprintf("f%d", i), []string{"h1", "h2"}[i%2], map[string]string{"app": fmt.Sprintf("app%d", i%20)})
	}
	if policies > 0 {
		createFillerPolicies(b, c, "dp", 0, policies)
		pair := []map[string]any{
			{"name": "pair-in", "network": "dp", "selector": "role=server", "priority": 100,
				"ingress": []any{map[string]any{"peers": []any{map[string]any{"selector": "role=client"}}}}},
			{"name": "pair-out", "network": "dp", "selector": "role=client", "priority": 100,
				"egress": []any{map[string]any{"peers": []any{map[string]any{"selector": "role=server"}}}}},
		}
		for _, body := range pair {
			c.MustDo(b, 201, "POST", "/api/v1/policies?wait=realized&timeout=60s", body, nil)
		}
	}
	return setup{name, c.Lab, map[string]path{"cross-host": {client, server}}}
}

// policyFlows is the most flows a host of l has in its policy tables
// (EgressPolicy and IngressPolicy).
func policyFlows(b *testing.B, l *lab.Lab) int {
	n := 0
	for _, h := range l.Hosts {
		k := 0
		for _, t := range []int{tableEgressPolicy, tableIngressPolicy} {
			k += strings.Count(h.OFCtl(b, "dump-flows", "br-int", fmt.Sprintf("table=%d", t)), "priority=")
		}
		n = max(n, k)
	}
	return n
}
