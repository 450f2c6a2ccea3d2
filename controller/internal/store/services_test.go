package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// lbFields are a service's load-balancing fields, for comparisons.
func lbFields(v openapi.Service) string {
	b, _ := json.Marshal(struct {
		W  []openapi.ServiceWeight
		A  string
		T  int
		HC *openapi.HealthCheck
		P  []openapi.ServicePort
	}{v.Weights, v.SessionAffinity, v.SessionAffinityTimeoutSeconds, v.HealthCheck, v.Ports})
	return string(b)
}

// Every new field round-trips through create, get, list, replace and the
// events; absent ones get their defaults; the group id is allocated once,
// distinct per service, and the smallest free one.
func TestServiceFieldsRoundTrip(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.10.0.0/24", 0)

	// Defaults.
	plain, err := st.CreateService(ctx, "test", openapi.Service{Name: "plain", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.SessionAffinity != openapi.AffinityNone || plain.SessionAffinityTimeoutSeconds != 0 || plain.HealthCheck != nil ||
		plain.Weights != nil || plain.GroupID != 1 {
		t.Fatalf("defaults: %+v", plain)
	}
	hcOnly, err := st.CreateService(ctx, "test", openapi.Service{Name: "hc", Network: "blue",
		Ports:           []openapi.ServicePort{{Port: 80, TargetPort: 8080}, {Port: 443}},
		SessionAffinity: openapi.AffinityClientIP,
		HealthCheck:     &openapi.HealthCheck{Protocol: "http"}, GroupID: 999})
	if err != nil {
		t.Fatal(err)
	}
	wantHC := openapi.HealthCheck{Protocol: "HTTP", Port: 8080, Path: "/", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}
	if *hcOnly.HealthCheck != wantHC || hcOnly.SessionAffinityTimeoutSeconds != DefaultAffinityTimeout || hcOnly.GroupID != 2 {
		t.Fatalf("health check defaults: %+v %+v", hcOnly, *hcOnly.HealthCheck)
	}
	tcp, err := st.CreateService(ctx, "test", openapi.Service{Name: "tcp", Network: "blue", Ports: []openapi.ServicePort{{Port: 53, TargetPort: 5353, Protocol: "UDP"}},
		HealthCheck: &openapi.HealthCheck{}})
	if err != nil {
		t.Fatal(err)
	}
	if tcp.HealthCheck.Protocol != "TCP" || tcp.HealthCheck.Port != 5353 || tcp.HealthCheck.Path != "" {
		t.Fatalf("TCP check defaults: %+v", *tcp.HealthCheck)
	}

	// Every field given.
	full := openapi.Service{Name: "full", Network: "blue", Selector: "app=web",
		Ports:           []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}},
		Weights:         []openapi.ServiceWeight{{Selector: "version=v1", Weight: 90}, {Selector: "version=v2", Weight: 10}},
		SessionAffinity: openapi.AffinityClientIP, SessionAffinityTimeoutSeconds: 60,
		HealthCheck: &openapi.HealthCheck{Protocol: "HTTP", Port: 8081, Path: "/healthz", IntervalSeconds: 10, TimeoutSeconds: 2, UnhealthyThreshold: 5, HealthyThreshold: 2}}
	created, err := st.CreateService(ctx, "test", full)
	if err != nil {
		t.Fatal(err)
	}
	full.Ports[1].TargetPort = 53
	if lbFields(created) != lbFields(full) || created.GroupID != 4 {
		t.Fatalf("created %s (group %d), want %s", lbFields(created), created.GroupID, lbFields(full))
	}
	got, err := st.GetService(ctx, "full", "blue")
	if err != nil || lbFields(got) != lbFields(full) || got.GroupID != created.GroupID {
		t.Fatalf("get: %s, %v", lbFields(got), err)
	}
	list, _, err := st.ListServices(ctx, ListOptions{Network: "blue"})
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	for _, s := range list {
		if s.Name == "full" && (lbFields(s) != lbFields(full) || s.GroupID != created.GroupID) {
			t.Fatalf("listed %s", lbFields(s))
		}
	}
	evs, err := st.EventsSince(ctx, created.Revision-1, []string{"service"}, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %v, %v", evs, err)
	}
	var ev openapi.Service
	if err := json.Unmarshal(evs[0].Object, &ev); err != nil || lbFields(ev) != lbFields(full) || ev.GroupID != created.GroupID {
		t.Fatalf("event object %s, %v", evs[0].Object, err)
	}

	// Replace: everything changes but the group id, whatever is asked.
	repl := openapi.Service{Ports: []openapi.ServicePort{{Port: 8443}}, Selector: "app=api",
		Weights:     []openapi.ServiceWeight{{Selector: "track=canary", Weight: 1}},
		HealthCheck: &openapi.HealthCheck{Protocol: "TCP", Port: 9000, IntervalSeconds: 3, TimeoutSeconds: 3, UnhealthyThreshold: 1, HealthyThreshold: 100},
		GroupID:     77}
	upd, err := st.UpdateService(ctx, "test", "full", "blue", 0, repl)
	if err != nil {
		t.Fatal(err)
	}
	repl.Ports[0].TargetPort, repl.Ports[0].Protocol, repl.SessionAffinity = 8443, "TCP", openapi.AffinityNone
	if lbFields(upd) != lbFields(repl) || upd.GroupID != created.GroupID {
		t.Fatalf("replaced %s group %d, want %s group %d", lbFields(upd), upd.GroupID, lbFields(repl), created.GroupID)
	}
	evs, err = st.EventsSince(ctx, upd.Revision-1, []string{"service"}, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %v, %v", evs, err)
	}
	ev = openapi.Service{}
	if err := json.Unmarshal(evs[0].Object, &ev); err != nil || lbFields(ev) != lbFields(repl) || ev.GroupID != created.GroupID {
		t.Fatalf("update event object %s, %v", evs[0].Object, err)
	}
	// Removing: back to the defaults.
	upd, err = st.UpdateService(ctx, "test", "full", "blue", 0, openapi.Service{Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil || upd.Weights != nil || upd.HealthCheck != nil || upd.SessionAffinity != openapi.AffinityNone || upd.GroupID != created.GroupID {
		t.Fatalf("cleared: %+v, %v", upd, err)
	}
	var nulls int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM services WHERE name = 'full' AND weights IS NULL AND health_check IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("absent fields are not SQL NULL: %d, %v", nulls, err)
	}

	// A deleted service's group id is the next one given.
	if _, err := st.DeleteService(ctx, "test", "hc", "blue", 0); err != nil {
		t.Fatal(err)
	}
	again, err := st.CreateService(ctx, "test", openapi.Service{Name: "again", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil || again.GroupID != 2 {
		t.Fatalf("reused group id %d, %v; want 2", again.GroupID, err)
	}
	next, err := st.CreateService(ctx, "test", openapi.Service{Name: "next", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil || next.GroupID != 5 {
		t.Fatalf("next group id %d, %v; want 5", next.GroupID, err)
	}
}

// Every bad input is a 4xx naming its field, and nothing is stored: no
// service, no revision, no event.
func TestServiceBadInput(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.10.0.0/24", 0)
	taken, err := st.CreateService(ctx, "test", openapi.Service{Name: "taken", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	p80 := []openapi.ServicePort{{Port: 80}}
	hc := func(f func(*openapi.HealthCheck)) *openapi.HealthCheck {
		h := &openapi.HealthCheck{}
		f(h)
		return h
	}
	many := make([]openapi.ServicePort, openapi.MaxServicePorts+1)
	for i := range many {
		many[i].Port = 1000 + i
	}
	cases := []struct {
		name   string
		svc    openapi.Service
		status int
		field  string
	}{
		{"port 0", openapi.Service{Ports: []openapi.ServicePort{{Port: 80}, {Port: 0}}}, 400, "ports[1].port"},
		{"port above 65535", openapi.Service{Ports: []openapi.ServicePort{{Port: 65536}}}, 400, "ports[0].port"},
		{"target port above 65535", openapi.Service{Ports: []openapi.ServicePort{{Port: 80, TargetPort: 70000}}}, 400, "ports[0].targetPort"},
		{"negative target port", openapi.Service{Ports: []openapi.ServicePort{{Port: 80, TargetPort: -1}}}, 400, "ports[0].targetPort"},
		{"duplicate port name", openapi.Service{Ports: []openapi.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 81}, {Name: "a", Port: 82}}}, 400, "ports[2].name"},
		{"duplicate port number", openapi.Service{Ports: []openapi.ServicePort{{Port: 80}, {Port: 80, Protocol: "tcp"}}}, 400, "ports[1].port"},
		{"too many ports", openapi.Service{Ports: many}, 400, "ports"},
		{"no ports", openapi.Service{}, 400, "ports"},
		{"vip outside range", openapi.Service{Ports: p80, VIP: "10.10.0.7"}, 400, "vip"},
		{"vip taken", openapi.Service{Ports: p80, VIP: taken.VIP}, 409, "vip"},
		{"bad selector", openapi.Service{Ports: p80, Selector: "app in (web"}, 400, "selector"},
		{"weight 0", openapi.Service{Ports: p80, Weights: []openapi.ServiceWeight{{Selector: "v=1", Weight: 1}, {Selector: "v=2"}}}, 400, "weights[1].weight"},
		{"weight negative", openapi.Service{Ports: p80, Weights: []openapi.ServiceWeight{{Selector: "v=1", Weight: -5}}}, 400, "weights[0].weight"},
		{"weight above 10000", openapi.Service{Ports: p80, Weights: []openapi.ServiceWeight{{Selector: "v=1", Weight: 10001}}}, 400, "weights[0].weight"},
		{"weight selector", openapi.Service{Ports: p80, Weights: []openapi.ServiceWeight{{Selector: "v in (1", Weight: 1}}}, 400, "weights[0].selector"},
		{"unknown affinity", openapi.Service{Ports: p80, SessionAffinity: "Cookie"}, 400, "sessionAffinity"},
		{"affinity timeout with None", openapi.Service{Ports: p80, SessionAffinityTimeoutSeconds: 60}, 400, "sessionAffinityTimeoutSeconds"},
		{"affinity timeout too long", openapi.Service{Ports: p80, SessionAffinity: "ClientIP", SessionAffinityTimeoutSeconds: 86401}, 400, "sessionAffinityTimeoutSeconds"},
		{"affinity timeout negative", openapi.Service{Ports: p80, SessionAffinity: "ClientIP", SessionAffinityTimeoutSeconds: -1}, 400, "sessionAffinityTimeoutSeconds"},
		{"check protocol", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.Protocol = "UDP" })}, 400, "healthCheck.protocol"},
		{"check port", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.Port = 65536 })}, 400, "healthCheck.port"},
		{"check path without /", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.Protocol, h.Path = "HTTP", "healthz" })}, 400, "healthCheck.path"},
		{"check path with TCP", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.Path = "/x" })}, 400, "healthCheck.path"},
		{"interval below timeout", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.IntervalSeconds, h.TimeoutSeconds = 2, 3 })}, 400, "healthCheck.intervalSeconds"},
		{"interval above 3600", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.IntervalSeconds = 3601 })}, 400, "healthCheck.intervalSeconds"},
		{"timeout negative", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.TimeoutSeconds = -1 })}, 400, "healthCheck.timeoutSeconds"},
		{"unhealthy threshold", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.UnhealthyThreshold = 101 })}, 400, "healthCheck.unhealthyThreshold"},
		{"healthy threshold", openapi.Service{Ports: p80, HealthCheck: hc(func(h *openapi.HealthCheck) { h.HealthyThreshold = -1 })}, 400, "healthCheck.healthyThreshold"},
	}
	count := func() int {
		var n int
		if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM services`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev, _ := st.Revision(ctx)
			n := count()
			check := func(what string, err error) {
				t.Helper()
				pe, ok := problem.As(err)
				if !ok || pe.Status != c.status || pe.Field != c.field {
					t.Fatalf("%s: got %v, want a %d naming %q", what, err, c.status, c.field)
				}
				if after, _ := st.Revision(ctx); after != rev || count() != n {
					t.Fatalf("%s: a refused write moved the revision %d -> %d or the services %d -> %d", what, rev, after, n, count())
				}
				evs, err := st.EventsSince(ctx, rev, nil, 10)
				if err != nil || len(evs) != 0 {
					t.Fatalf("%s: events after a refused write: %v, %v", what, evs, err)
				}
			}
			v := c.svc
			v.Name, v.Network = "s", "blue"
			_, err := st.CreateService(ctx, "test", v)
			check("create", err)
			if c.field == "vip" {
				return // immutable: an update that names one is refused as such
			}
			_, err = st.UpdateService(ctx, "test", "taken", "blue", 0, c.svc)
			check("update", err)
			if got, _ := st.GetService(ctx, "taken", "blue"); lbFields(got) != lbFields(taken) || got.Revision != taken.Revision {
				t.Fatalf("a refused update changed the service: %s", lbFields(got))
			}
		})
	}
}

// Migration 00006 gives existing services group ids 1, 2, ... and the
// defaults; down and up again works.
func TestServicesMigration(t *testing.T) {
	ctx := context.Background()
	st, p := migratedTo(t, 5)
	if _, err := st.Pool.Exec(ctx, `
		INSERT INTO networks (name, cidr, gateway, vni, mtu, revision) VALUES ('blue', '10.10.0.0/24', '10.10.0.1', 7, 1400, 1);
		INSERT INTO services (name, network_id, vip, ports, revision) SELECT 'old' || g, n.id, '10.96.0.0'::inet + g, '[{"port":80}]', 1
		FROM networks n, generate_series(1, 3) g;`); err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	list, _, err := st.ListServices(ctx, ListOptions{})
	if err != nil || len(list) != 3 {
		t.Fatalf("%d services, %v", len(list), err)
	}
	seen := map[uint32]bool{}
	for _, s := range list {
		if s.GroupID < 1 || s.GroupID > 3 || seen[s.GroupID] || s.SessionAffinity != openapi.AffinityNone || s.HealthCheck != nil || s.Weights != nil {
			t.Fatalf("migrated service %+v", s)
		}
		seen[s.GroupID] = true
	}
	created, err := st.CreateService(ctx, "test", openapi.Service{Name: "new", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil || created.GroupID != 4 {
		t.Fatalf("after the migration: group %d, %v; want 4", created.GroupID, err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
}
