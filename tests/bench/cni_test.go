package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/cnilab"
)

// BenchmarkCNI compares attaching a namespace through the CNI plugin with
// the direct API, on a cluster already holding N containers (managed
// sandboxes, spread over the hosts). Each op, on h1:
//   - CNI ADD: the plugin binary run as a runtime runs it (CNI_COMMAND=ADD,
//     config on stdin) until it printed the result (the agent creates the
//     container with ?wait=realized: realized on every host);
//   - API: POST /api/v1/containers?wait=realized with the namespace's path;
//   - for both, "reach": from the start until a container on h2 gets its
//     first ping reply from the new address (each ping waits up to 1 s);
//   - CNI DEL (the plugin, realized) and API DELETE?wait=realized.
//
// p50/p99 over at least minSamples ops. SWITCHYARD_BENCH_CNI_SHAPE is
// "HOSTSxN" (default 2x100; the full shape is 10x1000).
func BenchmarkCNI(b *testing.B) {
	hosts, n, err := cniShape(os.Getenv("SWITCHYARD_BENCH_CNI_SHAPE"))
	if err != nil {
		b.Fatal(err)
	}
	// The cluster is the parent's (run once): the sub-benchmark's runs
	// (N=1, then N) share it.
	k := cnilab.New(b, cluster.Options{Hosts: hosts, Tunnel: openapi.TunnelGeneve,
		AgentEnv: []string{"SWITCHYARD_RESYNC_INTERVAL=30s"}})
	k.Network(b, "bench", "10.64.0.0/16")
	e := &convEnv{c: k.Cluster}
	for _, h := range k.Lab.Hosts {
		e.hosts = append(e.hosts, h.Name)
	}
	e.fill(b, n)
	probe := k.Lab.NewNetns(b, "cni-probe")
	conf := cnilab.Flat(k.Conf("h1", "sy-bench", "bench", "1.1.0", nil))
	if out, code := k.Plugin(b, "ADD", "probe", "/run/netns/"+probe, cnilab.Flat(k.Conf("h2", "sy-bench", "bench", "1.1.0", nil))); code != 0 {
		b.Fatalf("probe on h2: %s", out)
	}
	seq := 0
	b.Run(fmt.Sprintf("hosts=%d/containers=%d", hosts, n), func(b *testing.B) {
		var cniAdd, apiAdd, cniReach, apiReach, cniDel, apiDel []float64
		one := func() {
			seq++
			i := seq
			ns := k.Lab.NewNetns(b, fmt.Sprintf("cb-%d", i))
			id := fmt.Sprintf("bench-%d", i)
			t0 := time.Now()
			out, code := k.Plugin(b, "ADD", id, "/run/netns/"+ns, conf)
			if code != 0 {
				b.Fatalf("ADD %s: %s", id, out)
			}
			cniAdd = append(cniAdd, msOf(time.Since(t0)))
			cniReach = append(cniReach, msOf(reach(b, probe, resultIP(b, out), t0)))

			ns2 := k.Lab.NewNetns(b, fmt.Sprintf("ab-%d", i))
			var c openapi.Container
			t0 = time.Now()
			k.MustDo(b, 201, "POST", "/api/v1/containers?wait=realized&timeout=60s",
				map[string]any{"name": "api-" + id, "network": "bench", "host": "h1", "netns": "/run/netns/" + ns2}, &c)
			apiAdd = append(apiAdd, msOf(time.Since(t0)))
			apiReach = append(apiReach, msOf(reach(b, probe, c.IP, t0)))

			t0 = time.Now()
			if out, code := k.Plugin(b, "DEL", id, "/run/netns/"+ns, conf); code != 0 {
				b.Fatalf("DEL %s: %s", id, out)
			}
			cniDel = append(cniDel, msOf(time.Since(t0)))
			t0 = time.Now()
			k.MustDo(b, 204, "DELETE", "/api/v1/containers/api-"+id+"?network=bench&wait=realized&timeout=60s", nil, nil)
			apiDel = append(apiDel, msOf(time.Since(t0)))
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			one()
		}
		b.StopTimer()
		for i := b.N; i < minSamples; i++ {
			one()
		}
		for _, m := range []struct {
			name string
			xs   []float64
		}{{"cni-add", cniAdd}, {"api-add", apiAdd}, {"cni-reach", cniReach}, {"api-reach", apiReach}, {"cni-del", cniDel}, {"api-del", apiDel}} {
			b.ReportMetric(pct(m.xs, 50), m.name+"-p50-ms")
			b.ReportMetric(pct(m.xs, 99), m.name+"-p99-ms")
		}
		b.ReportMetric(float64(len(cniAdd)), "samples")
	})
}

// cniShape reads SWITCHYARD_BENCH_CNI_SHAPE.
func cniShape(v string) (hosts, n int, err error) {
	if v == "" {
		return 2, 100, nil
	}
	h, c, ok := strings.Cut(v, "x")
	hosts, err1 := strconv.Atoi(h)
	n, err2 := strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil || hosts < 2 || n < hosts {
		return 0, 0, fmt.Errorf("SWITCHYARD_BENCH_CNI_SHAPE %q: want HOSTSxN, at least 2 hosts and one container each", v)
	}
	return hosts, n, nil
}

// resultIP is the address in a CNI result printed by the plugin.
func resultIP(b *testing.B, out string) string {
	b.Helper()
	_, rest, ok := strings.Cut(out, `"address": "`)
	ip, _, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		b.Fatalf("no address in %s", out)
	}
	return ip
}

// reach pings ip from the namespace probe until a reply comes, and returns
// the time from t0.
func reach(b *testing.B, probe, ip string, t0 time.Time) time.Duration {
	b.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if res := cluster.Ping(b, probe, ip, 1, 200*time.Millisecond); res.Received == 1 {
			return time.Since(t0)
		}
	}
	b.Fatalf("%s not reachable from %s within 10s", ip, probe)
	return 0
}
