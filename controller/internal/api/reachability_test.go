package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/openapi"
)

// seedPods creates the Kubernetes e2e layout in network blue: containers
// x-a .. z-c labelled ns and pod, spread over h1 and h2.
func (e *env) seedPods() {
	e.t.Helper()
	i := 0
	for _, ns := range []string{"x", "y", "z"} {
		for _, pod := range []string{"a", "b", "c"} {
			e.must(201, "POST", "/api/v1/containers", map[string]any{"name": ns + "-" + pod, "network": "blue",
				"host": fmt.Sprintf("h%d", 1+i%2), "labels": map[string]string{"ns": ns, "pod": pod}})
			i++
		}
	}
}

func (e *env) reachability(query string, opts ...reqOpt) openapi.Reachability {
	e.t.Helper()
	var m openapi.Reachability
	e.must(200, "GET", "/api/v1/networks/blue/reachability"+query, nil, opts...).decode(e.t, &m)
	return m
}

// table renders a matrix as rows of X (allowed) and . (denied).
func table(m openapi.Reachability) string {
	var rows []string
	for _, row := range m.Matrix {
		var b strings.Builder
		for _, c := range row {
			if c.Allowed {
				b.WriteByte('X')
			} else {
				b.WriteByte('.')
			}
		}
		rows = append(rows, b.String())
	}
	return strings.Join(rows, " ")
}

// The matrix follows the policies' intent, names what decided each cell,
// and changes with them; a viewer may read it.
func TestReachability(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.seedPods()
	viewer := withToken(e.newToken("v", "viewer", ""))
	m := e.reachability("?port=80", viewer)
	want := []string{"x-a", "x-b", "x-c", "y-a", "y-b", "y-c", "z-a", "z-b", "z-c"}
	if strings.Join(m.Containers, ",") != strings.Join(want, ",") || m.Protocol != "TCP" || m.Port != 80 || m.Network != "blue" {
		t.Fatalf("answer %+v", m)
	}
	if got := table(m); got != strings.TrimSpace(strings.Repeat("XXXXXXXXX ", 9)) {
		t.Fatalf("without policies: %s", got)
	}
	if c := m.Matrix[0][1]; c.Egress.Reason != "baseline" || c.Ingress.Reason != "baseline" || m.Matrix[0][0].Egress.Reason != "self" {
		t.Fatalf("x-a -> x-b %+v, x-a -> x-a %+v", c, m.Matrix[0][0])
	}

	// x only takes TCP 80-81 from its own ns; y-a is denied everywhere
	// above that allow; egress of z is isolated to nothing.
	var allowX openapi.Policy
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "x-from-x", "network": "blue", "selector": "ns=x",
		"ingress": []map[string]any{{"peers": []map[string]any{{"selector": "ns=z"}}, "ports": []map[string]any{{"protocol": "UDP"}}},
			{"peers": []map[string]any{{"selector": "ns=x"}}, "ports": []map[string]any{{"port": 80, "endPort": 81}}}}}).decode(t, &allowX)
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "no-y-a", "network": "blue", "action": "deny", "priority": 10,
		"egress": []map[string]any{{}}, "selector": "ns=y,pod=a"})
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "z-silent", "network": "blue", "selector": "ns=z", "egress": []any{}})
	m = e.reachability("?protocol=TCP&port=81", viewer)
	wantTable := "XXXXXXXXX XXXXXXXXX XXXXXXXXX " + // x reaches all
		"...X..... " + // y-a: denied (self passes)
		"...XXXXXX ...XXXXXX " + // y-b, y-c: not into x
		"......X.. .......X. ........X" // z: nothing but self
	if got := table(m); got != wantTable {
		t.Fatalf("TCP 81:\ngot  %s\nwant %s", got, wantTable)
	}
	if m.Revision != e.revision() {
		t.Fatalf("revision %d, current %d", m.Revision, e.revision())
	}
	cell := func(from, to int) openapi.ReachabilityCell { return m.Matrix[from][to] }
	if c := cell(1, 0); !c.Allowed || c.Ingress != (openapi.ReachabilityDecision{Allowed: true, Reason: "rule", Policy: "x-from-x",
		PolicyID: allowX.ID, Rule: "ingress[1]", Action: "allow"}) {
		t.Fatalf("x-b -> x-a: %+v", c)
	}
	if c := cell(3, 4); c.Allowed || c.Egress.Reason != "rule" || c.Egress.Policy != "no-y-a" || c.Egress.Rule != "egress[0]" || c.Egress.Action != "deny" {
		t.Fatalf("y-a -> y-b: %+v", c)
	}
	if c := cell(4, 0); c.Allowed || !c.Egress.Allowed || c.Ingress.Reason != "isolated" || c.Ingress.Policy != "x-from-x" {
		t.Fatalf("y-b -> x-a: %+v", c)
	}
	if c := cell(6, 0); c.Allowed || c.Egress.Reason != "isolated" || c.Egress.Policy != "z-silent" {
		t.Fatalf("z-a -> x-a: %+v", c)
	}
	// Other protocols and ports: z's UDP into x is allowed by ingress[0],
	// but z's egress is still isolated; TCP 82 is outside x's range.
	if c := e.reachability("?protocol=UDP&port=53").Matrix[6][0]; c.Ingress.Rule != "ingress[0]" || c.Allowed {
		t.Fatalf("z-a -> x-a UDP 53: %+v", c)
	}
	if c := e.reachability("?port=82").Matrix[1][0]; c.Allowed || c.Ingress.Reason != "isolated" {
		t.Fatalf("x-b -> x-a TCP 82: %+v", c)
	}
	icmp := e.reachability("?protocol=ICMP")
	if icmp.Port != 0 || icmp.Matrix[1][0].Allowed {
		t.Fatalf("ICMP: %+v", icmp.Matrix[1][0])
	}
	// Deleting the policies restores the baseline; the network may be
	// named by id; ?selector= narrows rows and columns only.
	for _, p := range []string{"x-from-x", "no-y-a", "z-silent"} {
		e.must(204, "DELETE", "/api/v1/policies/"+p, nil)
	}
	var blue openapi.Network
	e.must(200, "GET", "/api/v1/networks/blue", nil).decode(t, &blue)
	var byID openapi.Reachability
	e.must(200, "GET", "/api/v1/networks/"+blue.ID+"/reachability?port=80", nil).decode(t, &byID)
	if table(byID) != strings.TrimSpace(strings.Repeat("XXXXXXXXX ", 9)) {
		t.Fatalf("after delete: %s", table(byID))
	}
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "a-from-b", "network": "blue", "selector": "pod=a",
		"ingress": []map[string]any{{"peers": []map[string]any{{"selector": "pod=b"}}}}})
	narrow := e.reachability("?port=80&selector=ns%3Dx")
	if strings.Join(narrow.Containers, ",") != "x-a,x-b,x-c" || table(narrow) != "XXX XXX .XX" {
		t.Fatalf("narrowed: %v %s", narrow.Containers, table(narrow))
	}
}

// Bad queries are 400s naming the parameter; an unknown network is a 404;
// a matrix over the cap is a 422 naming selector. None writes.
func TestReachabilityBadInput(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.MaxReachability = 3 })
	e.seed()
	e.seedPods()
	cases := []struct {
		query  string
		status int
		field  string
	}{
		{"", 400, "port"},
		{"?protocol=UDP", 400, "port"},
		{"?protocol=SCTP", 400, "port"},
		{"?protocol=ICMP&port=8", 400, "port"},
		{"?protocol=GRE&port=80", 400, "protocol"},
		{"?protocol=tcp&port=80", 400, "protocol"},
		{"?port=0", 400, "port"},
		{"?port=65536", 400, "port"},
		{"?port=http", 400, "port"},
		{"?port=80&selector=ns+in+(x", 400, "selector"},
		{"?port=80", 422, "selector"},
	}
	before := e.revision()
	for _, c := range cases {
		e.wantProblem(e.do("GET", "/api/v1/networks/blue/reachability"+c.query, nil), c.status, c.field)
	}
	e.wantProblem(e.do("GET", "/api/v1/networks/nope/reachability?port=80", nil), 404, "")
	if m := e.reachability("?port=80&selector=ns%3Dy"); len(m.Containers) != 3 {
		t.Fatalf("a selector under the cap: %v", m.Containers)
	}
	if e.revision() != before {
		t.Fatal("a read wrote")
	}
}
