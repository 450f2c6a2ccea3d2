package bench

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// BenchmarkLinkNotificationCost measures what a link appearing and going
// away in a host's namespace costs its ovs-vswitchd, at 10 and 100
// container ports on its switch: each op makes a veth pair the switch
// never uses and deletes it (`ip link add` / `del` in the host's
// namespace). ovs-vswitchd reconfigures its bridges on every batch of link
// notifications it reads, and after each reconfiguration re-reads the
// status of every interface (OVS 3.1), so the cost grows with the ports.
// Reported: the switch's CPU per reconfiguration and per op (less its CPU
// at rest over as long), and reconfigurations per op. The figure behind
// benchmarks-convergence.md, tenth pass (about 10 ms per reconfiguration
// at 110 ports), and why a new container's veth costs its host's switch
// one reconfiguration of its own.
func BenchmarkLinkNotificationCost(b *testing.B) {
	withPorts(b, true, func(b *testing.B, _ *cluster.Cluster, h *lab.Host) { linkNotifications(b, h) })
}

// linkNotifications runs the ops of one sub-benchmark.
func linkNotifications(b *testing.B, h *lab.Host) {
	pid := h.VSwitchdPid()
	reconf := func() int {
		n, err := strconv.Atoi(strings.TrimSpace(h.AppCtl(b, "coverage/read-counter", "bridge_reconfigure")))
		if err != nil {
			b.Fatalf("%s: bridge_reconfigure: %v", h.Name, err)
		}
		return n
	}
	// The switch's CPU at rest, per second.
	rest0, at0 := cpuTime(pid), time.Now()
	time.Sleep(2 * time.Second)
	idlePerSec := float64(cpuTime(pid)-rest0) / time.Since(at0).Seconds()

	r0, cpu0, at1 := reconf(), cpuTime(pid), time.Now()
	ops := 0
	for b.Loop() {
		name := fmt.Sprintf("zz%d", ops)
		h.MustRun(b, "ip", "link", "add", name, "type", "veth", "peer", "name", "zy"+name[2:])
		h.MustRun(b, "ip", "link", "del", name)
		ops++
	}
	b.StopTimer()
	// Until the switch has read every notification: its counter stops
	// moving across two reads 200 ms apart.
	for last := -1; ; {
		n := reconf()
		if n == last {
			break
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	reconfs := reconf() - r0
	busy := float64(cpuTime(pid)-cpu0) - idlePerSec*time.Since(at1).Seconds()
	b.ReportMetric(float64(reconfs)/float64(ops), "reconfigures/op")
	b.ReportMetric(busy/float64(ops)/1e6, "vswitchd-ms/op")
	if reconfs > 0 {
		b.ReportMetric(busy/float64(reconfs)/1e6, "vswitchd-ms/reconfigure")
	}
}
