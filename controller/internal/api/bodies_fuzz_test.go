package api_test

import (
	"strings"
	"testing"
)

// bodyOps are the contract's operations that take a body, each with the
// object its path names (among those newFuzzTarget seeds), its query, and a
// valid body: FuzzRequest starts from them, so that every body decoder
// behind the contract check (strict JSON, merge patches, the store's
// validation) gets inputs that reach it.
var bodyOps = []struct {
	method, path, value, query, body string
}{
	{"POST", "/api/v1/hosts", "", "", `{"name":"h9","address":"192.168.200.19","tunnelType":"vxlan","labels":{"rack":"r1"}}`},
	{"PUT", "/api/v1/hosts/{ref}", "h1", "", `{"name":"h1","address":"192.168.200.11","labels":{"zone":"a"}}`},
	{"PATCH", "/api/v1/hosts/{ref}", "h1", "", `{"labels":{"zone":"b"}}`},
	{"POST", "/api/v1/networks", "", "", `{"name":"red","cidr":"10.20.0.0/24","mtu":1400,"labels":{"t":"x"}}`},
	{"PUT", "/api/v1/networks/{ref}", "blue", "", `{"name":"blue","cidr":"10.10.0.0/24","mtu":1300}`},
	{"PATCH", "/api/v1/networks/{ref}", "blue", "", `{"mtu":1350,"labels":{"n":"1"}}`},
	{"POST", "/api/v1/containers", "", "", `{"name":"c9","network":"blue","host":"h1","labels":{"app":"web"},"publish":[{"hostPort":8080,"port":80,"protocol":"TCP"}]}`},
	{"PUT", "/api/v1/containers/{ref}", "c1", "network=blue", `{"name":"c1","network":"blue","host":"h1","labels":{"n":"7","v":"2"}}`},
	{"PATCH", "/api/v1/containers/{ref}", "c1", "network=blue", `{"labels":{"n":"8"}}`},
	{"POST", "/api/v1/containers/{ref}/move", "c1", "network=blue", `{"host":"h1"}`},
	{"POST", "/api/v1/services", "", "", `{"name":"s9","network":"blue","selector":"n=7","ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP","nodePort":30080}],"sessionAffinity":"ClientIP","weights":[{"selector":"v=2","weight":10}]}`},
	{"PUT", "/api/v1/services/{ref}", "s1", "network=blue", `{"name":"s1","network":"blue","selector":"n=7","ports":[{"port":81}]}`},
	{"PATCH", "/api/v1/services/{ref}", "s1", "network=blue", `{"ports":[{"port":82,"protocol":"UDP"}]}`},
	{"POST", "/api/v1/policies", "", "", `{"name":"p9","network":"blue","selector":"n=7","ingress":[{"peers":[{"selector":"app=web"},{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}],"ports":[{"port":80,"endPort":90,"protocol":"TCP"},{"protocol":"ICMP"}]}],"egress":[],"action":"deny","priority":10,"log":true}`},
	{"PUT", "/api/v1/policies/{ref}", "p1", "network=blue", `{"name":"p1","network":"blue","egress":[{"ports":[{"port":53,"protocol":"UDP"}]}]}`},
	{"PATCH", "/api/v1/policies/{ref}", "p1", "network=blue", `{"ingress":[{"peers":[{"selector":""}]}]}`},
	{"POST", "/api/v1/tokens", "", "", `{"name":"t9","role":"node","host":"h1"}`},
	{"POST", "/api/v1/nodes/{host}/register", "h1", "", `{"address":"192.168.200.11","tunnelType":"geneve"}`},
	{"POST", "/api/v1/nodes/{host}/status", "h1", "", `{"appliedRevision":0,"digest":"","ports":[{"name":"syc1","ofport":3,"up":true}]}`},
	{"POST", "/api/v1/traces", "", "", `{"source":{"container":"c1","network":"blue"},"destination":{"address":"10.10.0.9"},"protocol":"UDP","port":53,"sourcePort":4000}`},
	{"POST", "/api/v1/nodes/{host}/jobs/{id}/result", "h1", "", `{"status":"ok","trace":{"output":"Datapath actions: drop"},"probe":{"outcome":"timeout","micros":5}}`},
}

// addBodySeeds adds a seed of FuzzRequest per bodyOps entry, and fails if
// an operation of the contract that takes a body has none.
func addBodySeeds(f *testing.F, ft *fuzzTarget, add func(method, path, pathValue, query, contentType, body string)) {
	missing := map[string]bool{}
	for _, o := range ft.ops {
		if o.hasBody() {
			missing[strings.ToUpper(o.method)+" "+o.path] = true
		}
	}
	for _, b := range bodyOps {
		delete(missing, b.method+" "+b.path)
		add(b.method, b.path, b.value, b.query, "application/json", b.body)
	}
	if len(missing) > 0 {
		f.Fatalf("operations with a body and no seed in bodyOps: %v", missing)
	}
}
