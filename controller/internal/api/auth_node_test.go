package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/openapi"
)

// A node token lists, creates, gets and deletes the containers of its own
// host (the agent's CNI server), and nothing of another host's.
func TestNodeTokenContainers(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	node := e.newToken("node-h1", "node", "h1")
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "theirs", "network": "blue", "host": "h2"})

	type call struct {
		method, path string
		body         any
		want         int
	}
	for i, c := range []call{
		{"POST", "/api/v1/containers", map[string]any{"name": "mine", "network": "blue", "host": "h1"}, 201},
		{"GET", "/api/v1/containers/mine?network=blue", nil, 200},
		{"GET", "/api/v1/containers?host=h1", nil, 200},
		// Another host's containers: neither created, read, listed nor deleted.
		{"POST", "/api/v1/containers", map[string]any{"name": "sneaky", "network": "blue", "host": "h2"}, 403},
		{"GET", "/api/v1/containers/theirs?network=blue", nil, 403},
		{"DELETE", "/api/v1/containers/theirs?network=blue", nil, 403},
		{"GET", "/api/v1/containers?host=h2", nil, 403},
		{"GET", "/api/v1/containers", nil, 403},
		// Nor updated or moved, even its own; nor other kinds.
		{"PATCH", "/api/v1/containers/mine?network=blue", map[string]any{"labels": map[string]string{"a": "b"}}, 403},
		{"POST", "/api/v1/containers/mine/move?network=blue", map[string]any{"host": "h2"}, 403},
		{"GET", "/api/v1/networks", nil, 403},
		{"POST", "/api/v1/services", map[string]any{"name": "s", "network": "blue", "selector": "a=b", "ports": []any{map[string]any{"port": 80}}}, 403},
		// A missing container is not found, a bad body is invalid.
		{"DELETE", "/api/v1/containers/nope?network=blue", nil, 404},
		{"POST", "/api/v1/containers", map[string]any{"name": "x", "network": "blue", "host": "h1", "bogus": 1}, 400},
		{"DELETE", "/api/v1/containers/mine?network=blue", nil, 204},
	} {
		t.Run(fmt.Sprintf("%d-%s-%s", i, c.method, c.path), func(t *testing.T) {
			e.t = t
			r := e.do(c.method, c.path, c.body, withToken(node))
			if r.Status != c.want {
				t.Fatalf("status %d, want %d: %s", r.Status, c.want, r.Body)
			}
			if c.want >= 400 {
				e.wantProblem(r, c.want, "")
			}
		})
	}
	e.t = t
	var list openapi.List[openapi.Container]
	e.must(200, "GET", "/api/v1/containers", nil).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].Name != "theirs" {
		t.Fatalf("containers left: %+v", list.Items)
	}
}

// Every route of the router, asked with another host's node token about
// host h2 and h2's objects: each answers 403 problem+json and writes
// nothing. The routes come from the router itself, so a route added later
// is covered (and must say what a node token gets there).
func TestForeignNodeTokenEveryRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c2", "network": "blue", "host": "h2", "labels": map[string]string{"app": "web"}})
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "s2", "network": "blue", "selector": "app=web", "ports": []any{map[string]any{"port": 80}}})
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "p2", "network": "blue"})
	h2 := e.newToken("node-h2", "node", "h2")
	e.must(200, "POST", "/api/v1/nodes/h2/register", map[string]any{"address": "192.168.200.12", "tunnelType": "vxlan"}, withToken(h2))
	node := e.newToken("node-h1", "node", "h1")
	engine, ok := e.ctl.Server.Handler(t.Context()).(*gin.Engine)
	if !ok {
		t.Fatal("the handler is not a gin engine")
	}
	// The objects a path names: all h2's, or shared by every host.
	refs := map[string]string{"hosts": "h2", "networks": "blue", "containers": "c2", "services": "s2", "policies": "p2", "tokens": "node-h2"}
	// Bodies a node token might send, valid for the contract, about h2.
	bodies := map[string]any{
		"POST /api/v1/containers":           map[string]any{"name": "sneaky", "network": "blue", "host": "h2"},
		"POST /api/v1/containers/:ref/move": map[string]any{"host": "h1"},
		"POST /api/v1/nodes/:host/register": map[string]any{"address": "192.168.200.12"},
		"POST /api/v1/nodes/:host/status":   map[string]any{"revision": 0},
	}
	before := e.revision()
	n := 0
	for _, rt := range engine.Routes() {
		if !strings.HasPrefix(rt.Path, "/api/v1/") {
			continue // /healthz, /readyz, /metrics, /openapi.yaml: no token needed
		}
		var path []string
		for _, seg := range strings.Split(rt.Path, "/") {
			switch seg {
			case ":ref":
				seg = refs[path[len(path)-1]]
			case ":host":
				seg = "h2"
			}
			path = append(path, seg)
		}
		p := strings.Join(path, "/")
		if rt.Method != "POST" && rt.Method != "PUT" && rt.Method != "PATCH" || strings.Contains(p, "/containers/") {
			p += "?network=blue"
		}
		if strings.HasSuffix(rt.Path, "/reachability") {
			p += "&port=80"
		}
		key := rt.Method + " " + rt.Path
		body, ok := bodies[key]
		if !ok && (rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "PATCH") {
			body = map[string]any{"labels": map[string]string{"owned": "yes"}}
		}
		n++
		t.Run(key, func(t *testing.T) {
			e.t = t
			r := e.do(rt.Method, p, body, withToken(node))
			e.wantProblem(r, 403, "")
			// The path names objects that exist: an admin reads them.
			if rt.Method == "GET" && !strings.HasSuffix(rt.Path, "/events") && !strings.HasSuffix(rt.Path, "/program") &&
				!strings.HasSuffix(rt.Path, "/jobs") { // long-polls
				e.must(200, "GET", p, nil)
			}
		})
	}
	e.t = t
	if n < 40 {
		t.Fatalf("only %d routes under /api/v1", n)
	}
	if after := e.revision(); after != before {
		t.Errorf("the foreign node token's requests wrote: revision %d -> %d", before, after)
	}
}
