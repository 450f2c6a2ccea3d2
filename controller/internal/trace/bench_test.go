package trace

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/openapi"
)

// bigSnapshot is the benchmark's shape: hosts hosts, containers containers
// in one network spread round-robin over them (labels app=a0..a49,
// tier=t0..t4), policies policies, each selecting one app and taking TCP
// from the next one, and a service per app.
func bigSnapshot(hosts, containers, policies int) *compile.Snapshot {
	s := &compile.Snapshot{Revision: 1,
		Networks: []openapi.Network{{Name: "big", CIDR: "10.128.0.0/16", Gateway: "10.128.0.1", VNI: 7, MTU: 1400}}}
	for h := range hosts {
		s.Hosts = append(s.Hosts, openapi.Host{Name: fmt.Sprintf("h%d", h), Address: fmt.Sprintf("192.168.1.%d", h+1),
			TunnelType: openapi.TunnelGeneve, Status: openapi.HostReady})
	}
	for i := range containers {
		ip := 2 + i
		s.Containers = append(s.Containers, openapi.Container{Meta: openapi.Meta{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)},
			Name: fmt.Sprintf("c%d", i), Network: "big", Host: fmt.Sprintf("h%d", i%hosts),
			IP: fmt.Sprintf("10.128.%d.%d", ip/256, ip%256), MAC: fmt.Sprintf("0a:58:0a:80:%02x:%02x", ip/256, ip%256),
			Labels: map[string]string{"app": fmt.Sprintf("a%d", i%50), "tier": fmt.Sprintf("t%d", i%5)}})
	}
	sel := func(s string) *string { return &s }
	for k := range policies {
		s.Policies = append(s.Policies, openapi.Policy{Meta: openapi.Meta{ID: fmt.Sprintf("p%07d-0000-4000-8000-000000000000", k)},
			Name: fmt.Sprintf("p%d", k), Network: "big", Selector: fmt.Sprintf("app=a%d", k%50), Priority: 1 + k%100, Action: openapi.ActionAllow,
			Ingress: []openapi.PolicyRule{{Peers: []openapi.PolicyPeer{{Selector: sel(fmt.Sprintf("app=a%d", (k+1)%50))}},
				Ports: []openapi.PolicyPort{{Protocol: "TCP", Port: 80 + k%10}}}}})
	}
	for a := range 50 {
		s.Services = append(s.Services, openapi.Service{Meta: openapi.Meta{ID: fmt.Sprintf("5%07d-0000-4000-8000-000000000000", a)},
			Name: fmt.Sprintf("s%d", a), Network: "big", VIP: fmt.Sprintf("10.96.0.%d", a+1), Selector: fmt.Sprintf("app=a%d", a),
			GroupID: uint32(a + 1), Ports: []openapi.ServicePort{{Port: 80, Protocol: "TCP"}}})
	}
	return s
}

// BenchmarkTraceIntentCompiled measures the intent and compiled layers of
// POST /traces (Compute and Finish, no agents) at 10 hosts x 1,000
// containers x 1,000 policies, for random container pairs (ports 80-89)
// and container-to-service traces, with the programs precompiled (the
// controller's compiler caches them). Reports p50/p99 per trace.
//
//	go test -run '^$' -bench TraceIntentCompiled ./controller/internal/trace/
func BenchmarkTraceIntentCompiled(b *testing.B) {
	start := time.Now()
	snap := bigSnapshot(10, 1000, 1000)
	progs := compile.Compile(snap)
	flows := 0
	for _, p := range progs {
		flows = max(flows, len(p.Flows))
	}
	b.Logf("compiled %d hosts in %s, up to %d flows per host", len(progs), time.Since(start).Round(time.Millisecond), flows)
	env := Env{Snap: snap, Program: func(h string) (*openapi.Program, error) { return progs[h], nil }}
	rng := rand.New(rand.NewPCG(1, 2))
	var ms []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		src := fmt.Sprintf("c%d", rng.IntN(1000))
		dst := openapi.TraceRequestEnd{Container: fmt.Sprintf("c%d", rng.IntN(1000))}
		if i%4 == 3 {
			dst = openapi.TraceRequestEnd{Service: fmt.Sprintf("s%d", rng.IntN(50))}
		}
		t0 := time.Now()
		p, err := Compute(env, openapi.TraceRequest{Source: openapi.TraceRequestEnd{Container: src}, Destination: dst, Port: 80 + rng.IntN(10)})
		if err != nil {
			b.Fatal(err)
		}
		if tr := p.Finish(); tr.Disagreement {
			b.Fatalf("intent and compiled disagree: %+v", tr.Disagreements)
		}
		ms = append(ms, float64(time.Since(t0))/float64(time.Millisecond))
	}
	b.StopTimer()
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)*50/100], "p50-ms")
	b.ReportMetric(ms[min(len(ms)-1, len(ms)*99/100)], "p99-ms")
	b.ReportMetric(float64(flows), "flows/host")
	b.ReportMetric(load1(), "load1")
}

func load1() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	return v
}
