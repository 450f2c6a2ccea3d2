package bench

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// tableServiceLB is br-int's ServiceLB table (controller/internal/compile/
// tables.go): a service's VIP flows are there on every host where its
// network is present.
const tableServiceLB = 5

// Service benchmark parameters: a probe stream starts a connection every
// streamInterval (the resolution of the first-connection and removal
// figures), each given streamTimeout.
const (
	streamInterval = 5 * time.Millisecond
	streamTimeout  = 200 * time.Millisecond
	// afterRemoval is how many attempts a removal sample still watches
	// once the change is realized everywhere.
	afterRemoval = 40
)

// svcEnv is the services benchmark's cluster: the convergence benchmark's
// lab (one network "bench", filler containers) plus a client on the first
// host and backends on the others, each running a probe server.
type svcEnv struct {
	e      *convEnv
	net    openapi.Network
	probes map[string]*lab.Probe
	ct     map[string]openapi.Container
	vips   map[string]*watch // host -> its ServiceLB table's VIPs
	seq    int
}

// BenchmarkServices measures services and DNS in the lab (issue 10):
//
//   - first-connection: POST /services (no wait) to the first successful
//     TCP connection through the new VIP from a container on another host
//     than the backends (a connection attempt every 5 ms, each timed from
//     its start), and to the VIP's flow on every host's switch (OpenFlow
//     monitors on ServiceLB).
//   - backend-deleted, backend-unhealthy: a backend deleted (DELETE, the
//     clock starts before the call) or its health check failing (its HTTP
//     server stops; check every 1 s, unhealthy after 2 failures) to the
//     last new connection that went to it (answered by it, or lost) while
//     the other backend serves.
//   - conn-rate: TCP connections per second (2,000, 32 at a time) through
//     a VIP vs directly to its one backend, on another host.
//   - throughput: iperf3 (5 s) through a VIP vs directly.
//   - dns-queries: A queries per second (UDP, 4 at a time) from a
//     container to its node-local resolver, and their latency.
//   - dns-create-to-resolve: POST /containers (no wait) to its name
//     resolving from a container on every host.
//
// SWITCHYARD_BENCH_SERVICE_LAB=HOSTSxN sets the lab (default 10x100: 10
// hosts, 100 containers); SWITCHYARD_BENCH_SERVICE_SAMPLES the fewest
// samples of a latency figure (default 20; backend-unhealthy takes half,
// each sample lasting a few seconds).
func BenchmarkServices(b *testing.B) {
	hosts, ctrs := 10, 100
	if v := os.Getenv("SWITCHYARD_BENCH_SERVICE_LAB"); v != "" {
		sh, err := parseShapes(v)
		if err != nil || len(sh) != 1 || len(sh[0].containers) != 1 || sh[0].hosts < 3 {
			b.Fatalf("SWITCHYARD_BENCH_SERVICE_LAB=%q: want HOSTSxN, at least 3 hosts (%v)", v, err)
		}
		hosts, ctrs = sh[0].hosts, sh[0].containers[0]
	}
	samples := 20
	if v := os.Getenv("SWITCHYARD_BENCH_SERVICE_SAMPLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("SWITCHYARD_BENCH_SERVICE_SAMPLES=%q: want a number >= 2", v)
		}
		samples = n
	}
	s := newSvcEnv(b, hosts, ctrs)
	b.Run("first-connection", func(b *testing.B) { s.firstConnection(b, samples) })
	b.Run("backend-deleted", func(b *testing.B) { s.backendDeleted(b, samples) })
	b.Run("backend-unhealthy", func(b *testing.B) { s.backendUnhealthy(b, max(2, samples/2)) })
	b.Run("conn-rate", s.connRate)
	b.Run("throughput", s.throughput)
	b.Run("dns-queries", s.dnsQueries)
	b.Run("dns-create-to-resolve", func(b *testing.B) { s.dnsCreateToResolve(b, samples) })
}

func newSvcEnv(b *testing.B, hosts, ctrs int) *svcEnv {
	e := newConvEnv(b, hosts)
	e.fill(b, ctrs)
	s := &svcEnv{e: e, probes: map[string]*lab.Probe{}, ct: map[string]openapi.Container{}, vips: map[string]*watch{}}
	e.c.MustDo(b, 200, "GET", "/api/v1/networks/bench", nil, &s.net)
	s.add(b, "client", e.hosts[0], map[string]string{"role": "client"})
	for _, h := range e.hosts {
		s.vips[h] = watchVIPs(b, e.c.Lab.Host(h))
	}
	return s
}

// add creates a container (realized) on host and starts its probe server.
func (s *svcEnv) add(b *testing.B, name, host string, labels map[string]string) openapi.Container {
	b.Helper()
	c := s.e.c.Container(b, name, "bench", host, map[string]any{"labels": labels})
	s.ct[name] = c
	s.probes[name] = s.e.c.Lab.StartProbe(b, s.e.c.Bin.Probe, name, s.e.c.Sandbox(host, name, "bench"))
	return c
}

// remove deletes a container (realized) and stops its probe server.
func (s *svcEnv) remove(b *testing.B, name string) {
	b.Helper()
	s.e.c.MustDo(b, 204, "DELETE", "/api/v1/containers/"+name+"?wait=realized&timeout=60s", nil, nil)
	s.probes[name].Proc.Stop()
	delete(s.probes, name)
	delete(s.ct, name)
}

// service creates a service of network bench on port 80 (body's fields
// over the defaults), realized everywhere.
func (s *svcEnv) service(b *testing.B, name string, body map[string]any) openapi.Service {
	b.Helper()
	m := map[string]any{"name": name, "network": "bench", "ports": []map[string]any{{"name": "http", "port": 80, "protocol": "TCP"}}}
	for k, v := range body {
		m[k] = v
	}
	var out openapi.Service
	s.e.c.MustDo(b, 201, "POST", "/api/v1/services?wait=realized&timeout=60s", m, &out)
	return out
}

// vip is a fresh address of the default service range for sample i.
func vip(i int) string { return fmt.Sprintf("10.96.%d.%d", 200+i/250, i%250+1) }

var vipDst = regexp.MustCompile(`nw_dst=([0-9.]+)`)

// vipFlows parses `ovs-ofctl monitor` output of ServiceLB: the destination
// addresses of added flows.
func vipFlows(line string) []string {
	if !flowEvent.MatchString(line) {
		return nil
	}
	if m := vipDst.FindStringSubmatch(line); m != nil {
		return []string{m[1]}
	}
	return nil
}

func watchVIPs(tb testing.TB, h *lab.Host) *watch {
	tb.Helper()
	w := startWatch(tb, "vips-"+h.Name, h.Env(), vipFlows, "ovs-ofctl", "-O", "OpenFlow15", "monitor",
		h.MgmtSocket("br-int"), fmt.Sprintf("watch:table=%d,!actions", tableServiceLB))
	w.waitLines(tb, 1, 10*time.Second)
	return w
}

// sampleLoop runs one sample per op, and more after the benchmark's ops
// until there are min; it returns how many ran. (ns/op is the time of a
// whole sample, set-up included: the figures are the reported metrics.)
func sampleLoop(b *testing.B, min int, one func()) int {
	n := 0
	for b.Loop() {
		one()
		n++
	}
	for ; n < min; n++ {
		one()
	}
	return n
}

// ctlTimeout bounds one call to a probe server's control socket.
const ctlTimeout = 30 * time.Second

// startStream starts a stream of TCP connections from the client to addr.
func (s *svcEnv) startStream(b *testing.B, addr string) *lab.ProbeStream {
	b.Helper()
	c, cancel := runCtx(ctlTimeout)
	defer cancel()
	st, err := s.probes["client"].Stream(c, lab.ProbeRequest{Proto: "tcp", Addr: addr, TimeoutMs: int(streamTimeout.Milliseconds())}, streamInterval)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// stopStream stops a stream and returns its records.
func stopStream(b *testing.B, st *lab.ProbeStream) []lab.StreamRecord {
	b.Helper()
	c, cancel := runCtx(ctlTimeout)
	defer cancel()
	recs, err := st.Stop(c)
	if err != nil {
		b.Fatal(err)
	}
	return recs
}

// serve stops or starts a probe server's HTTP port.
func (s *svcEnv) serve(b *testing.B, name string, up bool) {
	b.Helper()
	c, cancel := runCtx(ctlTimeout)
	defer cancel()
	if err := s.probes[name].Serve(c, "http", lab.ProbeHTTPPort, up); err != nil {
		b.Fatal(err)
	}
}

// streamUntil polls a stream until done(records) holds, failing after
// timeout.
func streamUntil(b *testing.B, st *lab.ProbeStream, timeout time.Duration, what string, done func([]lab.StreamRecord) bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := runCtx(ctlTimeout)
		recs, err := st.Records(c)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if done(recs) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not after %s (%d attempts)", what, timeout, len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attemptsAfter counts the records that started after t.
func attemptsAfter(recs []lab.StreamRecord, t time.Time) int {
	n := 0
	for _, r := range recs {
		if r.Time().After(t) {
			n++
		}
	}
	return n
}

// firstConnection: see BenchmarkServices. Backends b1 and b2 on the second
// and third hosts; each sample a new service with a new VIP, deleted
// (realized) after.
func (s *svcEnv) firstConnection(b *testing.B, min int) {
	hosts := s.e.hosts
	for i, h := range []string{hosts[1], hosts[2]} {
		if _, ok := s.ct[fmt.Sprintf("b%d", i+1)]; !ok {
			s.add(b, fmt.Sprintf("b%d", i+1), h, map[string]string{"app": "svcbench"})
		}
	}
	var first, programmed, posted []float64
	sampleLoop(b, min, func() {
		s.seq++
		v := vip(s.seq)
		st := s.startStream(b, v+":80")
		t0 := time.Now()
		var svc openapi.Service
		s.e.c.MustDo(b, 201, "POST", "/api/v1/services", map[string]any{"name": fmt.Sprintf("first-%d", s.seq), "network": "bench",
			"vip": v, "selector": "app=svcbench", "ports": []map[string]any{{"name": "http", "port": 80, "protocol": "TCP"}}}, &svc)
		posted = append(posted, msOf(time.Since(t0)))
		var worst time.Duration
		for _, h := range hosts {
			at, err := s.vips[h].first(v, convergeTimeout)
			if err != nil {
				b.Fatalf("VIP %s on %s: %v", v, h, err)
			}
			worst = max(worst, at.Sub(t0))
		}
		programmed = append(programmed, msOf(worst))
		streamUntil(b, st, convergeTimeout, "a connection through "+v, func(recs []lab.StreamRecord) bool {
			return slices.ContainsFunc(recs, func(r lab.StreamRecord) bool { return r.OK })
		})
		recs := stopStream(b, st)
		var at time.Time
		for _, r := range recs {
			if r.OK && (at.IsZero() || r.Time().Before(at)) {
				at = r.Time()
			}
		}
		first = append(first, msOf(at.Sub(t0)))
		s.e.c.MustDo(b, 204, "DELETE", "/api/v1/services/"+svc.ID+"?wait=realized&timeout=60s", nil, nil)
	})
	b.ReportMetric(pct(first, 50), "first-conn-p50-ms")
	b.ReportMetric(pct(first, 99), "first-conn-p99-ms")
	b.ReportMetric(pct(programmed, 50), "vip-on-every-host-p50-ms")
	b.ReportMetric(pct(programmed, 99), "vip-on-every-host-p99-ms")
	b.ReportMetric(pct(posted, 50), "post-p50-ms")
	b.ReportMetric(float64(len(first)), "samples")
}

// removal is one removal sample: with a stream of connections from the
// client to svc's VIP running and both backends serving, remove runs (the
// clock starts before it) and returns when the removal is realized
// everywhere; the stream then runs afterRemoval more attempts. It returns
// the time from the start to the last attempt that went to gone (answered
// by it, or lost: the other backend is up), the attempts lost, and those
// that went to gone although they started streamTimeout or more after the
// removal was realized (which should be none).
func (s *svcEnv) removal(b *testing.B, svc openapi.Service, gone, other string, remove func()) (time.Duration, int, int) {
	b.Helper()
	st := s.startStream(b, svc.VIP+":80")
	streamUntil(b, st, 30*time.Second, "both backends serving", func(recs []lab.StreamRecord) bool {
		return slices.ContainsFunc(recs, func(r lab.StreamRecord) bool { return r.Reply == gone }) &&
			slices.ContainsFunc(recs, func(r lab.StreamRecord) bool { return r.Reply == other })
	})
	t0 := time.Now()
	remove()
	done := time.Now()
	streamUntil(b, st, 30*time.Second, "attempts after the removal", func(recs []lab.StreamRecord) bool {
		return attemptsAfter(recs, done) >= afterRemoval
	})
	recs := stopStream(b, st)
	var last time.Time
	lost, late := 0, 0
	for _, r := range recs {
		if !r.Time().After(t0) {
			continue
		}
		if !r.OK {
			lost++
		}
		if r.Reply == gone || !r.OK {
			last = later(last, r.Time())
			if r.Time().Sub(done) >= streamTimeout {
				late++
			}
		}
	}
	if last.IsZero() {
		return 0, lost, late
	}
	return last.Sub(t0), lost, late
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reportRemoval reports the removal samples' metrics.
func reportRemoval(b *testing.B, took []float64, lost, late int) {
	b.ReportMetric(pct(took, 50), "last-conn-p50-ms")
	b.ReportMetric(pct(took, 99), "last-conn-p99-ms")
	b.ReportMetric(float64(lost)/float64(len(took)), "lost-conns/op")
	b.ReportMetric(float64(late), "late-conns")
	b.ReportMetric(float64(len(took)), "samples")
}

// backendDeleted: see BenchmarkServices. Service "del" selects app=del:
// "keep" on the third host and, each sample, a new backend on the second,
// deleted with ?wait=realized.
func (s *svcEnv) backendDeleted(b *testing.B, min int) {
	s.add(b, "keep", s.e.hosts[2], map[string]string{"app": "del"})
	svc := s.service(b, "del", map[string]any{"selector": "app=del"})
	var took []float64
	lost, late := 0, 0
	sampleLoop(b, min, func() {
		s.seq++
		name := fmt.Sprintf("del-%d", s.seq)
		s.add(b, name, s.e.hosts[1], map[string]string{"app": "del"})
		d, l, k := s.removal(b, svc, name, "keep", func() { s.remove(b, name) })
		took, lost, late = append(took, msOf(d)), lost+l, late+k
	})
	reportRemoval(b, took, lost, late)
}

// backendUnhealthy: see BenchmarkServices. Service "hc" checks HTTP 8080
// of "hc-a" (second host) and "hc-b" (third) every second; each sample
// stops hc-a's HTTP server, waits until every host applied the unhealthy
// verdict, then (untimed) starts it again and waits until it serves.
func (s *svcEnv) backendUnhealthy(b *testing.B, min int) {
	s.add(b, "hc-a", s.e.hosts[1], map[string]string{"app": "hc"})
	s.add(b, "hc-b", s.e.hosts[2], map[string]string{"app": "hc"})
	svc := s.service(b, "hc", map[string]any{"selector": "app=hc", "healthCheck": map[string]any{"protocol": "HTTP",
		"port": lab.ProbeHTTPPort, "path": "/healthz", "intervalSeconds": 1, "timeoutSeconds": 1, "unhealthyThreshold": 2, "healthyThreshold": 1}})
	var took []float64
	lost, late := 0, 0
	sampleLoop(b, min, func() {
		d, l, k := s.removal(b, svc, "hc-a", "hc-b", func() {
			s.serve(b, "hc-a", false)
			s.waitHealth(b, svc, "hc-a", openapi.HealthUnhealthy)
		})
		took, lost, late = append(took, msOf(d)), lost+l, late+k
		s.serve(b, "hc-a", true)
		s.waitHealth(b, svc, "hc-a", openapi.HealthHealthy)
	})
	reportRemoval(b, took, lost, late)
}

// waitHealth waits until the endpoints API shows container's health as
// want and every host applied the revision of that moment.
func (s *svcEnv) waitHealth(b *testing.B, svc openapi.Service, container, want string) {
	b.Helper()
	c := s.e.c
	c.Eventually(b, 60*time.Second, func() error {
		var l openapi.EndpointList
		if code, err := c.Do("GET", "/api/v1/services/"+svc.ID+"/endpoints", nil, &l); code != 200 {
			return fmt.Errorf("endpoints of %s: %d %v", svc.Name, code, err)
		}
		for _, ep := range l.Items {
			if ep.Container == container && ep.Health == want {
				return nil
			}
		}
		return fmt.Errorf("%s is not %s: %+v", container, want, l.Items)
	})
	rev := c.Revision(b)
	s.e.settle(b, &sample{rev: rev}, cpuUse{})
}
