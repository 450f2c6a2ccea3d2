package pgfail

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPostgresOutage measures matrix row 1 over repeated outages: per
// iteration PostgreSQL is stopped (pg_ctl stop -m fast) and started again
// (pg_ctl start -w). ms-to-503 is from the stop's return to a write's 503
// answer; ms-503 is how long that answer took; ms-to-write is from the
// start's return to the first acknowledged write (the client retries every
// 10 ms); ms-to-ready the same for /readyz.
func BenchmarkPostgresOutage(b *testing.B) {
	pg := Primary(b, "bench")
	pg.Exec(b, "postgres", "CREATE DATABASE switchyard")
	ctl := StartController(b, pg.URL("switchyard"))
	c := newAPI(ctl.URL)
	c.must(b, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(b, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	var to503, took503, toWrite, toReady time.Duration
	b.ResetTimer()
	for i := range b.N {
		c.must(b, 201, "POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("before-%d", i), "network": "n1", "host": "h1"}, nil)
		pg.Stop(b, "fast")
		stopped := time.Now()
		for {
			a := c.call("POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("down-%d", i), "network": "n1", "host": "h1"})
			if a.Status == 503 {
				to503 += time.Since(stopped)
				took503 += a.Took
				break
			}
			if a.Status != 0 && a.Status != 201 {
				b.Fatalf("while down: %d %s", a.Status, a.Body)
			}
		}
		pg.Start(b)
		back := time.Now()
		for n := 0; ; n++ {
			a := c.call("POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("after-%d-%d", i, n), "network": "n1", "host": "h1"})
			if a.Status == 201 {
				toWrite += time.Since(back)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for c.call("GET", "/readyz", nil).Status != 200 {
			time.Sleep(10 * time.Millisecond)
		}
		toReady += time.Since(back)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(to503), "ms-to-503")
	b.ReportMetric(ms(took503), "ms-503")
	b.ReportMetric(ms(toWrite), "ms-to-write")
	b.ReportMetric(ms(toReady), "ms-to-ready")
}
