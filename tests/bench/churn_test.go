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

// churnPingEvery is the cadence of the ping that BenchmarkLinkChurnLoss
// watches: 500 pings a second.
const churnPingEvery = 2 * time.Millisecond

// BenchmarkLinkChurnLoss measures what creating and deleting containers on
// a host costs the traffic of the others through it: a container on h1
// pings one on h3 every 2 ms while each op creates a container and deletes
// it (both realized on every host), on h1 (on the ping's path) or on h2
// (off it: the other hosts get no link change, and, with IPAM blocks, no
// flow change either once h2's block has a container). On OVS 3.1's userspace
// datapath every link notification in a host's namespace can cost a
// tunnel packet through that host (docs/failure-matrix.md, "Link changes on
// a userspace-datapath host"); flow changes alone cost none. Metrics:
// lost-pings/op (lost for certain, over all ops), pings/op. Run with
// -benchtime=200x for a figure worth comparing.
func BenchmarkLinkChurnLoss(b *testing.B) {
	c := cluster.New(b, cluster.Options{Hosts: 3, Tunnel: openapi.TunnelGeneve})
	c.Network(b, "blue", "10.10.0.0/24")
	a := c.Container(b, "a", "blue", "h1", nil)
	dst := c.Container(b, "b", "blue", "h3", nil)
	from := c.Sandbox("h1", a.Name, "blue")
	c.Reach(b, from, dst.IP)
	for _, host := range []string{"h1", "h2"} {
		b.Run("churn="+host, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			p, err := lab.StartPing(ctx, from, dst.IP, churnPingEvery)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Stop()
			if err := p.AwaitReply(30 * time.Second); err != nil {
				b.Fatal(err)
			}
			ops := 0
			for b.Loop() {
				name := fmt.Sprintf("churn-%s-%d", host, ops)
				ct := c.Container(b, name, "blue", host, nil)
				c.MustDo(b, 204, "DELETE", "/api/v1/containers/"+ct.ID+"?wait=realized&timeout=30s", nil, nil)
				ops++
			}
			r, err := p.Stop()
			if err != nil || r.Received == 0 {
				b.Fatalf("ping during the churn: %v\n%s", err, r.Output)
			}
			b.ReportMetric(float64(len(r.Lost))/float64(ops), "lost-pings/op")
			b.ReportMetric(float64(r.Sent)/float64(ops), "pings/op")
		})
	}
}
