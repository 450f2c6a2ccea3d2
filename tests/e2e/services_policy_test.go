package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// policyThroughVIP: network policy judges load-balanced connections with
// the client's real address (the service is resolved before the policy
// tables, on the client's host, and nothing SNATs it). Backends p1 (h2)
// and p2 (h3) of service "pol" admit TCP 80 only from c1's address: c1
// reaches both through the VIP, c2 and c3 reach neither, through the VIP
// or directly. Without the policy, all three reach them.
func (e *svcLab) policyThroughVIP(t *testing.T) {
	e.backend(t, "p1", "h2", map[string]string{"app": "pol"})
	e.backend(t, "p2", "h3", map[string]string{"app": "pol"})
	s := e.service(t, "pol", map[string]any{"selector": "app=pol"})
	e.reach(t, "tcp", addr(s, 0), 10, true, "p1", "p2")

	var p openapi.Policy
	e.MustDo(t, 201, "POST", "/api/v1/policies"+writeWait, map[string]any{
		"name": "pol-in", "network": svcNet, "selector": "app=pol",
		"ingress": []map[string]any{{
			"peers": []map[string]any{{"cidr": e.ct["c1"].IP + "/32"}},
			"ports": []map[string]any{{"port": 80, "protocol": "TCP"}},
		}},
	}, &p)
	t.Cleanup(func() { e.MustDo(t, 204, "DELETE", "/api/v1/policies/"+p.ID+writeWait, nil, nil) })

	e.judge(t, "c1 -> "+addr(s, 0)+" (allowed by address)", count(e.mustConns(t, "c1", "tcp", addr(s, 0), 20)), true, []string{"p1", "p2"})
	for _, c := range []string{"c2", "c3"} {
		for _, to := range []string{addr(s, 0), e.ct["p1"].IP + ":80"} {
			if got := count(e.tryConns(t, c, "tcp", to, 4)); len(got.by) > 0 {
				t.Errorf("%s -> %s: %s; want every connection dropped by pol-in (the backend must see %s's own address)", c, to, got, c)
			}
		}
	}
}
