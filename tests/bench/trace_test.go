package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
)

// BenchmarkTrace measures POST /api/v1/traces end to end on a small lab
// (2 hosts over Geneve, real agents: every trace asks both hosts' agents
// for an ofproto/trace): latency without a probe and with one (a TCP
// connect from the source container's namespace that the destination
// answers). Probes are rate-limited per token (5, then one every 2 s), so
// the probe traces rotate over enough operator tokens. The intent and
// compiled layers at 10 hosts x 1,000 containers x 1,000 policies are
// measured in-process (controller/internal/trace BenchmarkTraceIntentCompiled).
//
//	go test -run '^$' -bench Trace -benchtime 50x ./tests/bench/
func BenchmarkTrace(b *testing.B) {
	c := cluster.New(b, cluster.Options{Hosts: 2, Tunnel: openapi.TunnelGeneve})
	c.Network(b, "bt", "10.71.0.0/24")
	c.Container(b, "src", "bt", "h1", nil)
	c.Container(b, "dst", "bt", "h2", nil)
	probe := c.Lab.StartProbe(b, c.Bin.Probe, "dst", c.Sandbox("h2", "dst", "bt"))
	defer probe.Proc.Stop()
	const tokens = 20
	var secrets []string
	for i := range tokens {
		var tok openapi.Token
		c.MustDo(b, 201, "POST", "/api/v1/tokens", map[string]any{"name": fmt.Sprintf("bench-op-%d", i), "role": "operator"}, &tok)
		secrets = append(secrets, tok.Secret)
	}
	body := func(probe bool) map[string]any {
		return map[string]any{"source": map[string]any{"container": "src"}, "destination": map[string]any{"container": "dst"},
			"port": 80, "probe": probe}
	}
	// Ready: both agents answer their jobs.
	c.Eventually(b, 30*time.Second, func() error {
		var tr openapi.Trace
		if _, err := c.Do("POST", "/api/v1/traces", body(false), &tr); err != nil {
			return err
		}
		for _, r := range tr.Realized {
			if r.Switch == nil || r.Switch.Status != "ok" {
				return fmt.Errorf("host %s: switch %+v", r.Host, r.Switch)
			}
		}
		return nil
	})
	var plain, probed []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		withProbe := i%2 == 1
		var tr openapi.Trace
		t0 := time.Now()
		api := client.New(c.URL, secrets[(i/2)%tokens])
		code, err := api.Do(context.Background(), "POST", "/api/v1/traces", body(withProbe), &tr)
		d := msOf(time.Since(t0))
		if code != 200 {
			b.Fatalf("trace: %d %v", code, err)
		}
		if tr.Disagreement || (withProbe && (tr.Live == nil || tr.Live.Status != "answered")) {
			b.Fatalf("trace: %s", tr.Conclusion)
		}
		if withProbe {
			probed = append(probed, d)
		} else {
			plain = append(plain, d)
		}
	}
	b.StopTimer()
	b.ReportMetric(pct(plain, 50), "p50-ms")
	b.ReportMetric(pct(plain, 99), "p99-ms")
	b.ReportMetric(pct(probed, 50), "probe-p50-ms")
	b.ReportMetric(pct(probed, 99), "probe-p99-ms")
	b.ReportMetric(loadAverage(), "load1")
}
