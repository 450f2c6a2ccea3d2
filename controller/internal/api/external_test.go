package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// refused sends a write that must fail with status naming field, and
// checks that nothing was written: the revision and the number of objects
// of every kind stay. It returns the problem.
func (e *env) refused(status int, field, method, path string, body any) map[string]any {
	e.t.Helper()
	before, counts := e.revision(), e.counts()
	p := e.wantProblem(e.do(method, path, body), status, field)
	if after := e.revision(); after != before {
		e.t.Fatalf("%s %s: a refused write moved the revision %d -> %d", method, path, before, after)
	}
	if now := e.counts(); now != counts {
		e.t.Fatalf("%s %s: a refused write changed the objects: %v -> %v", method, path, counts, now)
	}
	return p
}

// counts is how many hosts, networks, containers and services there are.
func (e *env) counts() [4]int {
	e.t.Helper()
	var out [4]int
	for i, kind := range []string{"hosts", "networks", "containers", "services"} {
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		e.must(200, "GET", "/api/v1/"+kind+"?limit=1000", nil).decode(e.t, &l)
		out[i] = len(l.Items)
	}
	return out
}

// wantHolder checks that a 409's detail says what holds the port.
func wantHolder(t *testing.T, p map[string]any, holder string) {
	t.Helper()
	if d, _ := p["detail"].(string); !strings.Contains(d, holder) {
		t.Fatalf("detail %q does not say %q", d, holder)
	}
}

func pub(hostPort, port int, proto string) map[string]any {
	m := map[string]any{"hostPort": hostPort, "port": port}
	if proto != "" {
		m["protocol"] = proto
	}
	return m
}

func pubs(ps ...map[string]any) []map[string]any { return ps }

// Every bad published port is refused by create, replace and patch with a
// 400 naming the field, and nothing is written.
func TestPublishBadInputHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "taken", "network": "blue", "host": "h1"})
	many := []map[string]any{}
	for i := range openapi.MaxPublishedPorts + 1 {
		many = append(many, pub(20000+i, 80, ""))
	}
	cases := []struct {
		name    string
		publish []map[string]any
		field   string
		detail  string
	}{
		{"privileged", pubs(pub(8080, 80, ""), pub(80, 80, "")), "publish[1].hostPort", "ports below 1024 are privileged and not published"},
		{"privileged 1023", pubs(pub(1023, 80, "")), "publish[0].hostPort", "privileged"},
		{"vxlan", pubs(pub(4789, 80, "UDP")), "publish[0].hostPort", "VXLAN"},
		{"geneve", pubs(pub(6081, 80, "")), "publish[0].hostPort", "Geneve"},
		{"metrics", pubs(pub(9464, 80, "")), "publish[0].hostPort", "metrics"},
		{"hostPort 0", pubs(pub(0, 80, "")), "publish[0].hostPort", ""},
		{"hostPort above 65535", pubs(pub(65536, 80, "")), "publish[0].hostPort", ""},
		{"port 0", pubs(pub(8080, 0, "")), "publish[0].port", ""},
		{"port above 65535", pubs(pub(8080, 70000, "")), "publish[0].port", ""},
		{"sctp", pubs(pub(8080, 80, "SCTP")), "publish[0].protocol", ""},
		{"lower case", pubs(pub(8080, 80, "tcp")), "publish[0].protocol", ""},
		{"twice", pubs(pub(8080, 80, ""), pub(8081, 81, "UDP"), pub(8080, 81, "TCP")), "publish[2].hostPort", "twice"},
		{"hostIP of another host", pubs(map[string]any{"hostPort": 8080, "port": 80, "hostIP": "192.168.200.12"}), "publish[0].hostIP", "h1"},
		{"hostIP not an address", pubs(map[string]any{"hostPort": 8080, "port": 80, "hostIP": "192.168.200"}), "publish[0].hostIP", ""},
		{"too many", many, "publish", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			check := func(method, path string, body map[string]any) {
				t.Helper()
				p := e.refused(400, c.field, method, path, body)
				if c.detail != "" {
					wantHolder(t, p, c.detail)
				}
			}
			check("POST", "/api/v1/containers", map[string]any{"name": "c", "network": "blue", "host": "h1", "publish": c.publish})
			check("PUT", "/api/v1/containers/taken", map[string]any{"name": "taken", "network": "blue", "host": "h1", "publish": c.publish})
			check("PATCH", "/api/v1/containers/taken", map[string]any{"publish": c.publish})
		})
	}
}

// Published ports round-trip with their defaults, and conflicts are 409s
// naming the holder, on create, replace, patch and move, with nothing
// written.
func TestPublishConflictsHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var web openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h1",
		"publish": pubs(pub(8080, 80, ""), map[string]any{"hostPort": 8443, "port": 443, "hostIP": "192.168.200.11"})}).decode(t, &web)
	want := []openapi.PublishedPort{{HostPort: 8080, Port: 80, Protocol: "TCP"}, {HostPort: 8443, Port: 443, Protocol: "TCP", HostIP: "192.168.200.11"}}
	if fmt.Sprint(web.Publish) != fmt.Sprint(want) {
		t.Fatalf("created publish %+v, want %+v", web.Publish, want)
	}
	const holder = "hostPort 8080/TCP on host h1 is published by container blue/web"
	p := e.refused(409, "publish[0].hostPort", "POST", "/api/v1/containers", map[string]any{"name": "c2", "network": "blue", "host": "h1", "publish": pubs(pub(8080, 90, ""))})
	wantHolder(t, p, holder)
	// Another protocol, or another host, is free.
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "udp", "network": "blue", "host": "h1", "publish": pubs(pub(8080, 80, "UDP"))})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web2", "network": "blue", "host": "h2", "publish": pubs(pub(8080, 80, ""))})
	// The container itself does not clash with its own ports.
	e.must(200, "PATCH", "/api/v1/containers/web", map[string]any{"labels": map[string]string{"app": "web"}})
	e.must(200, "PUT", "/api/v1/containers/web", map[string]any{"name": "web", "network": "blue", "host": "h1", "publish": pubs(pub(8080, 81, ""))})

	// Replace and patch: another container taking web's port on h1.
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "other", "network": "blue", "host": "h1"})
	wantHolder(t, e.refused(409, "publish[1].hostPort", "PATCH", "/api/v1/containers/other", map[string]any{"publish": pubs(pub(9000, 80, ""), pub(8080, 80, ""))}), holder)
	wantHolder(t, e.refused(409, "publish[0].hostPort", "PUT", "/api/v1/containers/other", map[string]any{"name": "other", "network": "blue", "host": "h1", "publish": pubs(pub(8080, 80, ""))}), holder)

	// A move: web2 publishes 8080/TCP on h2; on h1 web holds it. Nothing
	// is written, by the move route or by a patch of host.
	wantHolder(t, e.refused(409, "publish[0].hostPort", "POST", "/api/v1/containers/web2/move", map[string]any{"host": "h1"}), holder)
	wantHolder(t, e.refused(409, "publish[0].hostPort", "PATCH", "/api/v1/containers/web2", map[string]any{"host": "h1"}), holder)
	var got openapi.Container
	e.must(200, "GET", "/api/v1/containers/web2", nil).decode(t, &got)
	if got.Host != "h2" || len(got.Publish) != 1 {
		t.Fatalf("after refused moves: %+v", got)
	}
	// Once web stops publishing it, the move goes through and the
	// publication follows, with a hostIP naming the old host's address
	// now naming the new one's.
	e.must(200, "PATCH", "/api/v1/containers/web", map[string]any{"publish": nil})
	e.must(200, "PATCH", "/api/v1/containers/web2", map[string]any{"publish": pubs(map[string]any{"hostPort": 8080, "port": 80, "hostIP": "192.168.200.12"})})
	got = openapi.Container{}
	e.must(200, "POST", "/api/v1/containers/web2/move", map[string]any{"host": "h1"}).decode(t, &got)
	if got.Host != "h1" || len(got.Publish) != 1 || got.Publish[0].HostIP != "192.168.200.11" || got.Publish[0].HostPort != 8080 {
		t.Fatalf("moved: %+v", got)
	}
	// Now web2 holds 8080/TCP on h1.
	wantHolder(t, e.refused(409, "publish[0].hostPort", "PATCH", "/api/v1/containers/web", map[string]any{"publish": pubs(pub(8080, 80, ""))}),
		"hostPort 8080/TCP on host h1 is published by container blue/web2")
}

// Node ports clash with every host's published ports and with the other
// services' node ports, both ways, with the same protocol; refused writes
// write nothing.
func TestNodePortConflictsHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h2", "publish": pubs(pub(8080, 80, ""))})
	svc := func(name string, ports ...map[string]any) map[string]any {
		return map[string]any{"name": name, "network": "blue", "selector": "app=web", "ports": ports}
	}
	p := e.refused(409, "ports[1].nodePort", "POST", "/api/v1/services", svc("s", map[string]any{"port": 443}, map[string]any{"port": 80, "nodePort": 8080}))
	wantHolder(t, p, "nodePort 8080/TCP is published by container blue/web on host h2")
	var web openapi.Service
	e.must(201, "POST", "/api/v1/services", svc("web", map[string]any{"port": 80, "nodePort": 30080})).decode(t, &web)
	if web.Ports[0].NodePort != 30080 || web.ExternalTrafficPolicy != openapi.TrafficCluster {
		t.Fatalf("created %+v", web)
	}
	// The same number on UDP is another port.
	e.must(201, "POST", "/api/v1/services", svc("dns", map[string]any{"port": 53, "protocol": "UDP", "nodePort": 30080}))
	const holder = "is node port of service blue/web"
	wantHolder(t, e.refused(409, "ports[0].nodePort", "POST", "/api/v1/services", svc("s", map[string]any{"port": 81, "nodePort": 30080})), "nodePort 30080/TCP "+holder)
	wantHolder(t, e.refused(409, "publish[0].hostPort", "POST", "/api/v1/containers",
		map[string]any{"name": "c", "network": "blue", "host": "h1", "publish": pubs(pub(30080, 80, ""))}), "hostPort 30080/TCP on host h1 "+holder)
	wantHolder(t, e.refused(409, "publish[0].hostPort", "PATCH", "/api/v1/containers/web", map[string]any{"publish": pubs(pub(30080, 80, ""))}),
		"hostPort 30080/TCP on host h2 "+holder)
	e.must(201, "POST", "/api/v1/services", svc("other", map[string]any{"port": 80}))
	wantHolder(t, e.refused(409, "ports[0].nodePort", "PATCH", "/api/v1/services/other", map[string]any{"ports": []map[string]any{{"port": 80, "nodePort": 30080}}}), holder)
	wantHolder(t, e.refused(409, "ports[0].nodePort", "PUT", "/api/v1/services/other", svc("other", map[string]any{"port": 80, "nodePort": 8080})),
		"published by container blue/web on host h2")
	// A service keeps its own node port across updates; Local round-trips.
	var got openapi.Service
	e.must(200, "PATCH", "/api/v1/services/web", map[string]any{"externalTrafficPolicy": "Local", "selector": "app=web2"}).decode(t, &got)
	if got.ExternalTrafficPolicy != openapi.TrafficLocal || got.Ports[0].NodePort != 30080 {
		t.Fatalf("patched %+v", got)
	}
	// Once deleted, its node port is free.
	e.must(204, "DELETE", "/api/v1/services/web?network=blue", nil)
	e.must(200, "PATCH", "/api/v1/services/other", map[string]any{"ports": []map[string]any{{"port": 80, "nodePort": 30080}}})
}

// Bad node ports and traffic policies are 400s naming the field.
func TestNodePortBadInputHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "taken", "network": "blue", "ports": []map[string]any{{"port": 80}}})
	cases := []struct {
		name   string
		fields map[string]any
		field  string
	}{
		{"privileged", map[string]any{"ports": []map[string]any{{"port": 80, "nodePort": 80}}}, "ports[0].nodePort"},
		{"reserved", map[string]any{"ports": []map[string]any{{"port": 80}, {"port": 81, "nodePort": 6081}}}, "ports[1].nodePort"},
		{"above 65535", map[string]any{"ports": []map[string]any{{"port": 80, "nodePort": 65536}}}, "ports[0].nodePort"},
		{"sctp", map[string]any{"ports": []map[string]any{{"port": 80, "protocol": "SCTP", "nodePort": 30000}}}, "ports[0].nodePort"},
		{"twice", map[string]any{"ports": []map[string]any{{"port": 80, "nodePort": 30000}, {"port": 81, "nodePort": 30000}}}, "ports[1].nodePort"},
		{"policy", map[string]any{"ports": []map[string]any{{"port": 80}}, "externalTrafficPolicy": "Nearest"}, "externalTrafficPolicy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			body := map[string]any{"name": "s", "network": "blue"}
			for k, v := range c.fields {
				body[k] = v
			}
			e.refused(400, c.field, "POST", "/api/v1/services", body)
			body["name"] = "taken"
			e.refused(400, c.field, "PUT", "/api/v1/services/taken", body)
			e.refused(400, c.field, "PATCH", "/api/v1/services/taken", c.fields)
		})
	}
}

// The events the compiler follows carry the new fields.
func TestExternalFieldsInEventsHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	from := e.revision()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h1", "publish": pubs(pub(8080, 80, "UDP"))})
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "web", "network": "blue", "externalTrafficPolicy": "Local",
		"ports": []map[string]any{{"port": 80, "nodePort": 30080}}})
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"egress": map[string]any{"snat": false}, "egressIP": "192.168.200.100"})
	seen := map[string]bool{}
	for _, ev := range e.events(from) {
		switch ev.Kind {
		case "container":
			var c openapi.Container
			_ = json.Unmarshal(ev.Object, &c)
			seen["publish"] = len(c.Publish) == 1 && c.Publish[0] == openapi.PublishedPort{HostPort: 8080, Port: 80, Protocol: "UDP"}
		case "service":
			var s openapi.Service
			_ = json.Unmarshal(ev.Object, &s)
			seen["nodePort"] = s.Ports[0].NodePort == 30080 && s.ExternalTrafficPolicy == openapi.TrafficLocal
		case "network":
			var n openapi.Network
			_ = json.Unmarshal(ev.Object, &n)
			seen["egress"] = !n.EgressEnabled() && n.EgressIP == "192.168.200.100"
		}
	}
	if !seen["publish"] || !seen["nodePort"] || !seen["egress"] {
		t.Fatalf("events carry the fields: %v", seen)
	}
}
