package api_test

import (
	"fmt"
	"testing"

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
