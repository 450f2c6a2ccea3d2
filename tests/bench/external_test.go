package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// extEnv is the external-access benchmark's cluster: two hosts, network
// "xb" with "srv" (first host; publishes its probe port 80 on
// extHTTPPort and iperf3's on extIPerfPort) and "peer" (same host, the
// direct client), "pubd" (first host, the publish-to-connection samples'
// target, published anew each sample); the lab's outside runs the probe
// server (the outside's client) and, for egress, iperf3 on its server
// address.
type extEnv struct {
	c      *cluster.Cluster
	out    *lab.Outside
	outP   *lab.Probe
	probes map[string]*lab.Probe
	ct     map[string]openapi.Container
	seq    int
}

const (
	extBenchNet  = "xb"
	extHTTPPort  = 18080
	extIPerfPort = 15201
	// firstPortBase + i is sample i's published port in publish-to-conn.
	firstPortBase = 20000
	extWait       = "?wait=realized&timeout=60s"
)

// BenchmarkExternal measures external access in the lab (issue 11):
//
//   - conn-rate: TCP connections per second (2,000, 32 at a time) from
//     the outside to a container's published port vs from a container on
//     the same host to the container's own address (target >= 80 %).
//   - throughput: iperf3 (5 s) the same two ways (target >= 90 %).
//   - publish-to-conn: PATCH of a running container's publish (no wait)
//     to the first successful outside connection to the new host port (a
//     connection attempt every 5 ms, each timed from its start), p50/p99.
//   - egress-throughput: iperf3 (5 s) from a container to a server
//     outside the overlay (SNATed by its host) vs from the host's own
//     namespace to the same server.
//
// SWITCHYARD_BENCH_EXTERNAL_SAMPLES sets the fewest samples of
// publish-to-conn (default 20).
func BenchmarkExternal(b *testing.B) {
	samples := 20
	if v := os.Getenv("SWITCHYARD_BENCH_EXTERNAL_SAMPLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("SWITCHYARD_BENCH_EXTERNAL_SAMPLES=%q: want a number >= 2", v)
		}
		samples = n
	}
	x := newExtEnv(b)
	b.Run("conn-rate", x.connRate)
	b.Run("throughput", x.throughput)
	b.Run("publish-to-conn", func(b *testing.B) { x.publishToConn(b, samples) })
	b.Run("egress-throughput", x.egressThroughput)
}

func newExtEnv(b *testing.B) *extEnv {
	b.Helper()
	c := cluster.New(b, cluster.Options{Hosts: 2})
	x := &extEnv{c: c, probes: map[string]*lab.Probe{}, ct: map[string]openapi.Container{}}
	x.out = c.Lab.AddOutside(b)
	x.outP = x.out.StartServer(b, c.Bin.Probe)
	c.Network(b, extBenchNet, "10.70.0.0/24")
	x.add(b, "srv", map[string]any{"publish": []map[string]any{
		{"hostPort": extHTTPPort, "port": 80}, {"hostPort": extIPerfPort, "port": lab.IPerf3Port}}})
	x.add(b, "peer", nil)
	x.add(b, "pubd", nil)
	// Ready: the published port answers from the outside.
	c.Eventually(b, 30*time.Second, func() error {
		ctx, cancel := runCtx(ctlTimeout)
		defer cancel()
		res, err := x.outP.Run(ctx, []lab.ProbeRequest{{Proto: "tcp", Addr: x.published(extHTTPPort), TimeoutMs: 1000}})
		if err != nil {
			return err
		}
		if !res[0].OK || res[0].Reply != "srv" {
			return fmt.Errorf("outside -> %s: %+v", x.published(extHTTPPort), res[0])
		}
		return nil
	})
	return x
}

// add creates a container on the first host (realized) and starts its
// probe server.
func (x *extEnv) add(b *testing.B, name string, extra map[string]any) {
	b.Helper()
	h := x.c.Lab.Hosts[0].Name
	x.ct[name] = x.c.Container(b, name, extBenchNet, h, extra)
	x.probes[name] = x.c.Lab.StartProbe(b, x.c.Bin.Probe, name, x.c.Sandbox(h, name, extBenchNet))
}

// published is the first host's address with port.
func (x *extEnv) published(port int) string {
	return fmt.Sprintf("%s:%d", x.c.Lab.Hosts[0].UnderlayAddr.Addr(), port)
}

// load runs rateConns connections from p to addr and returns the rate.
func load(b *testing.B, p *lab.Probe, addr string, failed *int) float64 {
	b.Helper()
	c, cancel := runCtx(5 * time.Minute)
	defer cancel()
	res, err := p.Load(c, lab.LoadRequest{Probe: lab.ProbeRequest{Proto: "tcp", Addr: addr, TimeoutMs: 2000},
		Count: rateConns, Concurrency: rateConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	if res.Failed > 0 {
		b.Logf("%s: %d of %d connections failed (first: %s)", addr, res.Failed, rateConns, res.Error)
	}
	*failed += res.Failed
	return float64(res.OK) / (float64(res.ElapsedUs) / 1e6)
}

// connRate: see BenchmarkExternal.
func (x *extEnv) connRate(b *testing.B) {
	pub, direct := x.published(extHTTPPort), x.ct["srv"].IP+":80"
	rates := map[string][]float64{}
	failed := 0
	alternate(b, pub, direct, func(addr string) {
		p := x.probes["peer"]
		if addr == pub {
			p = x.outP
		}
		rates[addr] = append(rates[addr], load(b, p, addr, &failed))
	})
	b.ReportMetric(pct(rates[pub], 50), "published-conn/s")
	b.ReportMetric(pct(rates[direct], 50), "direct-conn/s")
	b.ReportMetric(pct(rates[pub], 50)/pct(rates[direct], 50)*100, "published/direct-%")
	b.ReportMetric(float64(failed), "failed-conns")
}

// iperf runs one iperf3 measurement from client (a namespace) to addr
// ("ip" or "ip:port") against a one-off server in netns bound to bind.
func (x *extEnv) iperf(b *testing.B, netns, bind, client, addr string) float64 {
	b.Helper()
	srv := x.c.Lab.StartIPerf3(b, "iperf3-server", netns, bind)
	defer srv.Stop()
	c, cancel := runCtx(time.Duration(iperfSeconds+20) * time.Second)
	defer cancel()
	host, port := addr, ""
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host, port = addr[:i], addr[i+1:]
	}
	var args []string
	if port != "" {
		args = []string{"-p", port}
	}
	res, err := lab.IPerf3(c, client, host, iperfSeconds, args...)
	if err != nil {
		b.Fatalf("iperf3 -> %s: %v\n%s\nserver: %s", addr, err, res.Output, srv.Log())
	}
	return res.Mbps()
}

// throughput: see BenchmarkExternal.
func (x *extEnv) throughput(b *testing.B) {
	srv := x.ct["srv"]
	netns := x.c.Sandbox(srv.Host, "srv", extBenchNet)
	pub := x.published(extIPerfPort)
	mbps := map[string][]float64{}
	alternate(b, pub, srv.IP, func(addr string) {
		client := x.c.Sandbox(srv.Host, "peer", extBenchNet)
		if addr == pub {
			client = x.out.Netns
		}
		mbps[addr] = append(mbps[addr], x.iperf(b, netns, srv.IP, client, addr))
	})
	b.ReportMetric(pct(mbps[pub], 50), "published-Mbit/s")
	b.ReportMetric(pct(mbps[srv.IP], 50), "direct-Mbit/s")
	b.ReportMetric(pct(mbps[pub], 50)/pct(mbps[srv.IP], 50)*100, "published/direct-%")
}

// publishToConn: see BenchmarkExternal. Each sample publishes pubd's port
// 80 on a new host port, and unpublishes it (realized) after.
func (x *extEnv) publishToConn(b *testing.B, min int) {
	var first, patched []float64
	sampleLoop(b, min, func() {
		x.seq++
		port := firstPortBase + x.seq
		addr := x.published(port)
		c, cancel := runCtx(ctlTimeout)
		st, err := x.outP.Stream(c, lab.ProbeRequest{Proto: "tcp", Addr: addr, TimeoutMs: int(streamTimeout.Milliseconds())}, streamInterval)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		x.c.MustDo(b, 200, "PATCH", "/api/v1/containers/pubd", map[string]any{"publish": []map[string]any{{"hostPort": port, "port": 80}}}, nil)
		patched = append(patched, msOf(time.Since(t0)))
		streamUntil(b, st, convergeTimeout, "a connection to "+addr, func(recs []lab.StreamRecord) bool {
			return slices.ContainsFunc(recs, func(r lab.StreamRecord) bool { return r.OK })
		})
		recs := stopStream(b, st)
		var at time.Time
		for _, r := range recs {
			if r.OK && r.Reply == "pubd" && (at.IsZero() || r.Time().Before(at)) {
				at = r.Time()
			}
		}
		if at.IsZero() {
			b.Fatalf("%s answered, but not by pubd: %+v", addr, recs)
		}
		first = append(first, msOf(at.Sub(t0)))
		x.c.MustDo(b, 200, "PATCH", "/api/v1/containers/pubd"+extWait, map[string]any{"publish": []map[string]any{}}, nil)
	})
	b.ReportMetric(pct(first, 50), "first-conn-p50-ms")
	b.ReportMetric(pct(first, 99), "first-conn-p99-ms")
	b.ReportMetric(pct(patched, 50), "patch-p50-ms")
	b.ReportMetric(float64(len(first)), "samples")
}

// egressThroughput: see BenchmarkExternal.
func (x *extEnv) egressThroughput(b *testing.B) {
	h := x.c.Lab.Hosts[0]
	server := x.out.Server.String()
	const fromCtr, fromHost = "container", "host"
	mbps := map[string][]float64{}
	alternate(b, fromCtr, fromHost, func(from string) {
		client := h.Netns
		if from == fromCtr {
			client = x.c.Sandbox(h.Name, "peer", extBenchNet)
		}
		mbps[from] = append(mbps[from], x.iperf(b, x.out.Netns, server, client, server))
	})
	b.ReportMetric(pct(mbps[fromCtr], 50), "egress-Mbit/s")
	b.ReportMetric(pct(mbps[fromHost], 50), "host-Mbit/s")
	b.ReportMetric(pct(mbps[fromCtr], 50)/pct(mbps[fromHost], 50)*100, "egress/host-%")
}
