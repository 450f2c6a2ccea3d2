package bench

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// BenchmarkControlPacketCost measures what a packet between a host and the
// controller costs the host's ovs-vswitchd: a ping flood (one every 2 ms)
// from the host's own namespace to the address the agents reach the
// controller at, the vswitchd's CPU over it less its CPU at rest over as
// long, per packet (request and reply). With the control traffic on the
// underlay (layout=underlay) every packet crosses br-phy, the userspace
// datapath, and wakes its main loop, which polls every port: the cost grows
// with the host's container ports. With a management network outside OVS
// (layout=mgmt, lab.Options.Management) no packet crosses the switch. Why
// each other host's switch spent 5 to 6 ms per container change at 10 x
// 1,000 (benchmarks-convergence.md, ninth pass).
func BenchmarkControlPacketCost(b *testing.B) {
	for _, mgmt := range []bool{false, true} {
		layout := "underlay"
		if mgmt {
			layout = "mgmt"
		}
		b.Run("layout="+layout, func(b *testing.B) {
			withPorts(b, mgmt, func(b *testing.B, c *cluster.Cluster, h *lab.Host) {
				target := c.Lab.Gateway()
				if mgmt {
					target = lab.MgmtSubnet.Addr().Next()
				}
				controlPackets(b, h, target)
			})
		})
	}
}

// withPorts brings up a one-host cluster (with a management network when
// mgmt) and runs fn as sub-benchmarks ports=10 and ports=100 (given each
// one's b), with that
// many container ports on the host's switch.
func withPorts(b *testing.B, mgmt bool, fn func(b *testing.B, c *cluster.Cluster, h *lab.Host)) {
	c := cluster.New(b, cluster.Options{Hosts: 1, Tunnel: openapi.TunnelGeneve, Management: mgmt,
		AgentEnv: []string{"SWITCHYARD_RESYNC_INTERVAL=30s"}})
	c.Network(b, "ctl", "10.66.0.0/16")
	h := c.Lab.Hosts[0]
	made := 0
	for _, ports := range []int{10, 100} {
		for ; made < ports; made++ {
			c.MustDo(b, 201, "POST", "/api/v1/containers?wait=realized&timeout=60s",
				map[string]any{"name": fmt.Sprintf("p%d", made), "network": "ctl", "host": h.Name}, nil)
		}
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) { fn(b, c, h) })
	}
}

// controlPackets runs the ping floods of one sub-benchmark and reports the
// switch's CPU per packet.
func controlPackets(b *testing.B, h *lab.Host, target netip.Addr) {
	const count, interval = 1000, 2 * time.Millisecond
	pid := h.VSwitchdPid()
	var busy, idle time.Duration
	packets := 0
	for b.Loop() {
		b.StopTimer()
		rest0, at0 := cpuTime(pid), time.Now()
		time.Sleep(count * interval)
		rest, restSpan := cpuTime(pid)-rest0, time.Since(at0)
		b.StartTimer()
		cpu0, at1 := cpuTime(pid), time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), count*interval+20*time.Second)
		r, err := lab.Ping(ctx, h.Netns, target.String(), count, interval)
		cancel()
		used, span := cpuTime(pid)-cpu0, time.Since(at1)
		if err != nil || r.Received < count*9/10 {
			b.Fatalf("ping %s from %s: %d of %d answered (%v)", target, h.Name, r.Received, count, err)
		}
		busy += used
		idle += rest * span / restSpan
		packets += 2 * r.Received
	}
	b.ReportMetric(float64((busy-idle).Microseconds())/float64(packets), "vswitchd-us/packet")
	b.ReportMetric(float64(idle.Microseconds())/float64(packets), "vswitchd-idle-us/packet")
}
