package api_test

import (
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// A network's egress defaults to SNAT on, is shown in answers, and changes
// with replace and patch; its egress IP is validated (400) and clashes
// (409 naming the holder) with nothing written.
func TestNetworkEgressHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var n openapi.Network
	e.must(200, "GET", "/api/v1/networks/blue", nil).decode(t, &n)
	if n.Egress == nil || !n.Egress.SNAT || n.EgressIP != "" {
		t.Fatalf("default egress: %+v %q", n.Egress, n.EgressIP)
	}
	n = openapi.Network{}
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"egress": map[string]any{"snat": false}}).decode(t, &n)
	if n.EgressEnabled() {
		t.Fatalf("patched egress: %+v", n.Egress)
	}
	n = openapi.Network{}
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"mtu": 1300}).decode(t, &n)
	if n.EgressEnabled() {
		t.Fatal("a patch of another field turned egress back on")
	}
	// A replace without egress is the default.
	n = openapi.Network{}
	e.must(200, "PUT", "/api/v1/networks/blue", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"}).decode(t, &n)
	if !n.EgressEnabled() {
		t.Fatal("a replace without egress left it off")
	}

	var red openapi.Network
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "red", "cidr": "10.20.0.0/24", "egressIP": "192.168.200.100"}).decode(t, &red)
	if red.EgressIP != "192.168.200.100" || !red.EgressEnabled() {
		t.Fatalf("created %+v", red)
	}
	cases := []struct {
		name, ip string
		status   int
		holder   string
	}{
		{"not an address", "192.168.200", 400, ""},
		{"loopback", "127.0.0.1", 400, ""},
		{"multicast", "224.0.0.5", 400, ""},
		{"unspecified", "0.0.0.0", 400, ""},
		{"service range", "10.96.0.10", 409, "service range"},
		{"own cidr", "10.10.0.200", 409, "own CIDR"},
		{"another network's cidr", "10.20.0.9", 409, "network red"},
		{"another network's egress IP", "192.168.200.100", 409, "egress IP of network red"},
		{"a host's address", "192.168.200.11", 409, "host h1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			for _, w := range []struct {
				method, path string
				body         map[string]any
			}{
				{"POST", "/api/v1/networks", map[string]any{"name": "green", "cidr": "10.30.0.0/24", "egressIP": c.ip}},
				{"PUT", "/api/v1/networks/blue", map[string]any{"name": "blue", "cidr": "10.10.0.0/24", "egressIP": c.ip}},
				{"PATCH", "/api/v1/networks/blue", map[string]any{"egressIP": c.ip}},
			} {
				if w.method == "POST" && c.holder == "own CIDR" {
					w.body["egressIP"] = "10.30.0.200"
				}
				p := e.refused(c.status, "egressIP", w.method, w.path, w.body)
				if c.holder != "" {
					wantHolder(t, p, c.holder)
				}
			}
		})
	}
	e.t = t
	// A CIDR that holds another network's egress IP, a host on that
	// address: both clash with red.
	wantHolder(t, e.refused(409, "cidr", "POST", "/api/v1/networks", map[string]any{"name": "under", "cidr": "192.168.200.0/24"}), "network red")
	wantHolder(t, e.refused(409, "address", "POST", "/api/v1/hosts", map[string]any{"name": "h3", "address": "192.168.200.100"}), "network red")
	wantHolder(t, e.refused(409, "address", "PATCH", "/api/v1/hosts/h1", map[string]any{"address": "192.168.200.100"}), "network red")
	// Changed, then removed with a merge patch null, the address is free.
	e.must(200, "PATCH", "/api/v1/networks/red", map[string]any{"egressIP": "192.168.200.101"})
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"egressIP": "192.168.200.100"})
	n = openapi.Network{}
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"egressIP": nil}).decode(t, &n)
	if n.EgressIP != "" {
		t.Fatalf("egressIP after null: %q", n.EgressIP)
	}
	e.must(201, "POST", "/api/v1/hosts", map[string]any{"name": "h3", "address": "192.168.200.100"})
}

// A host's new address carries the ports published on the old one: a
// hostIP naming it names the new address, with a container event.
func TestHostAddressMovesPublishedHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h1",
		"publish": pubs(map[string]any{"hostPort": 8080, "port": 80, "hostIP": "192.168.200.11"}, pub(8081, 81, ""))})
	from := e.revision()
	e.must(200, "PATCH", "/api/v1/hosts/h1", map[string]any{"address": "192.168.200.21"})
	var c openapi.Container
	e.must(200, "GET", "/api/v1/containers/web", nil).decode(t, &c)
	if len(c.Publish) != 2 || c.Publish[0].HostIP != "192.168.200.21" || c.Publish[1].HostIP != "" {
		t.Fatalf("after the host's address changed: %+v", c.Publish)
	}
	evs := e.events(from, "container")
	if len(evs) != 1 || evs[0].Name != "web" || evs[0].Action != openapi.EventUpdated {
		t.Fatalf("container events: %+v", evs)
	}
}
