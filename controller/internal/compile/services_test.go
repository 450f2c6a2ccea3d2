package compile

import (
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// svc is a test service on network n (10.<i>.0.0/16) with VIP
// 10.96.<i>.<g>, outside the network as the store's VIP range is.
func svc(name string, n openapi.Network, g uint32, selector string, ports ...openapi.ServicePort) openapi.Service {
	return openapi.Service{
		Meta: openapi.Meta{ID: "svc-" + name}, Name: name, Network: n.Name,
		VIP: "10.96." + strings.Split(n.Gateway, ".")[1] + "." + strconv.Itoa(int(g)), GroupID: g, Selector: selector, Ports: ports,
		SessionAffinity: openapi.AffinityNone,
	}
}

var (
	httpPort = openapi.ServicePort{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}
	dnsPort  = openapi.ServicePort{Name: "dns", Port: 53, Protocol: "UDP"}
)

// serviceScenarios are small snapshots with services, reviewed by eye:
// buckets and weights, NAT, affinity, hairpin, reject, DNS steering.
func serviceScenarios() map[string]*Snapshot {
	blue := network("blue", 1)
	ctr := func(name string, k int, h string, labels map[string]string) openapi.Container {
		c := container(name, blue.Name, 1, k, h)
		c.Labels = labels
		return c
	}
	base := func(rev int64) *Snapshot {
		return &Snapshot{
			Revision: rev,
			Hosts:    []openapi.Host{host("h1", "192.168.1.1", openapi.TunnelGeneve), host("h2", "192.168.1.2", openapi.TunnelGeneve)},
			Networks: []openapi.Network{blue},
			Containers: []openapi.Container{
				ctr("web1", 0, "h1", map[string]string{"app": "web", "version": "v1"}),
				ctr("web2", 1, "h2", map[string]string{"app": "web", "version": "v1"}),
				ctr("web3", 2, "h2", map[string]string{"app": "web", "version": "v2"}),
				ctr("client", 3, "h1", map[string]string{"app": "client"}),
			},
		}
	}
	out := map[string]*Snapshot{}
	// Two ports (TCP and UDP), three backends on two hosts, equal weights,
	// a health check (probes on each backend's host), custom DNS domain.
	s := base(20)
	web := svc("web", blue, 3, "app=web", httpPort, dnsPort)
	web.HealthCheck = &openapi.HealthCheck{Protocol: "HTTP", Port: 8080, Path: "/healthz", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}
	s.Services = []openapi.Service{web}
	s.DNSDomain = "corp.example"
	out["svc-basic"] = s
	// Canary weights 90/10, one backend unhealthy (web2 leaves the
	// buckets), ClientIP affinity with a 60 s timeout.
	s = base(21)
	canary := svc("web", blue, 3, "app=web", httpPort, openapi.ServicePort{Name: "diameter", Port: 3868, Protocol: "SCTP"})
	canary.Weights = []openapi.ServiceWeight{{Selector: "version=v1", Weight: 90}, {Selector: "version=v2", Weight: 10}}
	canary.SessionAffinity, canary.SessionAffinityTimeoutSeconds = openapi.AffinityClientIP, 60
	canary.HealthCheck = &openapi.HealthCheck{Protocol: "TCP", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}
	s.Services = []openapi.Service{canary}
	s.EndpointHealth = []openapi.EndpointHealth{{Service: canary.ID, Container: s.Containers[1].ID, Healthy: false, Reason: "refused"}}
	out["svc-canary-affinity"] = s
	// Reject: one service selects nothing, one has every backend
	// unhealthy; one is not compiled at all (no group ID).
	s = base(22)
	none := svc("none", blue, 4, "app=nothing", httpPort)
	sick := svc("sick", blue, 5, "app=client", httpPort)
	broken := svc("broken", blue, 6, "app=web", httpPort)
	broken.GroupID = 0
	s.Services = []openapi.Service{none, sick, broken}
	s.EndpointHealth = []openapi.EndpointHealth{{Service: sick.ID, Container: s.Containers[3].ID, Healthy: false}}
	out["svc-reject"] = s
	return out
}

func TestServiceGolden(t *testing.T) {
	for name, s := range serviceScenarios() {
		t.Run(name, func(t *testing.T) {
			progs := Compile(s)
			checkInvariants(t, s, progs)
			checkGolden(t, name, renderPrograms(progs))
		})
	}
}

// TestServiceWhat checks the compiled rules on the scenarios: group ids,
// buckets of usable backends only, reject, probes on local backends only,
// DNS records of every container and compiled service.
func TestServiceWhat(t *testing.T) {
	sc := serviceScenarios()
	p := Compile(sc["svc-basic"])
	for _, h := range []string{"h1", "h2"} {
		g := p[h].Groups
		if len(g) != 2 || g[0].ID != 3*openapi.MaxServicePorts || g[1].ID != 3*openapi.MaxServicePorts+1 ||
			strings.Count(g[0].Spec, "bucket=") != 4 { // 3 backends + the fine-grain piece

			t.Fatalf("%s: groups %+v", h, g)
		}
		if len(p[h].DNS) != 5 {
			t.Errorf("%s: DNS records %+v", h, p[h].DNS)
		}
		for _, cp := range p[h].Containers {
			if cp.DNSDomain != "corp.example" || cp.DNSSearch != "blue.corp.example corp.example" {
				t.Errorf("%s: port %+v", h, cp)
			}
		}
	}
	if n1, n2 := len(p["h1"].HealthChecks), len(p["h2"].HealthChecks); n1 != 1 || n2 != 2 || p["h1"].HealthChecks[0].Port != ContainerPortName(sc["svc-basic"].Containers[0].ID) {
		t.Errorf("probes %+v %+v", p["h1"].HealthChecks, p["h2"].HealthChecks)
	}
	p = Compile(sc["svc-canary-affinity"])
	if spec := p["h1"].Groups[0].Spec; strings.Count(spec, "bucket=") != 3 || !strings.Contains(spec, "weight:29304,") || !strings.Contains(spec, "weight:187,") || !strings.Contains(spec, "weight:6554,") {
		t.Errorf("canary group %s", spec)
	}
	if len(p["h2"].HealthChecks) != 2 {
		t.Errorf("an unhealthy backend is still probed: %+v", p["h2"].HealthChecks)
	}
	p = Compile(sc["svc-reject"])
	if len(p["h1"].Groups) != 0 || strings.Count(Render(p["h1"]), rejectAction) != 2 {
		t.Errorf("reject:\n%s", Render(p["h1"]))
	}
	for _, r := range p["h1"].DNS {
		if r.Name == "broken" {
			t.Error("a service that is not compiled has a DNS record")
		}
	}
	// No DNS domain: the default.
	s := *sc["svc-basic"]
	s.DNSDomain = ""
	if cp := Compile(&s)["h1"].Containers[0]; cp.DNSDomain != DefaultDNSDomain {
		t.Errorf("default domain: %+v", cp)
	}
}

// TestServiceIncremental walks one service through the changes that must
// recompute it and checks after each that every program equals the full
// compile, and which hosts changed.
func TestServiceIncremental(t *testing.T) {
	s := serviceScenarios()["svc-basic"]
	m := newModel(s)
	c := New()
	c.Full(s)
	web := m.svcs["svc-web"]
	ctrs := s.Containers // web1 h1, web2 h2, web3 h2, client h1
	moved := ctrs[2]
	moved.Host = "h1"
	relabelled := ctrs[1]
	relabelled.Labels = map[string]string{"app": "other"}
	steps := []struct {
		what  string
		ch    Change
		hosts int // hosts whose program changes
	}{
		{"unhealthy", PutEndpointHealth(openapi.EndpointHealth{Service: web.ID, Container: ctrs[0].ID, Healthy: false}), 2},
		{"same verdict again", PutEndpointHealth(openapi.EndpointHealth{Service: web.ID, Container: ctrs[0].ID, Healthy: false, Reason: "x"}), 0},
		{"healthy again", DeleteEndpointHealth(web.ID, ctrs[0].ID), 2},
		{"backend relabelled out", PutContainer(relabelled), 2},
		{"backend moves", PutContainer(moved), 2},
		{"backend leaves", DeleteContainer(ctrs[0].ID), 2},
		{"client leaves h1", DeleteContainer(ctrs[3].ID), 2},
		{"service deleted", DeleteService(web.ID), 2},
		{"service back", PutService(web), 2},
		{"network leaves h1", DeleteContainer(moved.ID), 2},
	}
	for i, st := range steps {
		m.apply(st.ch)
		m.rev++
		ups := c.Apply(m.rev, st.ch)
		full := Compile(m.snapshot(nil))
		for _, h := range c.Hosts() {
			sameProgram(t, st.what, mustProgram(t, c, h), full[h])
		}
		if len(ups) != st.hosts {
			t.Errorf("step %d %s: %d hosts changed, want %d", i, st.what, len(ups), st.hosts)
		}
	}
}

// TestServiceSnapshotCarried: the compiler's Snapshot carries services,
// health verdicts and the DNS domain, and a fresh compiler loaded from it
// makes the same programs.
func TestServiceSnapshotCarried(t *testing.T) {
	s := serviceScenarios()["svc-canary-affinity"]
	s.DNSDomain = "x.example"
	c := New()
	c.Full(s)
	c.Apply(30, PutEndpointHealth(openapi.EndpointHealth{Service: "svc-web", Container: s.Containers[2].ID, Healthy: false}))
	got := c.Snapshot()
	if got.DNSDomain != "x.example" || len(got.EndpointHealth) != 2 || len(got.Services) != 1 {
		t.Fatalf("snapshot: %+v", got)
	}
	fresh := Compile(got)
	for _, h := range c.Hosts() {
		sameProgram(t, "reloaded", mustProgram(t, c, h), fresh[h])
	}
}

// TestTableNumbers pins the table numbers other packages hard-code
// (tests/bench cannot import this package).
func TestTableNumbers(t *testing.T) {
	if TableARPResponder != 2 || TableEgressPolicy != 10 || TableIngressPolicy != 13 {
		t.Fatalf("ARPResponder %d, EgressPolicy %d, IngressPolicy %d: update tests/bench", TableARPResponder, TableEgressPolicy, TableIngressPolicy)
	}
}
