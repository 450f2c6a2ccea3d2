package bench

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// Datapath measurement parameters: one op is a 5 s iperf3 transfer with a
// ping every 10 ms running next to it (from 0.2 s in, 450 probes, so every
// probe sees the load), after 100 probes on the idle path.
const (
	iperfSeconds  = 5
	pingInterval  = 10 * time.Millisecond
	pingLoaded    = 450
	pingLoadDelay = 200 * time.Millisecond
	pingIdle      = 100
)

// endpoint is a container for the datapath benchmark: its namespace and IP.
type endpoint struct{ netns, ip string }

// path is a client and a server container.
type path struct{ client, server endpoint }

// setup is one datapath under test: its lab and its paths by name.
type setup struct {
	name  string
	lab   *lab.Lab
	paths map[string]path
}

// minRounds is the fewest rounds a path is measured: with Go's default
// -benchtime one op (a round) already takes about 16 s, so Go stops after
// one and the other rounds run with the timer stopped.
const minRounds = 3

// BenchmarkDatapath measures TCP throughput (iperf3 -t 5) and ping RTT,
// idle and under that load, between two containers on one host and on two
// hosts (geneve), through Switchyard (controller, agents, the full
// pipeline) and through a bare OVS userspace bridge set up by hand (br-phy
// + br-int with one geneve port and destination-MAC forwarding flows): the
// same kind of lab, veths, offload settings and MTU, no Switchyard. Both
// run side by side; one op is a round that measures the path on each (the
// order alternating), so a change in the machine's load hits both alike.
// Throughput is the median over rounds, RTT percentiles pool every probe.
func BenchmarkDatapath(b *testing.B) {
	for _, bin := range []string{"iperf3", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s is not installed", bin)
		}
	}
	c := cluster.New(b, cluster.Options{Hosts: 2, Tunnel: openapi.TunnelGeneve})
	n := c.Network(b, "dp", "10.70.0.0/24")
	ep := func(name, host string) endpoint {
		ct := c.Container(b, name, "dp", host, nil)
		return endpoint{c.Sandbox(host, name, "dp"), ct.IP}
	}
	a, same, other := ep("a", "h1"), ep("b", "h1"), ep("c", "h2")
	sy := setup{"switchyard", c.Lab, map[string]path{"same-host": {a, same}, "cross-host": {a, other}}}
	l := lab.New(b, lab.Options{Hosts: 2, Tunnel: "geneve"})
	eps := bareOVS(b, l, n.MTU)
	bare := setup{"bare", l, map[string]path{"same-host": {eps[0], eps[1]}, "cross-host": {eps[0], eps[2]}}}
	for _, name := range []string{"same-host", "cross-host"} {
		b.Run("path="+name, func(b *testing.B) {
			res, rounds := compare(b, sy, bare, name)
			b.ReportMetric(pct(res[sy.name].mbps, 50)/pct(res[bare.name].mbps, 50)*100, "switchyard/bare-%")
			b.ReportMetric(float64(rounds), "rounds")
		})
	}
}

// compare measures path name on setups x and y, one round after the other
// with the order alternating so that the machine's load hits both alike:
// the benchmark's ops, then more rounds up to minRounds. It reports each
// setup's metrics and returns their results and the number of rounds.
func compare(b *testing.B, x, y setup, name string) (map[string]*dpResult, int) {
	res := map[string]*dpResult{x.name: {}, y.name: {}}
	for _, s := range []setup{x, y} {
		waitReachable(b, s.paths[name])
	}
	round := func(i int) {
		order := []setup{x, y}
		if i%2 == 1 {
			order[0], order[1] = y, x
		}
		for _, s := range order {
			res[s.name].measure(b, s.lab, s.paths[name])
		}
	}
	i := 0
	for b.Loop() {
		round(i)
		i++
	}
	for ; i < minRounds; i++ {
		round(i)
	}
	for _, s := range []setup{x, y} {
		res[s.name].report(b, s.name)
	}
	return res, i
}

// dpResult gathers the rounds of one setup on one path.
type dpResult struct {
	mbps         []float64
	idle, loaded []float64 // RTTs in ms
	sent, lost   int
}

// measure is one round: idle pings, then iperf3 with pings next to it.
func (r *dpResult) measure(b *testing.B, l *lab.Lab, p path) {
	r.idle = append(r.idle, pingRTTs(p, pingIdle, 0)...)
	m, rtts, lost := loadedRun(b, l, p)
	r.mbps = append(r.mbps, m)
	r.loaded = append(r.loaded, rtts...)
	r.sent += pingLoaded
	r.lost += lost
}

func (r *dpResult) report(b *testing.B, name string) {
	b.ReportMetric(pct(r.mbps, 50), name+"-Mbit/s")
	b.ReportMetric(pct(r.idle, 50), name+"-idle-rtt-p50-ms")
	b.ReportMetric(pct(r.loaded, 50), name+"-rtt-p50-ms")
	b.ReportMetric(pct(r.loaded, 99), name+"-rtt-p99-ms")
	b.ReportMetric(float64(r.lost)/float64(r.sent)*100, name+"-ping-loss-%")
}

// waitReachable waits until the client's ping gets a reply (the first
// packets of a path may wait for ARP of the underlay).
func waitReachable(b *testing.B, p path) {
	b.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := runCtx(5 * time.Second)
		_, err := lab.Ping(ctx, p.client.netns, p.server.ip, 1, 0)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s cannot reach %s: %v", p.client.netns, p.server.ip, err)
		}
	}
}

// pingRTTs pings count times every 10 ms after delay and returns the RTTs
// in ms of the replies.
func pingRTTs(p path, count int, delay time.Duration) []float64 {
	time.Sleep(delay)
	wait := time.Duration(count)*pingInterval + 10*time.Second
	ctx, cancel := runCtx(wait)
	defer cancel()
	out, _ := lab.RunIn(ctx, p.client.netns, "ping", "-n", "-c", fmt.Sprint(count),
		"-i", fmt.Sprintf("%.3f", pingInterval.Seconds()), "-W", "1", p.server.ip)
	return pingTimes(out)
}

// loadedRun runs one iperf3 transfer client -> server and pings next to
// it; it returns the throughput in Mbit/s, the RTTs and the lost probes.
func loadedRun(b *testing.B, l *lab.Lab, p path) (float64, []float64, int) {
	b.Helper()
	srv := l.StartIPerf3(b, "iperf3-server", p.server.netns, p.server.ip)
	defer srv.Stop()
	pings := make(chan []float64, 1)
	type result struct {
		res lab.IPerf3Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := runCtx(time.Duration(iperfSeconds+20) * time.Second)
		defer cancel()
		var r result
		r.res, r.err = lab.IPerf3(ctx, p.client.netns, p.server.ip, iperfSeconds)
		done <- r
	}()
	go func() { pings <- pingRTTs(p, pingLoaded, pingLoadDelay) }()
	r := <-done
	rtts := <-pings
	if r.err != nil {
		b.Fatalf("iperf3 %s -> %s: %v\n%s\nserver: %s", p.client.netns, p.server.ip, r.err, r.res.Output, srv.Log())
	}
	return r.res.Mbps(), rtts, pingLoaded - len(rtts)
}

// bareOVS builds the reference datapath on a two-host lab: on each host
// br-phy holding the underlay (the address on its internal port, NORMAL
// forwarding) and br-int (secure) with one geneve port to the peer; three
// containers (h1: two, h2: one) with static neighbours; on br-int, table 0
// admits the local ports and the tunnel (VNI 100), table 1 forwards on
// destination MAC to a local port or into the tunnel. It returns the
// containers: h1's two, then h2's.
func bareOVS(b *testing.B, l *lab.Lab, mtu int) []endpoint {
	b.Helper()
	const vni = 100
	type ctr struct {
		host *lab.Host
		ep   endpoint
		mac  string
		port string
	}
	var all []ctr
	for i, h := range l.Hosts {
		peer := l.Hosts[1-i].UnderlayAddr.Addr().String()
		addr := h.UnderlayAddr.String()
		h.VSCtl(b, "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
			"--", "add-port", "br-phy", h.UnderlayIface,
			"--", "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
			"--", "add-port", "br-int", "tun", "--", "set", "interface", "tun", "type=geneve",
			"options:remote_ip="+peer, "options:key=flow")
		h.MustRun(b, "ip", "addr", "del", addr, "dev", h.UnderlayIface)
		h.MustRun(b, "ip", "addr", "add", addr, "dev", "br-phy")
		h.MustRun(b, "ip", "link", "set", "br-phy", "up")
		for n := 1; n <= 2-i; n++ {
			id := fmt.Sprintf("%d%d", i+1, n)
			c := ctr{host: h, mac: "02:00:00:00:00:" + id, port: "bare" + id,
				ep: endpoint{l.NewNetns(b, "bare"+id), "10.71.0." + id}}
			h.MustRun(b, "ip", "link", "add", "name", c.port, "mtu", fmt.Sprint(mtu), "type", "veth",
				"peer", "name", "eth0", "netns", c.ep.netns, "mtu", fmt.Sprint(mtu))
			h.MustRun(b, "ethtool", "-K", c.port, "tx", "off")
			h.MustRun(b, "ip", "link", "set", c.port, "up")
			for _, args := range [][]string{{"ethtool", "-K", "eth0", "tx", "off"},
				{"ip", "link", "set", "eth0", "address", c.mac},
				{"ip", "addr", "add", c.ep.ip + "/24", "dev", "eth0"},
				{"ip", "link", "set", "eth0", "up"}} {
				ctx, cancel := runCtx(10 * time.Second)
				out, err := lab.RunIn(ctx, c.ep.netns, args[0], args[1:]...)
				cancel()
				if err != nil {
					b.Fatalf("%v: %v %s", args, err, out)
				}
			}
			h.VSCtl(b, "add-port", "br-int", c.port)
			all = append(all, c)
		}
	}
	for _, h := range l.Hosts {
		tun := h.OFPort(b, "tun")
		flows := []string{fmt.Sprintf("table=0,priority=100,in_port=%d,tun_id=%d,actions=goto_table:1", tun, vni)}
		for _, c := range all {
			if c.host == h {
				of := h.OFPort(b, c.port)
				flows = append(flows, fmt.Sprintf("table=0,priority=100,in_port=%d,actions=goto_table:1", of),
					fmt.Sprintf("table=1,priority=100,dl_dst=%s,actions=output:%d", c.mac, of))
			} else {
				flows = append(flows, fmt.Sprintf("table=1,priority=100,dl_dst=%s,actions=set_field:%d->tun_id,output:%d", c.mac, vni, tun))
			}
		}
		for _, f := range flows {
			h.OFCtl(b, "add-flow", "br-int", f)
		}
	}
	var eps []endpoint
	for _, c := range all {
		for _, o := range all {
			if o.ep != c.ep {
				ctx, cancel := runCtx(10 * time.Second)
				_, err := lab.RunIn(ctx, c.ep.netns, "ip", "neigh", "replace", o.ep.ip, "lladdr", o.mac, "dev", "eth0", "nud", "permanent")
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		eps = append(eps, c.ep)
	}
	return eps
}
