package bench

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// dnsDomain is the controller's default SWITCHYARD_DNS_DOMAIN.
const dnsDomain = "switchyard.local"

// Connection-rate and DNS load parameters.
const (
	rateConns       = 2000
	rateConcurrency = 32
	dnsQueries      = 5000
	dnsConcurrency  = 4
	// resolvePoll is how often each host's resolver client asks for the
	// new name in dns-create-to-resolve (its resolution).
	resolvePoll = 2 * time.Millisecond
)

// rateService is the service of conn-rate and throughput: one backend
// ("rate-b", second host) behind ports 80 and 5201 (iperf3).
func (s *svcEnv) rateService(b *testing.B) openapi.Service {
	b.Helper()
	if _, ok := s.ct["rate-b"]; !ok {
		s.add(b, "rate-b", s.e.hosts[1], map[string]string{"app": "rate"})
		s.service(b, "rate", map[string]any{"selector": "app=rate", "ports": []map[string]any{
			{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "iperf", "port": lab.IPerf3Port, "protocol": "TCP"}}})
	}
	var svc openapi.Service
	s.e.c.MustDo(b, 200, "GET", "/api/v1/services/rate?network=bench", nil, &svc)
	return svc
}

// alternate runs rounds of f on the VIP and on the backend's own address,
// the order alternating (so the machine's load hits both alike), at least
// minRounds of each.
func alternate(b *testing.B, vip, direct string, f func(addr string)) {
	i := 0
	round := func() {
		order := []string{vip, direct}
		if i%2 == 1 {
			order[0], order[1] = direct, vip
		}
		for _, a := range order {
			f(a)
		}
		i++
	}
	for b.Loop() {
		round()
	}
	for i < minRounds {
		round()
	}
	b.ReportMetric(float64(i), "rounds")
}

// connRate: see BenchmarkServices.
func (s *svcEnv) connRate(b *testing.B) {
	svc := s.rateService(b)
	vip, direct := svc.VIP+":80", s.ct["rate-b"].IP+":80"
	rates := map[string][]float64{}
	failed := 0
	alternate(b, vip, direct, func(addr string) {
		c, cancel := runCtx(5 * time.Minute)
		defer cancel()
		res, err := s.probes["client"].Load(c, lab.LoadRequest{Probe: lab.ProbeRequest{Proto: "tcp", Addr: addr, TimeoutMs: 2000},
			Count: rateConns, Concurrency: rateConcurrency})
		if err != nil {
			b.Fatal(err)
		}
		if res.Failed > 0 {
			b.Logf("%s: %d of %d connections failed (first: %s)", addr, res.Failed, rateConns, res.Error)
		}
		failed += res.Failed
		rates[addr] = append(rates[addr], float64(res.OK)/(float64(res.ElapsedUs)/1e6))
	})
	b.ReportMetric(pct(rates[vip], 50), "vip-conn/s")
	b.ReportMetric(pct(rates[direct], 50), "direct-conn/s")
	b.ReportMetric(pct(rates[vip], 50)/pct(rates[direct], 50)*100, "vip/direct-%")
	b.ReportMetric(float64(failed), "failed-conns")
}

// throughput: see BenchmarkServices.
func (s *svcEnv) throughput(b *testing.B) {
	svc := s.rateService(b)
	server := s.ct["rate-b"]
	netns := s.e.c.Sandbox(server.Host, "rate-b", "bench")
	client := s.e.c.Sandbox(s.ct["client"].Host, "client", "bench")
	mbps := map[string][]float64{}
	alternate(b, svc.VIP, server.IP, func(addr string) {
		srv := s.e.c.Lab.StartIPerf3(b, "iperf3-server", netns, server.IP)
		defer srv.Stop()
		c, cancel := runCtx(time.Duration(iperfSeconds+20) * time.Second)
		defer cancel()
		res, err := lab.IPerf3(c, client, addr, iperfSeconds)
		if err != nil {
			b.Fatalf("iperf3 -> %s: %v\n%s\nserver: %s", addr, err, res.Output, srv.Log())
		}
		mbps[addr] = append(mbps[addr], res.Mbps())
	})
	b.ReportMetric(pct(mbps[svc.VIP], 50), "vip-Mbit/s")
	b.ReportMetric(pct(mbps[server.IP], 50), "direct-Mbit/s")
	b.ReportMetric(pct(mbps[svc.VIP], 50)/pct(mbps[server.IP], 50)*100, "vip/direct-%")
}

// resolver is the node-local resolver a container of network bench asks.
func (s *svcEnv) resolver() string { return net.JoinHostPort(s.net.Gateway, "53") }

// dnsQueries: see BenchmarkServices. Each op is one run of dnsQueries
// queries; at least minRounds runs, latencies pooled.
func (s *svcEnv) dnsQueries(b *testing.B) {
	q := lab.DNSQuery{Server: s.resolver(), Proto: "udp", Name: "client.bench." + dnsDomain + ".", Type: "A", TimeoutMs: 2000}
	var lat, qps []float64
	failed := 0
	one := func() {
		c, cancel := runCtx(5 * time.Minute)
		defer cancel()
		res, err := s.probes["client"].DNSBench(c, lab.DNSBench{DNSQuery: q, Count: dnsQueries, Concurrency: dnsConcurrency})
		if err != nil {
			b.Fatal(err)
		}
		if res.OK == 0 {
			b.Fatalf("no query of %s to %s answered NOERROR: %s", q.Name, q.Server, res.Error)
		}
		failed += res.Failed
		qps = append(qps, float64(res.OK)/(float64(res.ElapsedUs)/1e6))
		for _, us := range res.LatUs {
			lat = append(lat, float64(us)/1000)
		}
	}
	n := sampleLoop(b, minRounds, one)
	b.ReportMetric(pct(qps, 50), "queries/s")
	b.ReportMetric(pct(lat, 50), "p50-ms")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(float64(n), "rounds")
}

// dnsCreateToResolve: see BenchmarkServices. A client container on every
// host asks its resolver for the new name every resolvePoll, from before
// the POST; a host's time is the send time of its first answer with the
// container's address.
func (s *svcEnv) dnsCreateToResolve(b *testing.B, min int) {
	clients := map[string]string{s.e.hosts[0]: "client"}
	for _, h := range s.e.hosts[1:] {
		name := "dnsc-" + h
		if _, ok := s.ct[name]; !ok {
			s.add(b, name, h, map[string]string{"role": "resolver-client"})
		}
		clients[h] = name
	}
	var all, remote []float64
	sampleLoop(b, min, func() {
		s.seq++
		host := s.e.hosts[s.seq%len(s.e.hosts)]
		name := fmt.Sprintf("dnsr-%d", s.seq)
		fq := name + ".bench." + dnsDomain + "."
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[string]time.Time{}
		answer := map[string]string{}
		for h, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					at := time.Now()
					cx, cancel := runCtx(ctlTimeout)
					res, err := s.probes[c].DNS(cx, []lab.DNSQuery{{Server: s.resolver(), Name: fq, Type: "A", TimeoutMs: 1000}})
					cancel()
					if err == nil && res[0].OK && res[0].Rcode == "NOERROR" && len(res[0].Answers) > 0 {
						mu.Lock()
						seen[h], answer[h] = at, res[0].Answers[0]
						mu.Unlock()
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(resolvePoll):
					}
				}
			}()
		}
		t0 := time.Now()
		var ct openapi.Container
		code, err := s.e.c.Do("POST", "/api/v1/containers", map[string]any{"name": name, "network": "bench", "host": host}, &ct)
		if code != 201 {
			close(stop)
			wg.Wait()
			b.Fatalf("create %s: %d %v", name, code, err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(convergeTimeout):
			close(stop)
			<-done
			b.Fatalf("%s did not resolve on every host within %s: %v", name, convergeTimeout, seen)
		}
		var worst, worstRemote time.Duration
		for h, at := range seen {
			if answer[h] != ct.IP {
				b.Fatalf("%s on %s resolved to %s, want %s", name, h, answer[h], ct.IP)
			}
			d := max(0, at.Sub(t0))
			worst = max(worst, d)
			if h != host {
				worstRemote = max(worstRemote, d)
			}
		}
		all, remote = append(all, msOf(worst)), append(remote, msOf(worstRemote))
		s.e.c.MustDo(b, 204, "DELETE", "/api/v1/containers/"+name+"?wait=realized&timeout=60s", nil, nil)
	})
	b.ReportMetric(pct(all, 50), "p50-ms")
	b.ReportMetric(pct(all, 99), "p99-ms")
	b.ReportMetric(pct(remote, 50), "remote-p50-ms")
	b.ReportMetric(float64(len(all)), "samples")
}
