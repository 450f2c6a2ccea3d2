package api_test

import (
	"encoding/json"
	"testing"
)

// directions reads a policy's ingress and egress as raw JSON: "null" or an
// array.
func (e *env) directions(ref string) (ingress, egress string) {
	e.t.Helper()
	var p map[string]json.RawMessage
	e.must(200, "GET", "/api/v1/policies/"+ref, nil).decode(e.t, &p)
	return string(p["ingress"]), string(p["egress"])
}

// A policy keeps an absent direction (null) apart from an empty one ([])
// through POST, GET, PUT and PATCH; in a merge patch, null makes a
// direction absent again.
func TestPolicyDirectionsRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	rule := []map[string]any{{"ports": []map[string]any{{"port": 80}}}}
	steps := []struct {
		name, method, path string
		body               any
		ingress, egress    string
	}{
		{"create absent", "POST", "/api/v1/policies", map[string]any{"name": "p", "network": "blue"}, "null", "null"},
		{"put empty ingress", "PUT", "/api/v1/policies/p", map[string]any{"name": "p", "network": "blue", "ingress": []any{}}, "[]", "null"},
		{"patch egress empty", "PATCH", "/api/v1/policies/p", map[string]any{"egress": []any{}}, "[]", "[]"},
		{"patch ingress null", "PATCH", "/api/v1/policies/p", `{"ingress": null}`, "null", "[]"},
		{"patch a priority only", "PATCH", "/api/v1/policies/p", map[string]any{"priority": 5}, "null", "[]"},
		{"patch ingress rule", "PATCH", "/api/v1/policies/p", map[string]any{"ingress": rule}, `[{"peers":[],"ports":[{"port":80,"protocol":"TCP"}]}]`, "[]"},
		{"put without directions", "PUT", "/api/v1/policies/p", map[string]any{"name": "p", "network": "blue"}, "null", "null"},
		{"put explicit nulls", "PUT", "/api/v1/policies/p", `{"name": "p", "network": "blue", "ingress": null, "egress": []}`, "null", "[]"},
	}
	for _, s := range steps {
		want := 200
		if s.method == "POST" {
			want = 201
		}
		var answer map[string]json.RawMessage
		e.must(want, s.method, s.path, s.body).decode(t, &answer)
		if string(answer["ingress"]) != s.ingress || string(answer["egress"]) != s.egress {
			t.Fatalf("%s: answer ingress %s egress %s, want %s and %s", s.name, answer["ingress"], answer["egress"], s.ingress, s.egress)
		}
		if in, eg := e.directions("p"); in != s.ingress || eg != s.egress {
			t.Fatalf("%s: GET ingress %s egress %s, want %s and %s", s.name, in, eg, s.ingress, s.egress)
		}
	}
	// The list and the event stream's objects carry the same.
	var list struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	e.must(200, "GET", "/api/v1/policies", nil).decode(t, &list)
	if len(list.Items) != 1 || string(list.Items[0]["ingress"]) != "null" || string(list.Items[0]["egress"]) != "[]" {
		t.Fatalf("list: %v", list.Items)
	}
}

// Every bad policy is a 4xx problem naming the field as the API spells it,
// and writes nothing: on create, and on an update of a good policy (which
// keeps its value).
func TestPolicyValidation(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "good", "network": "blue", "ingress": []any{}})
	peers := func(p ...map[string]any) map[string]any {
		return map[string]any{"ingress": []map[string]any{{"peers": p}}}
	}
	ports := func(dir string, p ...map[string]any) map[string]any {
		return map[string]any{dir: []map[string]any{{}, {"ports": append([]map[string]any{{"port": 1}}, p...)}}}
	}
	cases := []struct {
		name   string
		fields map[string]any
		status int
		field  string
	}{
		{"selector", map[string]any{"selector": "app in (web"}, 400, "selector"},
		{"selector bad value", map[string]any{"selector": "app=no spaces"}, 400, "selector"},
		{"selector bad key", map[string]any{"selector": "-x=y"}, 400, "selector"},
		{"priority zero is the default, negative is not", map[string]any{"priority": -1}, 400, "priority"},
		{"priority above 10000", map[string]any{"priority": 10001}, 400, "priority"},
		{"action", map[string]any{"action": "reject"}, 400, "action"},
		{"peer selector", peers(map[string]any{"selector": "a=b"}, map[string]any{"selector": "a in b"}), 400, "ingress[0].peers[1].selector"},
		{"peer both", peers(map[string]any{"selector": "a=b", "cidr": "10.1.0.0/16"}), 422, "ingress[0].peers[0]"},
		{"peer neither", peers(map[string]any{"cidr": "10.1.0.0/16"}, map[string]any{}), 422, "ingress[0].peers[1]"},
		{"peer except only", peers(map[string]any{"except": []string{"10.1.0.0/24"}}), 422, "ingress[0].peers[0]"},
		{"peer bad cidr", peers(map[string]any{"cidr": "10.1.0.0/33"}), 400, "ingress[0].peers[0].cidr"},
		{"peer cidr host bits", peers(map[string]any{"cidr": "10.1.0.1/16"}), 400, "ingress[0].peers[0].cidr"},
		{"peer except outside", peers(map[string]any{"cidr": "10.1.0.0/16", "except": []string{"10.1.0.0/24", "10.2.0.0/24"}}), 400, "ingress[0].peers[0].except[1]"},
		{"peer except wider", peers(map[string]any{"cidr": "10.1.0.0/16", "except": []string{"10.0.0.0/8"}}), 400, "ingress[0].peers[0].except[0]"},
		{"peer except with selector", peers(map[string]any{"selector": "a=b", "except": []string{"10.0.0.0/8"}}), 400, "ingress[0].peers[0].except"},
		{"endPort below port", ports("egress", map[string]any{"port": 90, "endPort": 80}), 400, "egress[1].ports[1].endPort"},
		{"endPort without port", ports("ingress", map[string]any{"endPort": 80}), 400, "ingress[1].ports[1].endPort"},
		{"endPort out of range", ports("ingress", map[string]any{"port": 80, "endPort": 65536}), 400, "ingress[1].ports[1].endPort"},
		{"port with ICMP", ports("egress", map[string]any{"port": 8, "protocol": "ICMP"}), 400, "egress[1].ports[1].port"},
		{"unknown protocol", ports("ingress", map[string]any{"protocol": "GRE"}), 400, "ingress[1].ports[1].protocol"},
		{"lower-case protocol", ports("ingress", map[string]any{"protocol": "tcp"}), 400, "ingress[1].ports[1].protocol"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			body := map[string]any{"name": "p", "network": "blue"}
			for k, v := range c.fields {
				body[k] = v
			}
			before := e.revision()
			e.wantProblem(e.do("POST", "/api/v1/policies", body), c.status, c.field)
			body["name"] = "good"
			e.wantProblem(e.do("PUT", "/api/v1/policies/good", body), c.status, c.field)
			e.wantProblem(e.do("PATCH", "/api/v1/policies/good", c.fields), c.status, c.field)
			if after := e.revision(); after != before {
				t.Fatalf("a refused write moved the revision %d -> %d", before, after)
			}
			e.must(404, "GET", "/api/v1/policies/p", nil)
			if in, eg := e.directions("good"); in != "[]" || eg != "null" {
				t.Fatalf("the refused update changed the policy: ingress %s egress %s", in, eg)
			}
		})
	}
	// What the contract accepts: a cidr inside the network's own CIDR (it
	// matches those containers by address), selector "" (every container),
	// priorities at both ends, ICMP without ports, endPort = port.
	e.t = t
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "edges", "network": "blue", "priority": 10000,
		"ingress": []map[string]any{{"peers": []map[string]any{{"cidr": "10.10.0.0/25", "except": []string{"10.10.0.0/25"}}, {"selector": ""}},
			"ports": []map[string]any{{"protocol": "ICMP"}, {"port": 80, "endPort": 80, "protocol": "SCTP"}}}}})
	var p map[string]any
	e.must(200, "PATCH", "/api/v1/policies/edges", map[string]any{"priority": 1}).decode(t, &p)
	peer := p["ingress"].([]any)[0].(map[string]any)["peers"].([]any)[1].(map[string]any)
	if sel, ok := peer["selector"]; !ok || sel != "" {
		t.Fatalf("selector \"\" peer came back as %v", peer)
	}
	// priority 0 or null is the default, 1000.
	e.must(200, "PATCH", "/api/v1/policies/edges", `{"priority": null}`).decode(t, &p)
	if p["priority"].(float64) != 1000 {
		t.Fatalf("priority after a null patch: %v", p["priority"])
	}
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "zero", "network": "blue", "priority": 0}).decode(t, &p)
	if p["priority"].(float64) != 1000 {
		t.Fatalf("priority 0 stored as %v", p["priority"])
	}
}
