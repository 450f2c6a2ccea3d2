package api_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// Every kind: create, get by name and by id, list, update, patch, delete.
func TestCRUDEveryKind(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	cases := []struct {
		kind   string
		create map[string]any
		update map[string]any // PUT body
		patch  map[string]any
		check  func(t *testing.T, obj map[string]any)
	}{
		{
			kind:   "hosts",
			create: map[string]any{"name": "h3", "address": "192.168.200.13", "labels": map[string]string{"rack": "a"}},
			update: map[string]any{"name": "h3", "address": "192.168.200.23", "tunnelType": "vxlan"},
			patch:  map[string]any{"labels": map[string]string{"rack": "b"}},
			check: func(t *testing.T, o map[string]any) {
				if o["address"] != "192.168.200.23" || o["tunnelType"] != "vxlan" || o["status"] != "NotReady" {
					t.Errorf("host after update: %v", o)
				}
			},
		},
		{
			kind:   "networks",
			create: map[string]any{"name": "red", "cidr": "10.20.0.0/16", "labels": map[string]string{"env": "prod"}},
			update: map[string]any{"name": "red", "cidr": "10.20.0.0/16", "mtu": 1300},
			patch:  map[string]any{"labels": map[string]string{"env": "dev"}},
			check: func(t *testing.T, o map[string]any) {
				if o["gateway"] != "10.20.0.1" || o["mtu"].(float64) != 1300 || o["vni"].(float64) < 1 {
					t.Errorf("network after update: %v", o)
				}
				a := o["addresses"].(map[string]any)
				if a["total"].(float64) != 65533 || a["free"].(float64) != 65533 {
					t.Errorf("addresses: %v", a)
				}
			},
		},
		{
			kind:   "containers",
			create: map[string]any{"name": "web1", "network": "blue", "host": "h1", "labels": map[string]string{"app": "web"}},
			update: map[string]any{"name": "web1", "network": "blue", "host": "h2", "labels": map[string]string{"app": "web", "v": "2"}},
			patch:  map[string]any{"labels": map[string]any{"v": nil}},
			check: func(t *testing.T, o map[string]any) {
				if o["ip"] != "10.10.0.2" || o["mac"] != "0a:58:0a:0a:00:02" || o["host"] != "h2" || o["status"] != "pending" {
					t.Errorf("container after update: %v", o)
				}
				if l := o["labels"].(map[string]any); l["v"] != nil || l["app"] != "web" {
					t.Errorf("merge patch did not remove label v: %v", l)
				}
			},
		},
		{
			kind:   "services",
			create: map[string]any{"name": "web", "network": "blue", "selector": "app=web", "ports": []map[string]any{{"port": 80, "targetPort": 8080}}},
			update: map[string]any{"name": "web", "network": "blue", "selector": "app in (web,api)", "ports": []map[string]any{{"name": "dns", "port": 53, "protocol": "UDP"}}},
			patch:  map[string]any{"labels": map[string]string{"tier": "fe"}},
			check: func(t *testing.T, o map[string]any) {
				p := o["ports"].([]any)[0].(map[string]any)
				if o["vip"] != "10.96.0.1" || p["protocol"] != "UDP" || p["targetPort"].(float64) != 53 {
					t.Errorf("service after update: %v", o)
				}
			},
		},
		{
			kind: "policies",
			create: map[string]any{"name": "db-in", "network": "blue", "selector": "app=db", "ingress": []map[string]any{{
				"peers": []map[string]any{{"selector": "app=web"}, {"cidr": "192.168.0.0/16", "except": []string{"192.168.1.0/24"}}},
				"ports": []map[string]any{{"port": 5432}, {"port": 8000, "endPort": 8100, "protocol": "UDP"}},
			}}},
			update: map[string]any{"name": "db-in", "network": "blue", "selector": "app=db", "priority": 10, "action": "deny"},
			patch:  map[string]any{"egress": []map[string]any{{"peers": []map[string]any{{"selector": ""}}, "ports": []map[string]any{{"protocol": "ICMP"}}}}},
			check: func(t *testing.T, o map[string]any) {
				if o["priority"].(float64) != 10 || o["action"] != "deny" || len(o["egress"].([]any)) != 1 {
					t.Errorf("policy after update: %v", o)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			e.t = t
			base := "/api/v1/" + c.kind
			r := e.must(201, "POST", base, c.create)
			var created map[string]any
			r.decode(t, &created)
			id, name := created["id"].(string), created["name"].(string)
			if r.Header.Get("ETag") != fmt.Sprintf(`"%d"`, int64(created["revision"].(float64))) {
				t.Errorf("ETag %q, revision %v", r.Header.Get("ETag"), created["revision"])
			}
			var byName, byID map[string]any
			e.must(200, "GET", base+"/"+name, nil).decode(t, &byName)
			e.must(200, "GET", base+"/"+id, nil).decode(t, &byID)
			// A host's realization fields follow the node layer, which
			// catches up asynchronously: compare the stored object.
			for _, m := range []map[string]any{byName, byID} {
				delete(m, "programRevision")
				delete(m, "realized")
			}
			if !reflect.DeepEqual(byName, byID) {
				t.Errorf("by name %v != by id %v", byName, byID)
			}
			var list openapi.List[map[string]any]
			e.must(200, "GET", base, nil).decode(t, &list)
			found := false
			for _, it := range list.Items {
				found = found || it["id"] == id
			}
			if !found {
				t.Errorf("list lacks %s", name)
			}
			e.must(200, "PUT", base+"/"+name, c.update)
			var updated map[string]any
			e.must(200, "PATCH", base+"/"+id, c.patch, withHeader("Content-Type", "application/merge-patch+json")).decode(t, &updated)
			c.check(t, updated)
			if updated["revision"].(float64) <= created["revision"].(float64) {
				t.Errorf("revision did not grow: %v -> %v", created["revision"], updated["revision"])
			}
			e.must(204, "DELETE", base+"/"+name, nil)
			e.wantProblem(e.do("GET", base+"/"+name, nil), 404, "")
			e.wantProblem(e.do("DELETE", base+"/"+id, nil), 404, "")
		})
	}
}

func TestMoveKeepsAddress(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var c, moved openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "db", "network": "blue", "host": "h1", "ip": "10.10.0.50"}).decode(t, &c)
	e.must(200, "POST", "/api/v1/containers/db/move", map[string]any{"host": "h2"}).decode(t, &moved)
	if moved.IP != c.IP || moved.MAC != c.MAC || moved.Host != "h2" || moved.Status != openapi.ContainerPending {
		t.Fatalf("moved %+v from %+v", moved, c)
	}
	e.wantProblem(e.do("POST", "/api/v1/containers/db/move", map[string]any{"host": "nowhere"}), 422, "host")
	e.wantProblem(e.do("POST", "/api/v1/containers/nope/move", map[string]any{"host": "h1"}), 404, "")
}

// Names are unique per network: the same container name in two networks is
// fine, and ?network= picks one.
func TestScopedNames(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "red", "cidr": "10.20.0.0/24"})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "app", "network": "blue", "host": "h1"})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "app", "network": "red", "host": "h1"})
	e.wantProblem(e.do("POST", "/api/v1/containers", map[string]any{"name": "app", "network": "red", "host": "h2"}), 409, "name")
	e.wantProblem(e.do("GET", "/api/v1/containers/app", nil), 409, "network")
	var c openapi.Container
	e.must(200, "GET", "/api/v1/containers/app?network=red", nil).decode(t, &c)
	if c.Network != "red" || c.IP != "10.20.0.2" {
		t.Fatalf("got %+v", c)
	}
	var l openapi.List[openapi.Container]
	e.must(200, "GET", "/api/v1/containers?network=blue", nil).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].Network != "blue" {
		t.Fatalf("network filter: %+v", l.Items)
	}
}

func TestDeleteInUse(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "a", "network": "blue", "host": "h1"})
	e.wantProblem(e.do("DELETE", "/api/v1/networks/blue", nil), 409, "")
	e.wantProblem(e.do("DELETE", "/api/v1/hosts/h1", nil), 409, "")
	e.must(204, "DELETE", "/api/v1/containers/a", nil)
	e.must(204, "DELETE", "/api/v1/hosts/h1", nil)
	e.must(204, "DELETE", "/api/v1/networks/blue", nil)
}

func TestHealthAndSpec(t *testing.T) {
	e := newEnv(t, nil)
	e.must(200, "GET", "/healthz", nil, withToken(""))
	e.must(200, "GET", "/readyz", nil, withToken(""))
	e.must(200, "GET", "/api/v1/networks", nil)
	m := e.must(200, "GET", "/metrics", nil, withToken(""))
	for _, want := range []string{"switchyard_http_requests_total", "switchyard_http_request_duration_seconds", "switchyard_db_pool_total_conns"} {
		if !contains(m.Body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	spec := e.must(200, "GET", "/openapi.yaml", nil, withToken(""))
	if !contains(spec.Body, "openapi:") {
		t.Errorf("spec: %.100s", spec.Body)
	}
}

func contains(b []byte, s string) bool {
	return len(s) == 0 || (len(b) > 0 && stringIndex(string(b), s) >= 0)
}

func stringIndex(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
