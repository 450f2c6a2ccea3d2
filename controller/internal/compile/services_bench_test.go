package compile

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// The services scale target: the 10,000-container snapshot of bench_test.go
// (50 hosts, 100 networks) with 1,000 services of 10 backends each.
const benchServices = 1000

// bigServiceSnapshot labels the containers of bigSnapshot svc=<n> (the
// n-th ten of its network) and adds one service per label in the first
// nSvc: TCP 80 -> 8080 and UDP 53, a TCP health check, ClientIP affinity on
// one in four.
func bigServiceSnapshot(nSvc int) *Snapshot {
	s := bigSnapshot(benchHosts, benchNets, benchCtrs)
	perNet := map[string]int{}
	type key struct {
		net string
		k   int
	}
	seen := map[key]bool{}
	for i := range s.Containers {
		c := &s.Containers[i]
		k := perNet[c.Network] / 10
		perNet[c.Network]++
		c.Labels = map[string]string{"app": c.Name, "svc": fmt.Sprint("s", k)}
		seen[key{c.Network, k}] = true
	}
	j := 0
	for k := 0; j < nSvc; k++ {
		for n := range s.Networks {
			if j == nSvc || !seen[key{s.Networks[n].Name, k}] {
				continue
			}
			sv := openapi.Service{
				Meta: openapi.Meta{ID: fakeUUID(fmt.Sprint("svc", j))}, Name: fmt.Sprint("svc", j), Network: s.Networks[n].Name,
				VIP: fmt.Sprintf("10.96.%d.%d", j/250, j%250+1), GroupID: uint32(j + 1), Selector: fmt.Sprint("svc=s", k),
				Ports:           []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}},
				SessionAffinity: openapi.AffinityNone,
				HealthCheck:     &openapi.HealthCheck{Protocol: "TCP", Port: 8080, IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1},
			}
			if j%4 == 0 {
				sv.SessionAffinity = openapi.AffinityClientIP
			}
			s.Services = append(s.Services, sv)
			j++
		}
	}
	return s
}

func BenchmarkFullCompileServices(b *testing.B) {
	s := bigServiceSnapshot(benchServices)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	var progs map[string]*openapi.Program
	cpu := cpuTime()
	for b.Loop() {
		progs = Compile(s)
	}
	reportCPU(b, cpu)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MB-alloc/op")
	flows, groups, buckets, dns, probes := 0, 0, 0, 0, 0
	for _, p := range progs {
		flows += len(p.Flows)
		groups += len(p.Groups)
		for _, g := range p.Groups {
			buckets += countBuckets(g.Spec)
		}
		dns += len(p.DNS)
		probes += len(p.HealthChecks)
	}
	n := float64(len(progs))
	b.ReportMetric(float64(flows)/n, "flows/host")
	b.ReportMetric(float64(groups)/n, "groups/host")
	b.ReportMetric(float64(buckets)/float64(max(groups, 1)), "buckets/group")
	b.ReportMetric(float64(dns)/n, "dns/host")
	b.ReportMetric(float64(probes)/n, "probes/host")
	reportLive(b, s, &before)
}

func countBuckets(spec string) int {
	n := 0
	for i := 0; i+7 <= len(spec); i++ {
		if spec[i:i+7] == "bucket=" {
			n++
		}
	}
	return n
}

// benchServiceChange alternates two changes on the 10k/1k snapshot; each op
// is one Apply.
func benchServiceChange(b *testing.B, a, z Change) {
	c := New()
	c.Full(bigServiceSnapshot(benchServices))
	hosts, i := 0, 0
	b.ReportAllocs()
	cpu := cpuTime()
	defer func() { reportCPU(b, cpu) }()
	for b.Loop() {
		ch := a
		if i%2 == 1 {
			ch = z
		}
		hosts = len(c.Apply(int64(i+2), ch))
		i++
	}
	b.ReportMetric(float64(hosts), "hosts-changed")
}

// BenchmarkIncrementalService changes one service's target port and back.
func BenchmarkIncrementalService(b *testing.B) {
	s := bigServiceSnapshot(benchServices)
	sv := s.Services[7]
	changed := sv
	changed.Ports = []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 9090, Protocol: "TCP"}, sv.Ports[1]}
	benchServiceChange(b, PutService(changed), PutService(sv))
}

// BenchmarkIncrementalBackendHealth flips one backend's health verdict.
func BenchmarkIncrementalBackendHealth(b *testing.B) {
	s := bigServiceSnapshot(benchServices)
	sv := s.Services[7]
	var backend string
	for _, c := range s.Containers {
		if c.Network == sv.Network && "svc="+c.Labels["svc"] == sv.Selector {
			backend = c.ID
			break
		}
	}
	benchServiceChange(b, PutEndpointHealth(openapi.EndpointHealth{Service: sv.ID, Container: backend, Healthy: false}),
		DeleteEndpointHealth(sv.ID, backend))
}

// BenchmarkIncrementalBackendRelabel moves one backend from one service to
// another of its network (both recomputed).
func BenchmarkIncrementalBackendRelabel(b *testing.B) {
	s := bigServiceSnapshot(benchServices)
	c0 := s.Containers[0]
	c1 := c0
	c1.Labels = map[string]string{"app": c0.Name, "svc": "s1"}
	if c0.Labels["svc"] == "s1" {
		c1.Labels["svc"] = "s2"
	}
	benchServiceChange(b, PutContainer(c1), PutContainer(c0))
}
