package dns

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkQueryLoopback: A queries answered from the names, over UDP on
// loopback, from as many clients as GOMAXPROCS (each sends its next query
// when the last is answered). Reports queries/s and the p99 latency.
func BenchmarkQueryLoopback(b *testing.B) {
	s := startServer(b, Config{Upstreams: []string{"127.0.0.1:1"}})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.udpPort))
	q := new(dns.Msg)
	q.SetQuestion("web.net1.switchyard.local.", dns.TypeA)
	query, _ := q.Pack()
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		var mine []time.Duration
		for pb.Next() {
			t := time.Now()
			if _, err := c.Write(query); err != nil {
				b.Error(err)
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err != nil || n < 12 {
				b.Errorf("read: %v", err)
				return
			}
			mine = append(mine, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	reportLatency(b, lat, time.Since(start))
}

// reportLatency reports queries/s and p50/p99 latency in microseconds.
func reportLatency(b *testing.B, lat []time.Duration, took time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/took.Seconds(), "queries/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
