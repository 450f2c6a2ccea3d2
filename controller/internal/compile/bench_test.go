package compile

import (
	"runtime"
	"testing"
)

// The scale target: 10,000 containers on 50 hosts, in 100 networks, placed
// at random, so that nearly every network is present on nearly every host
// (the worst case for per-host flow counts).
const benchHosts, benchNets, benchCtrs = 50, 100, 10000

func BenchmarkFullCompile10kContainers50Hosts(b *testing.B) {
	s := bigSnapshot(benchHosts, benchNets, benchCtrs)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	flows := 0
	cpu := cpuTime()
	for b.Loop() {
		progs := Compile(s)
		flows = 0
		for _, p := range progs {
			flows += len(p.Flows)
		}
	}
	reportCPU(b, cpu)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MB-alloc/op")
	b.ReportMetric(float64(flows), "flows")

	reportLive(b, s, &before)
}

// reportLive reports MB-live: what a compiler keeps after a full compile of
// s (programs and fragments), over the heap in use at before.
func reportLive(b *testing.B, s *Snapshot, before *runtime.MemStats) {
	var after runtime.MemStats
	c := New()
	c.Full(s)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-live")
	runtime.KeepAlive(c)
}

// benchIncremental adds a container on even iterations and deletes it on
// odd ones: each op is one container change on the 10k snapshot. With
// materialize, it also builds the full program of every changed host.
func benchIncremental(b *testing.B, materialize bool) {
	s := bigSnapshot(benchHosts, benchNets, benchCtrs)
	c := New()
	c.Full(s)
	extra := container("extra", s.Networks[0].Name, 1, 60000, s.Hosts[7].Name)
	hosts := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var ups []HostUpdate
		if i%2 == 0 {
			ups = c.Apply(int64(i+2), PutContainer(extra))
		} else {
			ups = c.Apply(int64(i+2), DeleteContainer(extra.ID))
		}
		if materialize {
			for _, u := range ups {
				c.Program(u.Host)
			}
		}
		hosts = len(ups)
		i++
	}
	b.ReportMetric(float64(hosts), "hosts-changed")
}

func BenchmarkIncrementalOneContainer(b *testing.B) { benchIncremental(b, false) }

func BenchmarkIncrementalOneContainerWithPrograms(b *testing.B) { benchIncremental(b, true) }
