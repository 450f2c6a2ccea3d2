package nodes_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// BenchmarkFanout: the controller's fan-out at scale. Simulated agents
// (simagent_test.go: register, long-poll, patch, acknowledge; no OVS) on
// 100 or 1,000 hosts and 10,000 containers, in networks of 10 hosts each
// (a tenant's network spans 10 hosts: 1,000 containers per network at 100
// hosts, 100 at 1,000). Per op, one container is created through the REST
// API with ?wait=realized, which answers once every host the change touches
// has acknowledged it: its latency is REST create -> program acknowledged
// by all touched hosts. Reported: p50/p99 of it, the process's CPU per
// change (controller, HTTP both ways, and the simulated agents), its RSS
// after the run, the hosts a change touches, and the setup's fill and first
// convergence times.
func BenchmarkFanout(b *testing.B) {
	for _, hosts := range []int{100, 1000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) { benchFanout(b, hosts, 10_000) })
	}
}

func benchFanout(b *testing.B, hosts, ctrs int) {
	const span = 10 // hosts per network
	nets := hosts / span
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := testenv.Start(b, testenv.DatabaseURL(b), nil)
	m := ctl.Server.Realizer.(*nodes.Manager)
	fl := newFleet(ctl.URL, 0)
	for i := 0; i < nets; i++ {
		n := openapi.Network{Name: fmt.Sprint("n", i), CIDR: fmt.Sprintf("10.%d.%d.0/20", i/16, i%16*16)}
		if _, err := ctl.Store.CreateNetwork(ctx, "bench", n); err != nil {
			b.Fatal(err)
		}
	}
	host := func(i int) string { return fmt.Sprint("h", i) }
	start := time.Now()
	parallel(b, hosts, func(i int) error { return fl.register(ctx, host(i), i) })
	for i := 0; i < hosts; i++ {
		go fl.run(ctx, host(i))
	}
	// Container i is in network i%nets, on one of that network's hosts.
	place := func(i int) (string, string) {
		n := i % nets
		return fmt.Sprint("n", n), host(n*span + (i/nets)%span)
	}
	fill(b, ctl, "c", ctrs, place)
	filled := time.Since(start)
	converge := func() {
		want, err := nodes.Digests(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		fl.waitDigests(b, want)
	}
	converge()
	converged := time.Since(start)
	create := func(name string, i int) {
		netw, h := place(i)
		c := openapi.Container{Name: name, Network: netw, Host: h}
		if _, err := fl.do(ctx, "POST", "/api/v1/containers?wait=realized&timeout=60s", c, nil); err != nil {
			b.Fatal(err)
		}
	}
	// One change outside the timing: how many hosts it touches.
	before, _ := nodes.Digests(ctx, m)
	create("warmup", 0)
	after, _ := nodes.Digests(ctx, m)
	touched := 0
	for h, d := range after {
		if before[h] != d {
			touched++
		}
	}
	var lat []time.Duration
	t0 := cpuTime()
	for n := 0; b.Loop(); n++ { // b.Loop: the setup above runs once
		s := time.Now()
		create(fmt.Sprint("x", n), n*7)
		lat = append(lat, time.Since(s))
	}
	cpu := cpuTime() - t0
	fl.check(b)
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/change")
	b.ReportMetric(rssMB(), "rss-MB")
	b.ReportMetric(float64(touched), "hosts-touched/change")
	b.ReportMetric(filled.Seconds(), "fill-s")
	b.ReportMetric(converged.Seconds(), "converged-s")
}

// parallel runs fn(0..n-1) on 64 workers and fails b on the first error.
func parallel(b testing.TB, n int, fn func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	next := atomic.Int64{}
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}
