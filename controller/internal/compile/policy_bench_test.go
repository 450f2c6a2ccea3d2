package compile

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// The policy scale target: the 10,000-container snapshot of bench_test.go
// (50 hosts, 100 networks) with 1,000 policies, 10 per network.
const benchPolicies = 1000

// bigPolicySnapshot labels the containers of bigSnapshot (app: one of 20
// per network, so a policy selects ~5 containers; tier: fe/be/db) and adds
// nPol policies: each selects one app, allows ingress from tier=fe on TCP 80
// and 8000-8999 and egress to 10.0.0.0/8 except its own /16 on UDP 53;
// priorities at random, one in five a deny.
func bigPolicySnapshot(nPol int) *Snapshot {
	s := bigSnapshot(benchHosts, benchNets, benchCtrs)
	tiers := []string{"fe", "be", "db"}
	for i := range s.Containers {
		s.Containers[i].Labels = map[string]string{"app": fmt.Sprint("app", i%20), "tier": tiers[i%3]}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < nPol; i++ {
		s.Policies = append(s.Policies, benchPolicy(r, i, s.Networks[i%len(s.Networks)].Name, i%len(s.Networks)+1))
	}
	return s
}

func benchPolicy(r *rand.Rand, i int, network string, netIdx int) openapi.Policy {
	action := openapi.ActionAllow
	if r.IntN(5) == 0 {
		action = openapi.ActionDeny
	}
	return openapi.Policy{
		Meta: openapi.Meta{ID: fakeUUID(fmt.Sprint("policy", i))}, Name: fmt.Sprint("p", i), Network: network,
		Selector: fmt.Sprint("app=app", r.IntN(20)), Priority: 1 + r.IntN(10000), Action: action,
		Ingress: []openapi.PolicyRule{{
			Peers: []openapi.PolicyPeer{{Selector: sel("tier=fe")}},
			Ports: []openapi.PolicyPort{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8000, EndPort: 8999}},
		}},
		Egress: []openapi.PolicyRule{{
			Peers: []openapi.PolicyPeer{{CIDR: "10.0.0.0/8", Except: []string{fmt.Sprintf("10.%d.0.0/16", netIdx)}}},
			Ports: []openapi.PolicyPort{{Protocol: "UDP", Port: 53}},
		}},
	}
}

func BenchmarkFullCompilePolicies(b *testing.B) {
	s := bigPolicySnapshot(benchPolicies)
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
	total, pol, maxPol := 0, 0, 0
	for _, p := range progs {
		total += len(p.Flows)
		n := 0
		for _, f := range p.Flows {
			if (f.Table == int(TableEgressPolicy) || f.Table == int(TableIngressPolicy)) && f.Cookie != 0 {
				n++
			}
		}
		pol += n
		maxPol = max(maxPol, n)
	}
	b.ReportMetric(float64(total)/float64(len(progs)), "flows/host")
	b.ReportMetric(float64(pol)/float64(len(progs)), "policy-flows/host")
	b.ReportMetric(float64(maxPol), "max-policy-flows/host")

	reportLive(b, s, &before)
}

// BenchmarkIncrementalPolicy changes one policy's selector and priority back
// and forth: each op is one policy update on the 10k/1k snapshot.
func BenchmarkIncrementalPolicy(b *testing.B) {
	s := bigPolicySnapshot(benchPolicies)
	c := New()
	c.Full(s)
	p0 := s.Policies[7]
	p1 := p0
	p1.Selector, p1.Priority = "app=app3", 42
	hosts, i := 0, 0
	b.ReportAllocs()
	cpu := cpuTime()
	defer func() { reportCPU(b, cpu) }()
	for b.Loop() {
		p := p0
		if i%2 == 0 {
			p = p1
		}
		hosts = len(c.Apply(int64(i+2), PutPolicy(p)))
		i++
	}
	b.ReportMetric(float64(hosts), "hosts-changed")
}

// BenchmarkIncrementalRelabel relabels one container between two tiers:
// every policy of its network that has it as a peer is recomputed.
func BenchmarkIncrementalRelabel(b *testing.B) {
	s := bigPolicySnapshot(benchPolicies)
	c := New()
	c.Full(s)
	ct := s.Containers[0]
	fe, be := ct, ct
	fe.Labels = map[string]string{"app": "app0", "tier": "fe"}
	be.Labels = map[string]string{"app": "app0", "tier": "be"}
	hosts, i := 0, 0
	b.ReportAllocs()
	cpu := cpuTime()
	defer func() { reportCPU(b, cpu) }()
	for b.Loop() {
		x := fe
		if i%2 == 0 {
			x = be
		}
		hosts = len(c.Apply(int64(i+2), PutContainer(x)))
		i++
	}
	b.ReportMetric(float64(hosts), "hosts-changed")
}

// cpuTime is the process's CPU time (user + system): on a shared machine it
// says more than the wall clock. The compiler is single-threaded; the GC
// runs beside it and counts too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N)/1e6, "cpu-ms/op")
}
