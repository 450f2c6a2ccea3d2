package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// Ping cadence across a restart: one probe every restartPingEvery for
// restartPingCount probes (4 s), long enough to cover a restart and the
// restore with room after it.
const (
	restartPingEvery = 10 * time.Millisecond
	restartPingCount = 400
)

// BenchmarkOVSRestart measures the outage a restart of ovs-vswitchd causes
// on a host whose container is talking to another host: a container on h1
// pings one on h2 every 10 ms while h2's ovs-vswitchd is stopped and
// started (tests/lab RestartOVS: the flows and the userspace datapath die
// with it). Metrics, medians over the ops: restart-ms (stop + start of
// ovs-vswitchd), flows-back-ms (from the stop until h2 holds as many flows
// as before), lost-pings and outage-ms (lost pings x 10 ms). The e2e test
// TestOVSRestartOutage asserts the recovery; this measures it.
func BenchmarkOVSRestart(b *testing.B) {
	c := cluster.New(b, cluster.Options{Hosts: 3, Tunnel: openapi.TunnelGeneve,
		AgentEnv: []string{"SWITCHYARD_RESYNC_INTERVAL=30s"}})
	c.Network(b, "blue", "10.10.0.0/24")
	a := c.Container(b, "a", "blue", "h1", nil)
	dst := c.Container(b, "b", "blue", "h2", nil)
	from := c.Sandbox("h1", a.Name, "blue")
	c.Reach(b, from, dst.IP)
	h2 := c.Lab.Host("h2")
	var restart, back, lost []float64
	for b.Loop() {
		n := len(c.Flows(b, "h2"))
		type result struct {
			r   lab.PingResult
			err error
		}
		done := make(chan result, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		go func() {
			r, err := lab.Ping(ctx, from, dst.IP, restartPingCount, restartPingEvery)
			done <- result{r, err}
		}()
		t0 := time.Now()
		h2.RestartOVS(b)
		restart = append(restart, msOf(time.Since(t0)))
		c.Eventually(b, time.Minute, func() error {
			if got := len(c.Flows(b, "h2")); got != n {
				return fmt.Errorf("h2 has %d flows, want %d", got, n)
			}
			return nil
		})
		back = append(back, msOf(time.Since(t0)))
		res := <-done
		cancel()
		if res.r.Sent != restartPingCount || res.r.Received == 0 {
			b.Fatalf("ping across the restart: %v\n%s", res.err, res.r.Output)
		}
		lost = append(lost, float64(res.r.Sent-res.r.Received))
		// The path is back before the next op.
		c.Reach(b, from, dst.IP)
	}
	b.ReportMetric(pct(restart, 50), "restart-ms")
	b.ReportMetric(pct(back, 50), "flows-back-ms")
	b.ReportMetric(pct(lost, 50), "lost-pings")
	b.ReportMetric(pct(lost, 50)*msOf(restartPingEvery), "outage-ms")
}
