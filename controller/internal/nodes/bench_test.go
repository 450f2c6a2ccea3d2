package nodes_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// BenchmarkBurst: 10 hosts x 1,000 containers (one network on all hosts),
// then per op a burst of 100 container creations, one every 10 ms, until
// every agent has applied the last program. The simulated agents take 50 ms
// per update (a model of today's apply), so they fall several changes
// behind. history=1 keeps one delta per host (the behaviour before the
// bounded history: an agent two or more changes behind gets its whole
// program); history=64 composes the deltas since the agent's program.
// Reported per change: the process's CPU (controller, store client and the
// simulated agents), full programs and deltas the agents got (composed: the
// deltas that were several composed into one), KB the agents received.
// every=1ms,apply=0: the same burst with the creates back to back (each
// waits for its commit) and agents that apply at once: does each change
// wake every host's long-poll separately (10 deltas per change) or do
// changes arriving within milliseconds reach an agent together?
func BenchmarkBurst(b *testing.B) {
	for _, hist := range []int{1, 64} {
		b.Run(fmt.Sprintf("history=%d", hist), func(b *testing.B) { benchBurst(b, hist, 10*time.Millisecond, 50*time.Millisecond) })
	}
	b.Run("history=64,every=1ms,apply=0", func(b *testing.B) { benchBurst(b, 64, time.Millisecond, 0) })
}

func benchBurst(b *testing.B, hist int, every, apply time.Duration) {
	const hosts, ctrs, burst = 10, 1000, 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := testenv.Start(b, testenv.DatabaseURL(b), nil)
	m := ctl.Server.Realizer.(*nodes.Manager)
	nodes.SetMaxDeltas(m, hist)
	fl := newFleet(ctl.URL, apply)
	if _, err := ctl.Store.CreateNetwork(ctx, "bench", openapi.Network{Name: "blue", CIDR: "10.1.0.0/16"}); err != nil {
		b.Fatal(err)
	}
	host := func(i int) string { return fmt.Sprint("h", i%hosts) }
	for i := 0; i < hosts; i++ {
		if err := fl.register(ctx, host(i), i); err != nil {
			b.Fatal(err)
		}
		go fl.run(ctx, host(i))
	}
	fill(b, ctl, "c", ctrs, func(i int) (string, string) { return "blue", host(i) })
	converged := func() {
		if _, err := converge(ctx, b, fl, m); err != nil {
			b.Fatal(err)
		}
	}
	converged()
	var cpu time.Duration
	var full, deltas, kb, composed float64
	b.ReportAllocs()
	n := 0
	for ; b.Loop(); n++ { // b.Loop: the setup above runs once
		f0, d0, by0 := fl.full.Load(), fl.deltas.Load(), fl.bytes.Load()
		c0 := nodes.UpdatesSent(m, "composed")
		t0 := cpuTime()
		tick := time.NewTicker(every) // the burst's arrival rate
		for i := 0; i < burst; i++ {
			<-tick.C
			c := openapi.Container{Name: fmt.Sprintf("b%d-%d", n, i), Network: "blue", Host: host(i)}
			if _, err := ctl.Store.CreateContainer(ctx, "bench", c); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		converged()
		cpu += cpuTime() - t0
		full += float64(fl.full.Load() - f0)
		deltas += float64(fl.deltas.Load() - d0)
		kb += float64(fl.bytes.Load()-by0) / 1024
		composed += nodes.UpdatesSent(m, "composed") - c0
		b.StopTimer()
		var wg sync.WaitGroup
		for i := 0; i < burst; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := ctl.Store.DeleteContainer(ctx, "bench", fmt.Sprintf("b%d-%d", n, i), "blue", 0); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		converged()
		b.StartTimer()
	}
	changes := float64(n * burst)
	b.ReportMetric(float64(cpu.Microseconds())/1000/changes, "cpu-ms/change")
	b.ReportMetric(full/changes, "full/change")
	b.ReportMetric(deltas/changes, "delta/change")
	b.ReportMetric(composed/changes, "composed/change")
	b.ReportMetric(kb/changes, "KB-to-agents/change")
}
