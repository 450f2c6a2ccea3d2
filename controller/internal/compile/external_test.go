package compile

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// externalScenario: three hosts (h3 without containers), blue with an
// egress IP, green with egress off; web1 on h1 publishes 8080 -> 80;
// services "web" (blue, Cluster node port 30080) and "local" (green,
// Local node port 30081, its one backend on h2).
func externalScenario() *Snapshot {
	blue, green := network("blue", 1), network("green", 2)
	blue.EgressIP = "192.168.1.200"
	green.Egress = &openapi.NetworkEgress{SNAT: false}
	web1 := container("web1", blue.Name, 1, 0, "h1")
	web1.Labels = map[string]string{"app": "web"}
	web1.Publish = []openapi.PublishedPort{{HostPort: 8080, Port: 80}, {HostPort: 8053, Port: 53, Protocol: "UDP", HostIP: "192.168.1.1"}}
	web2 := container("web2", blue.Name, 1, 1, "h2")
	web2.Labels = map[string]string{"app": "web"}
	db := container("db", green.Name, 2, 0, "h2")
	db.Labels = map[string]string{"app": "db"}
	cli := container("client", green.Name, 2, 1, "h1")
	web := svc("web", blue, 3, "app=web", openapi.ServicePort{Name: "http", Port: 80, Protocol: "TCP", NodePort: 30080})
	local := svc("local", green, 4, "app=db", openapi.ServicePort{Name: "pg", Port: 5432, Protocol: "TCP", NodePort: 30081})
	local.ExternalTrafficPolicy = openapi.TrafficLocal
	return &Snapshot{Revision: 30,
		Hosts: []openapi.Host{host("h1", "192.168.1.1", openapi.TunnelGeneve), host("h2", "192.168.1.2", openapi.TunnelGeneve),
			host("h3", "192.168.1.3", openapi.TunnelGeneve)},
		Networks:   []openapi.Network{blue, green},
		Containers: []openapi.Container{web1, web2, db, cli},
		Services:   []openapi.Service{web, local},
	}
}

func TestExternalGolden(t *testing.T) {
	s := externalScenario()
	progs := Compile(s)
	checkInvariants(t, s, progs)
	checkGolden(t, "ext-basic", renderPrograms(progs))
}

// TestExternalWhat checks the gateways: routes where networks are present
// (h3 only through the Cluster node port's pin), the published ports on
// their container's host only, node ports on every host (Local: DNAT only
// where its network is; a host without its backend rejects), egress SNAT
// per network with egress on, the egress IP on exactly one host.
func TestExternalWhat(t *testing.T) {
	s := externalScenario()
	p := Compile(s)
	routes := func(h string) []string {
		var out []string
		for _, r := range p[h].Gateway.Routes {
			out = append(out, r.Dst+"@"+r.Via)
		}
		return out
	}
	nat := func(h string) []string {
		var out []string
		for _, r := range p[h].Gateway.NAT {
			out = append(out, r.Key()+">"+r.ToIP+"|"+r.SNATTo)
		}
		return out
	}
	if got := routes("h3"); !slices.Equal(got, []string{"10.1.0.0/16@", "10.96.1.3/32@10.1.0.1"}) {
		t.Errorf("h3 routes %v", got)
	}
	if got := routes("h1"); !slices.Equal(got, []string{"10.1.0.0/16@", "10.2.0.0/16@", "10.96.1.3/32@10.1.0.1", "10.96.2.4/32@10.2.0.1"}) {
		t.Errorf("h1 routes %v", got)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		n := strings.Join(nat(h), " ")
		if strings.Contains(n, "publish") != (h == "h1") {
			t.Errorf("%s: publish rules %s", h, n)
		}
		if !strings.Contains(n, "nodePort/service/svc-web/TCP//30080/>10.96.1.3") {
			t.Errorf("%s: no Cluster node port: %s", h, n)
		}
		wantLocalDNAT := h != "h3" // green is on h1 and h2
		if strings.Contains(n, "nodePort/service/svc-local/TCP//30081/>10.96.2.4") != wantLocalDNAT {
			t.Errorf("%s: Local node port DNAT %v: %s", h, !wantLocalDNAT, n)
		}
		if strings.Contains(n, "egress/network/green") {
			t.Errorf("%s: green has egress off but a SNAT rule: %s", h, n)
		}
	}
	holders := 0
	for _, h := range []string{"h1", "h2", "h3"} {
		if len(p[h].Gateway.EgressIPs) == 1 && p[h].Gateway.EgressIPs[0] == "192.168.1.200" {
			holders++
			if !strings.Contains(strings.Join(nat(h), " "), "egress/network/blue///0/10.1.0.0/16>|192.168.1.200") {
				t.Errorf("holder %s does not SNAT blue to its egress IP: %v", h, nat(h))
			}
		}
	}
	if holders != 1 {
		t.Errorf("%d hosts hold blue's egress IP", holders)
	}
	// Local: h2 has the backend (a group of it), h1 rejects.
	if !strings.Contains(Render(p["h2"]), "reg1=0x8/0x8,reg0=102,nw_dst=10.96.2.4,tp_dst=5432 actions=group:") {
		t.Errorf("h2: no Local group flow")
	}
	if !strings.Contains(Render(p["h1"]), "reg1=0x8/0x8,reg0=102,nw_dst=10.96.2.4,tp_dst=5432 actions=controller(") {
		t.Errorf("h1: no Local reject flow")
	}
	// Egress off: only replies leave green.
	if r := Render(p["h1"]); strings.Contains(r, "priority=50, cookie="+fmt.Sprintf("%#x", Owner(KindNetwork, "green"))) {
		t.Errorf("h1: green has an egress flow with egress off")
	}
}

// TestEgressIPFailover: the holder going NotReady moves the egress IP to
// another Ready host, in the programs of both (incrementally, as Full).
func TestEgressIPFailover(t *testing.T) {
	s := externalScenario()
	c := New()
	progs := c.Full(s)
	holder := ""
	for h, p := range progs {
		if len(p.Gateway.EgressIPs) > 0 {
			holder = h
		}
	}
	if holder == "" {
		t.Fatal("no holder")
	}
	var down openapi.Host
	for _, h := range s.Hosts {
		if h.Name == holder {
			down = h
		}
	}
	down.Status = openapi.HostNotReady
	ups := c.Apply(31, PutHost(down))
	if len(ups) == 0 {
		t.Fatal("no host changed")
	}
	now := ""
	for _, h := range c.Hosts() {
		if len(mustProgram(t, c, h).Gateway.EgressIPs) > 0 {
			if now != "" {
				t.Fatalf("two holders: %s and %s", now, h)
			}
			now = h
		}
	}
	if now == "" || now == holder {
		t.Fatalf("egress IP holder %q after %s went NotReady", now, holder)
	}
	// The new holder has blue present (tunnels to blue's hosts).
	if !strings.Contains(Render(mustProgram(t, c, now)), "nw_dst=10.1.0.0/16") {
		t.Errorf("%s holds blue's egress IP without blue", now)
	}
}
