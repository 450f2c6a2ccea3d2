package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// BenchmarkReportsObserved measures one round of heartbeats of 50 hosts
// (all reporting at once, so they share batches): "plain" reports carry
// their ports only, "observed" ones also the counters of 100 policies' rules
// (200 cookies per host, every counter grown since the last round) and 10
// logged connections each. The difference is what policy observation adds
// to the report path.
//
//	go test -run '^$' -bench ReportsObserved ./controller/internal/store/
func BenchmarkReportsObserved(b *testing.B) {
	const hosts, policies = 50, 100
	for _, observed := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "observed"}[observed]
		b.Run(name, func(b *testing.B) {
			st, _ := newStore(b, Options{})
			ctx := context.Background()
			mkNetwork(b, st, "n", "10.1.0.0/16", 0)
			var cookies []string
			for i := range policies {
				p, err := st.CreatePolicy(ctx, "bench", openapi.Policy{Name: fmt.Sprint("p", i), Network: "n", Log: true,
					Ingress: []openapi.PolicyRule{{}}})
				if err != nil {
					b.Fatal(err)
				}
				r, c := RuleCookies(p.ID, "ingress", 0)
				cookies = append(cookies, fmt.Sprintf("%#x", r), fmt.Sprintf("%#x", c))
			}
			for h := range hosts {
				mkHost(b, st, fmt.Sprint("h", h), fmt.Sprintf("192.0.2.%d", h+1))
			}
			round := int64(0)
			for b.Loop() {
				round++
				var wg sync.WaitGroup
				for h := range hosts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rep := openapi.NodeStatus{Ports: []openapi.PortStatus{}}
						if observed {
							for _, c := range cookies {
								rep.RuleStats = append(rep.RuleStats, openapi.RuleStat{Cookie: c, Packets: round * 10, Bytes: round * 1000})
							}
							for i := range 10 {
								rep.PolicyLog = append(rep.PolicyLog, openapi.PolicyLogRecord{Time: time.Now(), Cookie: cookies[2*i],
									Verdict: "allow", Direction: "ingress", Protocol: "TCP", SrcIP: "10.1.0.5", DstIP: "10.1.0.6",
									SrcPort: 40000 + i, DstPort: 80})
							}
						}
						if err := st.ReportStatus(ctx, fmt.Sprint("h", h), rep); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/hosts, "µs/report")
		})
	}
}
