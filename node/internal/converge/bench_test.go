package converge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

const (
	benchContainers = 50
	benchFlows      = 5000
)

// bigProgram is benchContainers containers with their ARP, ingress and
// forwarding flows, padded with policy-like flows in table 2 to
// benchFlows flows. variant changes the actions of one flow.
func bigProgram(rev int64, variant int) *openapi.Program {
	var cs []ctr
	for i := 1; i <= benchContainers; i++ {
		cs = append(cs, ctr{N: i, Host: "h1"})
	}
	p := program("h1", rev, cs, nil, "geneve")
	for i := 0; len(p.Flows) < benchFlows; i++ {
		dst := cs[i%len(cs)]
		p.Flows = append(p.Flows, openapi.Flow{Table: 2, Priority: 1000, Cookie: 0x100000 + uint64(i),
			Match:   fmt.Sprintf("tcp,nw_src=10.%d.%d.%d,nw_dst=%s,tp_dst=%d", 64+i/65536, i/256%256, i%256, dst.IP(), 80+i%3),
			Actions: fmt.Sprintf("output:${port:%s}", dst.Port())})
	}
	p.Flows[len(p.Flows)-1].Actions = fmt.Sprintf("output:${port:%s}", cs[variant%len(cs)].Port())
	return seal(p)
}

func benchApply(b *testing.B, a *Host, p *openapi.Program) ApplyResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := a.Apply(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	if res.Degraded() {
		b.Fatalf("degraded: %v %v", portErrors(res), res.Dropped)
	}
	return res
}

type phaseTimes struct {
	n                                    int
	late                                 int // applies that sent their ports after the flows
	ofctl                                int // ovs-ofctl processes (or spares) the applies ran
	links, ovsdb, ofports, openflow, all time.Duration
}

func (pt *phaseTimes) add(r ApplyResult) {
	pt.n++
	if r.PortsAfterFlows {
		pt.late++
	}
	pt.ofctl += r.OFCtlRuns
	pt.links += r.Timing.Links
	pt.ovsdb += r.Timing.OVSDB
	pt.ofports += r.Timing.OFPorts
	pt.openflow += r.Timing.OpenFlow
}

func (pt *phaseTimes) report(b *testing.B) {
	if pt.n == 0 {
		return
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(pt.n) }
	b.ReportMetric(ms(pt.links), "links-ms/op")
	b.ReportMetric(ms(pt.ovsdb), "ovsdb-ms/op")
	b.ReportMetric(ms(pt.ofports), "ofports-ms/op")
	b.ReportMetric(ms(pt.openflow), "openflow-ms/op")
}

// BenchmarkApply measures Apply of a program with 50 real containers
// (veths, sandboxes, OVS ports) and 5,000 flows on a lab host.
func BenchmarkApply(b *testing.B) {
	l := lab.New(b, lab.Options{Hosts: 1})
	h := l.Hosts[0]
	a := newHost(b, l, h)
	empty := seal(program("h1", 0, nil, nil, "geneve"))

	big := [2]*openapi.Program{bigProgram(1, 0), bigProgram(2, 1)}
	b.Run("first", func(b *testing.B) {
		// From an empty host: 50 sandboxes and veths, one OVSDB
		// transaction with 50 ports, a full replace-flows of 5,000 flows.
		var pt phaseTimes
		for b.Loop() {
			b.StopTimer()
			benchApply(b, a, empty)
			if _, err := a.NewGeneration(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			pt.add(benchApply(b, a, big[0]))
		}
		pt.report(b)
	})
	b.Run("one-flow-changed", func(b *testing.B) {
		benchApply(b, a, big[0])
		var pt phaseTimes
		i := 0
		for b.Loop() {
			i++
			r := benchApply(b, a, big[i%2])
			if r.OpenFlow != "delta" || r.FlowsAdded != 1 {
				b.Fatalf("mode %s, %d added", r.OpenFlow, r.FlowsAdded)
			}
			pt.add(r)
		}
		pt.report(b)
	})
	b.Run("unchanged", func(b *testing.B) {
		p := big[0]
		benchApply(b, a, p)
		var pt phaseTimes
		for b.Loop() {
			r := benchApply(b, a, p)
			if r.OpenFlow != "unchanged" || r.OFCtlRuns != 0 {
				b.Fatalf("mode %s, %d ovs-ofctl runs", r.OpenFlow, r.OFCtlRuns)
			}
			pt.add(r)
		}
		pt.report(b)
	})
	b.Run("new-generation", func(b *testing.B) {
		// Agent restart: every flow re-installed with a new cookie.
		p := big[0]
		benchApply(b, a, p)
		var pt phaseTimes
		for b.Loop() {
			b.StopTimer()
			if _, err := a.NewGeneration(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			pt.add(benchApply(b, a, p))
		}
		pt.report(b)
	})
	b.Run("observe", func(b *testing.B) {
		p := big[0]
		benchApply(b, a, p)
		for b.Loop() {
			o, err := a.Observe(context.Background())
			if err != nil || o.Drifted() {
				b.Fatalf("observe: %v %v", err, o.Drift)
			}
		}
	})
}
