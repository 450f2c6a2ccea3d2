package nodes_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/store"
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
// change (controller, HTTP both ways, and the simulated agents) and the
// CPU of the PostgreSQL backends serving the test database (pg-cpu), RSS
// after the run, the hosts a change touches, and the setup's fill and first
// convergence times. Then, outside the timing (fanout_phases_test.go): the
// controller restarted (restart-*: with no change while it was down;
// restart10-*: with 10 changes written while it was down), and two
// replicas sharing the hosts (2rep-*: half the agents on each, the changes
// written through the first, the same number of ops).
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
	dbURL := testenv.DatabaseURL(b)
	ctl := testenv.Start(b, dbURL, nil)
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
	if _, err := converge(ctx, b, fl, m); err != nil {
		b.Fatal(err)
	}
	converged := time.Since(start)
	create := func(name string, i int) {
		netw, h := place(i)
		c := map[string]string{"name": name, "network": netw, "host": h}
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
	n := 0
	one := measure(ctx, b, ctl, b.Loop, func() { // b.Loop: the setup above runs once
		create(fmt.Sprint("x", n), n*7)
		n++
	})
	fl.check(b)
	one.report(b, "")
	b.ReportMetric(rssMB(), "rss-MB")
	b.ReportMetric(float64(touched), "hosts-touched/change")
	b.ReportMetric(filled.Seconds(), "fill-s")
	b.ReportMetric(converged.Seconds(), "converged-s")

	ph := &phases{b: b, ctx: ctx, dbURL: dbURL, fl: fl, live: []*testenv.Controller{ctl}}
	ph.restart(1, nil).report(b, "restart")
	ph.restart(1, func(st *store.Store) {
		for i := 0; i < 10; i++ {
			netw, h := place(i * 13)
			if _, err := st.CreateContainer(ctx, "bench", openapi.Container{Name: fmt.Sprint("down", i), Network: netw, Host: h}); err != nil {
				b.Fatal(err)
			}
		}
	}).report(b, "restart10")
	ph.restart(2, nil) // half the agents on each of two new replicas
	k, ops := 0, len(one.lat)
	two := measure(ctx, b, ph.live[0], func() bool { return k < ops }, func() {
		create(fmt.Sprint("y", k), k*7+3)
		k++
	})
	fl.check(b)
	two.report(b, "2rep-")
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
