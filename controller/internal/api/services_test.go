package api_test

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// serviceCount is how many services the API lists.
func (e *env) serviceCount() int {
	e.t.Helper()
	var l openapi.List[openapi.Service]
	e.must(200, "GET", "/api/v1/services?limit=1000", nil).decode(e.t, &l)
	return len(l.Items)
}

// Every bad service is refused by create, replace and patch with a 4xx
// naming the field, and nothing is written: no revision, no event, the
// same services.
func TestServiceBadInputHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var taken openapi.Service
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "taken", "network": "blue", "ports": []map[string]any{{"port": 80}}}).decode(t, &taken)
	p80 := []map[string]any{{"port": 80}}
	many := []map[string]any{}
	for i := range openapi.MaxServicePorts + 1 {
		many = append(many, map[string]any{"port": 1000 + i})
	}
	cases := []struct {
		name   string
		fields map[string]any
		status int
		field  string
	}{
		{"port 0", map[string]any{"ports": []map[string]any{{"port": 80}, {"port": 0}}}, 400, "ports[1].port"},
		{"port above 65535", map[string]any{"ports": []map[string]any{{"port": 65536}}}, 400, "ports[0].port"},
		{"duplicate port name", map[string]any{"ports": []map[string]any{{"name": "a", "port": 80}, {"name": "b", "port": 81}, {"name": "a", "port": 82}}}, 400, "ports[2].name"},
		{"duplicate port number", map[string]any{"ports": []map[string]any{{"port": 80}, {"port": 80, "protocol": "TCP"}}}, 400, "ports[1].port"},
		{"too many ports", map[string]any{"ports": many}, 400, "ports"},
		{"vip outside range", map[string]any{"ports": p80, "vip": "10.10.0.7"}, 400, "vip"},
		{"vip in use", map[string]any{"ports": p80, "vip": taken.VIP}, 409, "vip"},
		{"bad selector", map[string]any{"ports": p80, "selector": "app in (web"}, 400, "selector"},
		{"weight 0", map[string]any{"ports": p80, "weights": []map[string]any{{"selector": "v=1", "weight": 1}, {"selector": "v=2", "weight": 0}}}, 400, "weights[1].weight"},
		{"weight negative", map[string]any{"ports": p80, "weights": []map[string]any{{"selector": "v=1", "weight": -1}}}, 400, "weights[0].weight"},
		{"weight above 10000", map[string]any{"ports": p80, "weights": []map[string]any{{"selector": "v=1", "weight": 10001}}}, 400, "weights[0].weight"},
		{"weight selector", map[string]any{"ports": p80, "weights": []map[string]any{{"selector": "v in (1", "weight": 1}}}, 400, "weights[0].selector"},
		{"unknown affinity", map[string]any{"ports": p80, "sessionAffinity": "Cookie"}, 400, "sessionAffinity"},
		{"affinity timeout with None", map[string]any{"ports": p80, "sessionAffinityTimeoutSeconds": 60}, 400, "sessionAffinityTimeoutSeconds"},
		{"affinity timeout too long", map[string]any{"ports": p80, "sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 86401}, 400, "sessionAffinityTimeoutSeconds"},
		{"interval below timeout", map[string]any{"ports": p80, "healthCheck": map[string]any{"intervalSeconds": 2, "timeoutSeconds": 3}}, 400, "healthCheck.intervalSeconds"},
		{"interval out of range", map[string]any{"ports": p80, "healthCheck": map[string]any{"intervalSeconds": 3601}}, 400, "healthCheck.intervalSeconds"},
		{"threshold out of range", map[string]any{"ports": p80, "healthCheck": map[string]any{"unhealthyThreshold": 101}}, 400, "healthCheck.unhealthyThreshold"},
		{"healthy threshold negative", map[string]any{"ports": p80, "healthCheck": map[string]any{"healthyThreshold": -1}}, 400, "healthCheck.healthyThreshold"},
		{"check protocol", map[string]any{"ports": p80, "healthCheck": map[string]any{"protocol": "UDP"}}, 400, "healthCheck.protocol"},
		{"check path", map[string]any{"ports": p80, "healthCheck": map[string]any{"protocol": "HTTP", "path": "healthz"}}, 400, "healthCheck.path"},
		{"check path with TCP", map[string]any{"ports": p80, "healthCheck": map[string]any{"path": "/x"}}, 400, "healthCheck.path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			check := func(method, path string, body map[string]any) {
				t.Helper()
				before, n := e.revision(), e.serviceCount()
				e.wantProblem(e.do(method, path, body), c.status, c.field)
				if after := e.revision(); after != before || e.serviceCount() != n {
					t.Fatalf("%s: a refused write moved the revision %d -> %d or the services %d -> %d", method, before, after, n, e.serviceCount())
				}
			}
			body := map[string]any{"name": "s", "network": "blue"}
			for k, v := range c.fields {
				body[k] = v
			}
			check("POST", "/api/v1/services", body)
			if c.field == "vip" {
				return // immutable once created
			}
			body["name"] = "taken"
			check("PUT", "/api/v1/services/taken", body)
			check("PATCH", "/api/v1/services/taken", c.fields)
		})
	}
	e.t = t
	// groupId is read-only: sent back unchanged it is fine, changed it is refused.
	var got openapi.Service
	e.must(200, "PATCH", "/api/v1/services/taken", map[string]any{"groupId": taken.GroupID, "selector": "app=web"}).decode(t, &got)
	if got.GroupID != taken.GroupID || got.Selector != "app=web" {
		t.Fatalf("patched %+v", got)
	}
	e.wantProblem(e.do("PATCH", "/api/v1/services/taken", map[string]any{"groupId": taken.GroupID + 1}), 400, "groupId")
}

// The new fields round-trip through the API with their defaults, groupId
// stays across updates and differs between services, a merge patch null
// removes the health check.
func TestServiceFieldsHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var a, b openapi.Service
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "a", "network": "blue", "ports": []map[string]any{{"port": 80, "targetPort": 8080}},
		"sessionAffinity": "ClientIP", "healthCheck": map[string]any{"protocol": "HTTP"},
		"weights": []map[string]any{{"selector": "version=v2", "weight": 10}, {"selector": "version=v1", "weight": 90}}}).decode(t, &a)
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "b", "network": "blue", "ports": []map[string]any{{"port": 53, "protocol": "UDP"}}}).decode(t, &b)
	wantHC := openapi.HealthCheck{Protocol: "HTTP", Port: 8080, Path: "/", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}
	if a.HealthCheck == nil || *a.HealthCheck != wantHC || a.SessionAffinityTimeoutSeconds != 10800 || len(a.Weights) != 2 || a.Weights[0].Weight != 10 {
		t.Fatalf("created %+v", a)
	}
	if b.SessionAffinity != "None" || b.HealthCheck != nil || b.Weights != nil || a.GroupID == 0 || b.GroupID == 0 || a.GroupID == b.GroupID {
		t.Fatalf("defaults or group ids: a %+v b %+v", a, b)
	}
	var got openapi.Service
	e.must(200, "PATCH", "/api/v1/services/a", map[string]any{"healthCheck": map[string]any{"protocol": "TCP", "path": nil, "intervalSeconds": 9}}).decode(t, &got)
	if got.HealthCheck.Protocol != "TCP" || got.HealthCheck.IntervalSeconds != 9 || got.HealthCheck.Path != "" || got.GroupID != a.GroupID {
		t.Fatalf("patched check %+v", got.HealthCheck)
	}
	got = openapi.Service{}
	e.must(200, "PATCH", "/api/v1/services/a", map[string]any{"healthCheck": nil, "weights": nil, "sessionAffinity": "None", "sessionAffinityTimeoutSeconds": nil}).decode(t, &got)
	if got.HealthCheck != nil || got.Weights != nil || got.SessionAffinity != "None" || got.GroupID != a.GroupID {
		t.Fatalf("cleared %+v", got)
	}
	got = openapi.Service{}
	e.must(200, "GET", "/api/v1/services/a?network=blue", nil).decode(t, &got)
	if got.GroupID != a.GroupID || got.HealthCheck != nil {
		t.Fatalf("got %+v", got)
	}
}

// GET /services/{ref}/endpoints lists the backends with weight and health,
// and health verdicts arrive through the agents' status reports: only those
// of the reporting host's containers are written, an unchanged report
// writes nothing, each change is one endpoint event.
func TestServiceEndpointsHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	n1, n2 := e.newToken("node-h1", "node", "h1"), e.newToken("node-h2", "node", "h2")
	ctrs := map[string]openapi.Container{}
	for _, c := range [][3]string{{"web1", "h1", "v1"}, {"web2", "h1", "v2"}, {"web3", "h2", "v1"}} {
		var ctr openapi.Container
		e.must(201, "POST", "/api/v1/containers", map[string]any{"name": c[0], "network": "blue", "host": c[1],
			"labels": map[string]string{"app": "web", "version": c[2]}}).decode(t, &ctr)
		ctrs[c[0]] = ctr
	}
	var svc, plain openapi.Service
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "web", "network": "blue", "selector": "app=web",
		"ports":       []map[string]any{{"name": "http", "port": 80, "targetPort": 8080}},
		"weights":     []map[string]any{{"selector": "version=v1", "weight": 90}, {"selector": "version=v2", "weight": 10}},
		"healthCheck": map[string]any{"protocol": "TCP"}}).decode(t, &svc)
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "plain", "network": "blue", "selector": "app=web",
		"ports": []map[string]any{{"port": 80}}}).decode(t, &plain)
	endpoints := func(ref string) map[string]openapi.Endpoint {
		t.Helper()
		var l openapi.EndpointList
		e.must(200, "GET", "/api/v1/services/"+ref+"/endpoints?network=blue", nil).decode(t, &l)
		out := map[string]openapi.Endpoint{}
		for _, ep := range l.Items {
			out[ep.Container] = ep
		}
		return out
	}
	eps := endpoints("web")
	if len(eps) != 3 || eps["web1"].Weight != 29491 || eps["web2"].Weight != 6554 || eps["web3"].Health != "healthy" ||
		eps["web2"].Host != "h1" || eps["web2"].Address != ctrs["web2"].IP || eps["web2"].Ports[0].Port != 8080 {
		t.Fatalf("endpoints: %+v", eps)
	}
	for _, ep := range endpoints(plain.ID) {
		if ep.Health != "unchecked" || ep.Weight != 100 {
			t.Fatalf("plain endpoint %+v", ep)
		}
	}
	e.wantProblem(e.do("GET", "/api/v1/services/nope/endpoints", nil), 404, "")
	e.wantProblem(e.do("GET", "/api/v1/services/web/endpoints?network=red", nil), 404, "")

	report := func(tok, host string, eps ...openapi.EndpointHealth) {
		t.Helper()
		e.must(204, "POST", "/api/v1/nodes/"+host+"/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, Endpoints: eps}, withToken(tok))
	}
	verdict := func(c string, healthy bool, reason string) openapi.EndpointHealth {
		return openapi.EndpointHealth{Service: svc.ID, Container: ctrs[c].ID, Healthy: healthy, Reason: reason}
	}
	endpointEvents := func(since int64) []openapi.Event {
		t.Helper()
		return e.events(since, "endpoint")
	}
	before := e.revision()
	// h1 reports web1 down, web2 up, and web3 (not its own) down.
	report(n1, "h1", verdict("web1", false, "connection refused"), verdict("web2", true, ""), verdict("web3", false, "not mine"))
	evs := endpointEvents(before)
	if len(evs) != 2 {
		t.Fatalf("events after h1's report: %+v", evs)
	}
	eps = endpoints("web")
	if eps["web1"].Health != "unhealthy" || eps["web1"].Reason != "connection refused" || eps["web1"].Weight != 0 || eps["web1"].Since == nil ||
		eps["web2"].Health != "healthy" || eps["web3"].Health != "healthy" || eps["web3"].Since != nil {
		t.Fatalf("endpoints after h1's report: %+v", eps)
	}
	// The same report (a heartbeat) writes nothing.
	rev := e.revision()
	report(n1, "h1", verdict("web1", false, "connection refused"), verdict("web2", true, ""), verdict("web3", false, "not mine"))
	if e.revision() != rev {
		t.Fatalf("an unchanged report moved the revision")
	}
	// h2's agent reports web3; then web1 recovers on h1: an event each.
	report(n2, "h2", verdict("web3", false, "timeout"))
	report(n1, "h1", verdict("web1", true, ""), verdict("web2", true, ""))
	evs = endpointEvents(rev)
	if len(evs) != 2 || evs[0].Name != "web3" || evs[1].Name != "web1" || evs[1].Action != "updated" || evs[0].ID != svc.ID+"/"+ctrs["web3"].ID {
		t.Fatalf("events: %+v", evs)
	}
	// A node token cannot report for another host; a bad entry is a 400.
	e.wantProblem(e.do("POST", "/api/v1/nodes/h2/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}}, withToken(n1)), 403, "")
	e.wantProblem(e.do("POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{},
		Endpoints: []openapi.EndpointHealth{{Service: "x", Container: ctrs["web1"].ID}}}, withToken(n1)), 400, "endpoints[0].service")

	// A new health check forgets the verdicts.
	rev = e.revision()
	e.must(200, "PATCH", "/api/v1/services/web", map[string]any{"healthCheck": map[string]any{"protocol": "TCP", "intervalSeconds": 7}})
	evs = endpointEvents(rev)
	deleted := 0
	for _, ev := range evs {
		if ev.Action == "deleted" {
			deleted++
		}
	}
	if deleted != 3 {
		t.Fatalf("events after a new check: %+v", evs)
	}
	for name, ep := range endpoints("web") {
		if ep.Health != "healthy" || ep.Since != nil {
			t.Fatalf("%s after a new check: %+v", name, ep)
		}
	}
}

// events returns the events of kinds after revision since, from the store.
func (e *env) events(since int64, kinds ...string) []openapi.Event {
	e.t.Helper()
	evs, err := e.ctl.Store.EventsSince(context.Background(), since, kinds, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}
