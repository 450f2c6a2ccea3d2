package dns

import (
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
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

// BenchmarkUpdate10k: the cost of taking a program's names (done on every
// apply): 10,000 records of 10 networks, sorted by key as the controller
// sends them. "unchanged": no record differs (a change of flows alone; the
// records are compared with the last ones). "changed": one record's
// address differs, every other apply (O(change): that record's names are
// replaced in place). "created": one record more, then one less (a
// container created and deleted). "unsorted": "changed" with the records
// shuffled (the map-based diff).
func BenchmarkUpdate10k(b *testing.B) {
	p := testProgram()
	p.DNS = nil
	for i := range 10_000 {
		net := "net" + strconv.Itoa(i%10)
		p.DNS = append(p.DNS, openapi.DNSRecord{Network: net, VNI: int64(i % 10), Kind: openapi.DNSContainer,
			Name: "c" + strconv.Itoa(i), IP: "10.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1)})
		if i < 10 {
			p.Containers = append(p.Containers, openapi.ContainerPort{Network: net, DNSDomain: "switchyard.local"})
		}
	}
	slices.SortFunc(p.DNS, func(x, y openapi.DNSRecord) int { return compareKeys(&x, &y) })
	moved := *p
	moved.DNS = cloneRecords(p.DNS)
	moved.DNS[5000].IP = "10.9.9.9"
	created := *p
	created.DNS = slices.Insert(cloneRecords(p.DNS), 5000, openapi.DNSRecord{Network: p.DNS[5000].Network,
		VNI: p.DNS[5000].VNI, Kind: openapi.DNSContainer, Name: p.DNS[5000].Name + "x", IP: "10.9.9.10"})
	slices.SortFunc(created.DNS, func(x, y openapi.DNSRecord) int { return compareKeys(&x, &y) })
	shuffled, shuffledMoved := *p, moved
	shuffled.DNS, shuffledMoved.DNS = cloneRecords(p.DNS), cloneRecords(moved.DNS)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled.DNS), func(i, j int) { shuffled.DNS[i], shuffled.DNS[j] = shuffled.DNS[j], shuffled.DNS[i] })
	r.Shuffle(len(shuffledMoved.DNS), func(i, j int) {
		shuffledMoved.DNS[i], shuffledMoved.DNS[j] = shuffledMoved.DNS[j], shuffledMoved.DNS[i]
	})
	s, _ := New(Config{Upstreams: []string{"127.0.0.1:1"}})
	s.Update(p)
	alternate := func(x, y *openapi.Program) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i++; i%2 == 0 {
					s.Update(x)
				} else {
					s.Update(y)
				}
			}
		}
	}
	b.Run("unchanged", alternate(p, p))
	b.Run("changed", alternate(p, &moved))
	b.Run("created", alternate(p, &created))
	b.Run("unsorted", alternate(&shuffled, &shuffledMoved))
}
