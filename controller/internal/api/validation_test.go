package api_test

import (
	"strings"
	"testing"
)

// Every validation error answers the right status, as problem+json naming the
// field, and writes nothing: the revision does not move.
func TestValidationErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "taken", "network": "blue", "host": "h1", "ip": "10.10.0.9"})
	svc := func(extra map[string]any) map[string]any {
		m := map[string]any{"name": "s", "network": "blue", "ports": []map[string]any{{"port": 80}}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	pol := func(rule map[string]any) map[string]any {
		return map[string]any{"name": "p", "network": "blue", "ingress": []map[string]any{rule}}
	}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"malformed cidr", "networks", map[string]any{"name": "x", "cidr": "10.0.0.300/24"}, 400, "cidr"},
		{"cidr with host bits", "networks", map[string]any{"name": "x", "cidr": "10.0.0.1/24"}, 400, "cidr"},
		{"ipv6 cidr", "networks", map[string]any{"name": "x", "cidr": "fd00::/64"}, 400, "cidr"},
		{"missing cidr", "networks", map[string]any{"name": "x"}, 400, "cidr"},
		{"overlapping cidr", "networks", map[string]any{"name": "x", "cidr": "10.10.0.128/25"}, 409, "cidr"},
		{"cidr over service range", "networks", map[string]any{"name": "x", "cidr": "10.96.0.0/24"}, 409, "cidr"},
		{"duplicate network", "networks", map[string]any{"name": "blue", "cidr": "10.30.0.0/24"}, 409, "name"},
		{"gateway outside", "networks", map[string]any{"name": "x", "cidr": "10.30.0.0/24", "gateway": "10.31.0.1"}, 400, "gateway"},
		{"vni out of range", "networks", map[string]any{"name": "x", "cidr": "10.30.0.0/24", "vni": 1 << 24}, 400, "vni"},
		{"mtu out of range", "networks", map[string]any{"name": "x", "cidr": "10.30.0.0/24", "mtu": 100}, 400, "mtu"},
		{"bad name", "networks", map[string]any{"name": "Blue_Net", "cidr": "10.30.0.0/24"}, 400, "name"},
		{"bad label", "networks", map[string]any{"name": "x", "cidr": "10.30.0.0/24", "labels": map[string]string{"bad key!": "v"}}, 400, "labels"},
		{"unknown field", "networks", map[string]any{"name": "x", "cidr": "10.30.0.0/24", "colour": "red"}, 400, "colour"},
		{"wrong type", "networks", map[string]any{"name": "x", "cidr": 42}, 400, "cidr"},
		{"malformed address", "hosts", map[string]any{"name": "h9", "address": "300.1.1.1"}, 400, "address"},
		{"duplicate host", "hosts", map[string]any{"name": "h1", "address": "192.168.200.99"}, 409, "name"},
		{"duplicate host address", "hosts", map[string]any{"name": "h9", "address": "192.168.200.11"}, 409, "address"},
		{"unknown tunnel", "hosts", map[string]any{"name": "h9", "address": "192.168.200.99", "tunnelType": "gre"}, 400, "tunnelType"},
		{"missing network", "containers", map[string]any{"name": "c", "network": "nope", "host": "h1"}, 422, "network"},
		{"missing host", "containers", map[string]any{"name": "c", "network": "blue", "host": "nope"}, 422, "host"},
		{"static ip taken", "containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "ip": "10.10.0.9"}, 409, "ip"},
		{"static ip outside", "containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "ip": "10.11.0.9"}, 400, "ip"},
		{"static ip is gateway", "containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "ip": "10.10.0.1"}, 409, "ip"},
		{"static ip is broadcast", "containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "ip": "10.10.0.255"}, 400, "ip"},
		{"relative netns", "containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "netns": "run/netns/x"}, 400, "netns"},
		{"duplicate container", "containers", map[string]any{"name": "taken", "network": "blue", "host": "h2"}, 409, "name"},
		{"service port out of range", "services", svc(map[string]any{"ports": []map[string]any{{"port": 70000}}}), 400, "ports[0].port"},
		{"service unknown protocol", "services", svc(map[string]any{"ports": []map[string]any{{"port": 80, "protocol": "QUIC"}}}), 400, "ports[0].protocol"},
		{"service no ports", "services", svc(map[string]any{"ports": []map[string]any{}}), 400, "ports"},
		{"service bad selector", "services", svc(map[string]any{"selector": "app in (web"}), 400, "selector"},
		{"service vip outside range", "services", svc(map[string]any{"vip": "10.10.0.7"}), 400, "vip"},
		{"service missing network", "services", svc(map[string]any{"network": "nope"}), 422, "network"},
		{"policy bad selector", "policies", map[string]any{"name": "p", "network": "blue", "selector": "=x"}, 400, "selector"},
		{"policy bad action", "policies", map[string]any{"name": "p", "network": "blue", "action": "maybe"}, 400, "action"},
		{"policy priority", "policies", map[string]any{"name": "p", "network": "blue", "priority": 70000}, 400, "priority"},
		{"policy peer selector", "policies", pol(map[string]any{"peers": []map[string]any{{"selector": "a=(b"}}}), 400, "ingress[0].peers[0].selector"},
		{"policy peer cidr", "policies", pol(map[string]any{"peers": []map[string]any{{"cidr": "10.1.2.3"}}}), 400, "ingress[0].peers[0].cidr"},
		{"policy peer both", "policies", pol(map[string]any{"peers": []map[string]any{{"cidr": "10.1.0.0/16", "selector": "a=b"}}}), 422, "ingress[0].peers[0]"},
		{"policy peer except outside", "policies", pol(map[string]any{"peers": []map[string]any{{"cidr": "10.1.0.0/16", "except": []string{"10.2.0.0/24"}}}}), 400, "ingress[0].peers[0].except[0]"},
		{"policy port range", "policies", pol(map[string]any{"ports": []map[string]any{{"port": 0, "endPort": 10}}}), 400, "ingress[0].ports[0].endPort"},
		{"policy port out of range", "policies", pol(map[string]any{"ports": []map[string]any{{"port": 65536}}}), 400, "ingress[0].ports[0].port"},
		{"policy protocol", "policies", pol(map[string]any{"ports": []map[string]any{{"protocol": "GRE"}}}), 400, "ingress[0].ports[0].protocol"},
		{"policy missing network", "policies", map[string]any{"name": "p", "network": "nope"}, 422, "network"},
		{"malformed json", "networks", `{"name": "x",`, 400, ""},
		{"empty body", "networks", ``, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			before := e.revision()
			e.wantProblem(e.do("POST", "/api/v1/"+c.path, c.body), c.status, c.field)
			if after := e.revision(); after != before {
				t.Fatalf("a refused write moved the revision %d -> %d", before, after)
			}
		})
	}
	t.Run("list selector", func(t *testing.T) {
		e.t = t
		e.wantProblem(e.do("GET", "/api/v1/containers?selector=app+in+(web", nil), 400, "selector")
		e.wantProblem(e.do("GET", "/api/v1/containers?limit=0", nil), 400, "limit")
		e.wantProblem(e.do("GET", "/api/v1/containers?continue=garbage", nil), 400, "continue")
	})
	t.Run("immutable fields", func(t *testing.T) {
		e.t = t
		e.wantProblem(e.do("PUT", "/api/v1/networks/blue", map[string]any{"name": "blue", "cidr": "10.40.0.0/24"}), 400, "cidr")
		e.wantProblem(e.do("PATCH", "/api/v1/containers/taken", map[string]any{"ip": "10.10.0.77"}), 400, "ip")
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		e.t = t
		big := `{"name": "x", "cidr": "10.50.0.0/24", "labels": {"a": "` + strings.Repeat("b", 1<<20) + `"}}`
		e.wantProblem(e.do("POST", "/api/v1/networks", big), 413, "")
	})
	t.Run("bad wait", func(t *testing.T) {
		e.t = t
		e.wantProblem(e.do("POST", "/api/v1/networks?wait=soon", map[string]any{"name": "x", "cidr": "10.60.0.0/24"}), 400, "wait")
		e.wantProblem(e.do("POST", "/api/v1/networks?wait=realized&timeout=forever", map[string]any{"name": "x", "cidr": "10.60.0.0/24"}), 400, "timeout")
	})
}

// A network too small to use, and exhaustion of a small network.
func TestExhaustion(t *testing.T) {
	e := newEnv(t, nil)
	e.must(201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"})
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "tiny", "cidr": "10.70.0.0/29"}) // 8 - 3 = 5 usable
	for i := 0; i < 5; i++ {
		e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c" + string(rune('a'+i)), "network": "tiny", "host": "h1"})
	}
	p := e.wantProblem(e.do("POST", "/api/v1/containers", map[string]any{"name": "full", "network": "tiny", "host": "h1"}), 409, "network")
	if !strings.Contains(p["detail"].(string), "full") || !strings.HasSuffix(p["type"].(string), "exhausted") {
		t.Fatalf("exhaustion problem: %v", p)
	}
	var n map[string]any
	e.must(200, "GET", "/api/v1/networks/tiny", nil).decode(t, &n)
	if a := n["addresses"].(map[string]any); a["used"].(float64) != 5 || a["free"].(float64) != 0 {
		t.Fatalf("addresses: %v", a)
	}
	// Deleting releases the address; the next create reuses it.
	e.must(204, "DELETE", "/api/v1/containers/cc", nil)
	var c map[string]any
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "again", "network": "tiny", "host": "h1"}).decode(t, &c)
	if c["ip"] != "10.70.0.4" {
		t.Fatalf("reused address %v, want 10.70.0.4", c["ip"])
	}
	e.wantProblem(e.do("POST", "/api/v1/networks", map[string]any{"name": "dot", "cidr": "10.71.0.0/31"}), 400, "cidr")
}
