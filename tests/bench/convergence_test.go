package bench

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
)

// tableARPResponder is the number of br-int's ARPResponder table (the third
// table of the pipeline, see controller/internal/compile/tables.go). A
// container's own host drops its gratuitous ARP there, so a flow naming its
// address in this table is on its host once its flows are.
const tableARPResponder = 2

// convergeTimeout bounds one container's convergence before the benchmark
// fails.
const convergeTimeout = 60 * time.Second

// minSamples is the fewest containers a sub-benchmark measures: when Go
// stops earlier (slow ops, default -benchtime), the rest are measured with
// the timer stopped and count in the percentiles only.
const minSamples = 20

// convEnv is one cluster of the convergence benchmark, grown from one
// sub-benchmark to the next.
type convEnv struct {
	c       *cluster.Cluster
	hosts   []string
	flows   map[string]*watch  // host -> its ARPResponder table's additions
	ofports map[string]*watch  // host -> when each interface got its ofport
	pingers map[string]*pinger // host -> pings from its first container
	bulk    int                // containers created by fill
	seq     int                // measured containers created
	fillDur time.Duration      // the last fill
	idle    cpuUse             // CPU used per second with nothing to do
}

// sample is one measured container.
type sample struct {
	host   string // where the container is
	rev    int64  // the revision that created it
	port   string // its OVS port
	t0     time.Time
	posted time.Duration            // the POST's answer
	seen   map[string]time.Duration // host -> its flow on that host's switch
	ofport time.Duration            // its port got an ofport on its host
	ping   time.Duration            // it first answered a ping from the next host
	// cpu is the CPU time the agents, the ovs-vswitchds and the controller
	// used from the POST until every agent reported the revision, which
	// took span.
	cpu cpuUse
	// own is the CPU the container's own host's agent and ovs-vswitchd
	// used over the same time (in cpu too): what the rest of cpu leaves is
	// the other hosts'.
	own  cpuUse
	span time.Duration
}

// BenchmarkConvergence measures the time from POST /api/v1/containers
// (without wait) to the change being in effect on every host where its
// network is present: on the container's own host its flows on the switch
// (observed with an OpenFlow flow monitor), on each other host its agent's
// apply of the program of that revision (with IPAM blocks most changes bring
// the other hosts no flow, only the container's name for their resolver). Matrix: 2, 5, 10 hosts x 100, 1,000 containers
// already present (spread evenly, one network, ports without traffic). Each
// op is one container (on the hosts in turn). p50/p99 are over every
// container a sub-benchmark measured: the ops, and at least minSamples (see
// the samples metric; -benchtime=100x gives 100). ping-p50/p99-ms is from
// the POST to the new container's first answer to a ping from the first
// container of the next host (the port works end to end, not only its
// flows). CPU per change is given for all hosts and split into the
// container's own host and one other host on average. Each sub-benchmark
// also reports the agents' and the controller's resident memory.
//
// SWITCHYARD_BENCH_SHAPES replaces the matrix, e.g. "10x100,1000,10000" for
// 10 hosts at 100, 1,000 and 10,000 containers ("HOSTSxN,N;HOSTSxN").
// SWITCHYARD_BENCH_HOLD (a duration) holds each filled lab that long before
// measuring, to profile it at rest or drive it by hand.
// SWITCHYARD_BENCH_MGMT=1 gives the hosts a management network outside OVS
// (lab.Options.Management): the agents' traffic to the controller then
// does not cross their userspace datapath (benchmarks-convergence.md, ninth
// pass).
func BenchmarkConvergence(b *testing.B) {
	shapes, err := parseShapes(os.Getenv("SWITCHYARD_BENCH_SHAPES"))
	if err != nil {
		b.Fatal(err)
	}
	for _, sh := range shapes {
		b.Run(fmt.Sprintf("hosts=%d", sh.hosts), func(b *testing.B) {
			e := newConvEnv(b, sh.hosts)
			for _, n := range sh.containers {
				b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) { e.run(b, n) })
			}
		})
	}
}

// shape is a number of hosts and the container counts measured on them,
// growing.
type shape struct {
	hosts      int
	containers []int
}

// parseShapes reads SWITCHYARD_BENCH_SHAPES; empty gives the default matrix.
func parseShapes(v string) ([]shape, error) {
	if v == "" {
		return []shape{{2, []int{100, 1000}}, {5, []int{100, 1000}}, {10, []int{100, 1000}}}, nil
	}
	var out []shape
	for _, part := range strings.Split(v, ";") {
		h, ns, ok := strings.Cut(part, "x")
		hosts, err := strconv.Atoi(h)
		if !ok || err != nil || hosts < 2 {
			return nil, fmt.Errorf("SWITCHYARD_BENCH_SHAPES: %q is not HOSTSxN,N (at least 2 hosts)", part)
		}
		sh := shape{hosts: hosts}
		for _, n := range strings.Split(ns, ",") {
			c, err := strconv.Atoi(n)
			if err != nil || c < hosts {
				return nil, fmt.Errorf("SWITCHYARD_BENCH_SHAPES: %q: container count %q (at least one per host)", part, n)
			}
			sh.containers = append(sh.containers, c)
		}
		out = append(out, sh)
	}
	return out, nil
}

// fillWorkers is how many containers fill creates at once:
// SWITCHYARD_BENCH_FILL_WORKERS, 16 by default. More workers put more new
// containers in each agent's apply (one OVSDB transaction adds them all),
// which is how a large fill (10 hosts x 10,000) finishes in minutes: each
// port added alone costs ovs-vswitchd a bridge reconfiguration linear in
// the bridge's ports (docs/benchmarks-convergence.md).
func fillWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_BENCH_FILL_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 16
}

func newConvEnv(b *testing.B, hosts int) *convEnv {
	// The product's default resync (30 s): the lab's 2 s would run a full
	// drift check next to most measurements.
	c := cluster.New(b, cluster.Options{Hosts: hosts, Tunnel: openapi.TunnelGeneve,
		// Metrics (and /debug/pprof) on each host's loopback, for profiling
		// an agent during a run: ip netns exec <host ns> curl
		// 127.0.0.1:9464/debug/pprof/profile?seconds=20.
		AgentEnv:   []string{"SWITCHYARD_RESYNC_INTERVAL=30s", "SWITCHYARD_AGENT_METRICS=127.0.0.1:9464"},
		Management: os.Getenv("SWITCHYARD_BENCH_MGMT") == "1"})
	c.Network(b, "bench", "10.64.0.0/16")
	e := &convEnv{c: c, flows: map[string]*watch{}, ofports: map[string]*watch{}, pingers: map[string]*pinger{}}
	for _, h := range c.Lab.Hosts {
		e.hosts = append(e.hosts, h.Name)
	}
	// The first container of each host makes the network present there
	// and br-int carry its flows; only then is there a table to watch.
	e.fill(b, hosts)
	for _, h := range c.Lab.Hosts {
		e.flows[h.Name] = watchARP(b, h, tableARPResponder)
		e.ofports[h.Name] = watchOFPorts(b, h)
	}
	// fill put bulk-<i> on hosts[i]: each host's first container pings.
	for i, h := range e.hosts {
		p, err := newPinger(c.Sandbox(h, fmt.Sprintf("bulk-%d", i), "bench"), os.Getpid()+i)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.close)
		e.pingers[h] = p
	}
	return e
}

// fill creates containers bulk-<i> through the API, fillWorkers() at a
// time, each with ?wait=realized, until n containers exist, spread over
// the hosts.
func (e *convEnv) fill(b *testing.B, n int) {
	b.Helper()
	todo := n - e.bulk - e.seq
	if todo <= 0 {
		return
	}
	start := time.Now()
	var next atomic.Int64
	next.Store(int64(e.bulk))
	end := int64(e.bulk + todo)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < fillWorkers(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= end || failed.Load() != nil {
					return
				}
				body := map[string]any{"name": fmt.Sprintf("bulk-%d", i), "network": "bench",
					"host": e.hosts[int(i)%len(e.hosts)], "labels": map[string]string{"app": fmt.Sprintf("app%d", i%20)}}
				if code, err := e.c.Do("POST", "/api/v1/containers?wait=realized&timeout=120s", body, nil); code != 201 {
					failed.Store(fmt.Errorf("create bulk-%d: %d %v", i, code, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	e.bulk += todo
	e.fillDur = time.Since(start)
	b.Logf("%d hosts: created %d containers (%d in all) in %s", len(e.hosts), todo, e.bulk+e.seq, e.fillDur.Round(time.Millisecond))
}

// run is one sub-benchmark: fill up to n, then measured containers, one at
// a time: each op is timed from the POST to its flows on its host's switch
// and its first answer to a ping;
// between ops (timer stopped) every agent finishes and reports, so one op
// does not queue behind the last.
func (e *convEnv) run(b *testing.B, n int) {
	if e.bulk+e.seq < n {
		e.fill(b, n)
		e.idle = e.idleCPU()
		if d, err := time.ParseDuration(os.Getenv("SWITCHYARD_BENCH_HOLD")); err == nil {
			b.Logf("HOLD %s", d)
			time.Sleep(d)
		}
	}
	var ss []sample
	reconf0 := e.reconfigures(b)
	one := func(timed bool) {
		host := e.hosts[e.seq%len(e.hosts)]
		cpu0, own0, at0 := e.cpu(), e.hostCPU(host), time.Now()
		if timed {
			b.StartTimer()
		}
		s := e.measure(b)
		if timed {
			b.StopTimer()
		}
		e.settle(b, &s, cpu0)
		s.own = e.hostCPU(host).sub(own0)
		s.span = time.Since(at0)
		ss = append(ss, s)
	}
	for b.Loop() {
		b.StopTimer()
		one(true)
		b.StartTimer()
	}
	for len(ss) < minSamples {
		one(false)
	}
	e.report(b, ss)
	b.ReportMetric(float64(e.reconfigures(b)-reconf0)/float64(len(ss)), "reconfigures/op")
}

// reconfigures sums ovs-vswitchd's bridge reconfigurations over the hosts
// (coverage counter bridge_reconfigure): one follows every link
// notification in the host's namespace and every OVSDB change, and each
// walks every port of the host (its cost grows with them).
func (e *convEnv) reconfigures(b *testing.B) int {
	n := 0
	for _, h := range e.c.Lab.Hosts {
		v, err := strconv.Atoi(strings.TrimSpace(h.AppCtl(b, "coverage/read-counter", "bridge_reconfigure")))
		if err != nil {
			b.Fatalf("%s: bridge_reconfigure: %v", h.Name, err)
		}
		n += v
	}
	return n
}

// settle waits until every host reports having applied s's revision, and
// records the CPU used since cpu0.
func (e *convEnv) settle(b *testing.B, s *sample, cpu0 cpuUse) {
	b.Helper()
	e.c.Eventually(b, convergeTimeout, func() error {
		var l openapi.List[openapi.Host]
		if code, err := e.c.Do("GET", "/api/v1/hosts", nil, &l); code != 200 {
			return fmt.Errorf("list hosts: %d %v", code, err)
		}
		for _, h := range l.Items {
			if h.AppliedRevision < s.rev {
				return fmt.Errorf("%s applied %d, want %d", h.Name, h.AppliedRevision, s.rev)
			}
		}
		return nil
	})
	s.cpu = e.cpu().sub(cpu0)
}

// idleCPU measures the CPU the cluster uses per second at rest: the
// agents' heartbeats, the switches' own housekeeping (ovs-vswitchd polls
// every port of the userspace datapath), the controller.
func (e *convEnv) idleCPU() cpuUse {
	const d = 3 * time.Second
	time.Sleep(time.Second) // the last fill's reports and polls
	cpu0 := e.cpu()
	time.Sleep(d)
	u := e.cpu().sub(cpu0)
	perSecond := func(x time.Duration) time.Duration { return x * time.Second / d }
	return cpuUse{perSecond(u.agents), perSecond(u.vswitchd), perSecond(u.controller)}
}

// cpu reads the CPU time used so far by the agents, the ovs-vswitchds and
// the controller.
func (e *convEnv) cpu() cpuUse {
	var u cpuUse
	for _, h := range e.c.Lab.Hosts {
		u.agents += cpuTime(e.c.Agents[h.Name].Pid())
		u.vswitchd += cpuTime(h.VSwitchdPid())
	}
	u.controller = cpuTime(e.c.Controller.Pid())
	return u
}

// hostCPU reads the CPU time used so far by one host's agent and
// ovs-vswitchd.
func (e *convEnv) hostCPU(name string) cpuUse {
	for _, h := range e.c.Lab.Hosts {
		if h.Name == name {
			return cpuUse{agents: cpuTime(e.c.Agents[name].Pid()), vswitchd: cpuTime(h.VSwitchdPid())}
		}
	}
	return cpuUse{}
}

// measure creates one container and waits until its flows are on its
// host's switch and it answers pings from the next host.
func (e *convEnv) measure(b *testing.B) sample {
	host := e.hosts[e.seq%len(e.hosts)]
	name := fmt.Sprintf("m-%d", e.seq)
	e.seq++
	s := sample{host: host, seen: map[string]time.Duration{}}
	var ct openapi.Container
	s.t0 = time.Now()
	code, err := e.c.Do("POST", "/api/v1/containers", map[string]any{"name": name, "network": "bench", "host": host}, &ct)
	s.posted = time.Since(s.t0)
	if code != 201 {
		b.Fatalf("create %s: %d %v", name, code, err)
	}
	s.rev, s.port = ct.Revision, containerPortName(ct.ID)
	// The next host's first container pings the new one from now on.
	prober := e.hosts[(e.seq)%len(e.hosts)]
	pinged := make(chan error, 1)
	go func() {
		at, err := e.pingers[prober].firstReply(context.Background(), ct.IP, ct.MAC, 2*time.Millisecond, convergeTimeout)
		s.ping = at.Sub(s.t0)
		pinged <- err
	}()
	// Its own host: its flows on the switch. The other hosts get no flow
	// for it when its address is in a block of its host that already had
	// a container (IPAM blocks): their part is in report, from their
	// agents' logs.
	at, err := e.flows[host].first(ct.IP, convergeTimeout)
	if err != nil {
		e.c.Lab.DumpOnFailure(b)
		b.Fatalf("%s (%s, on %s): flow on its host: %v\nagent log: %s", name, ct.IP, host, err, e.c.Agents[host].LogPath())
	}
	s.seen[host] = at.Sub(s.t0)
	if at, err := e.ofports[host].first(s.port, time.Second); err == nil {
		s.ofport = at.Sub(s.t0)
	}
	if err := <-pinged; err != nil {
		e.c.Lab.DumpOnFailure(b)
		b.Fatalf("%s (%s, on %s): %v", name, ct.IP, host, err)
	}
	return s
}

// containerPortName is the OVS port of a container: "syc" + the first 12
// hex digits of its ID (the naming contract in controller/internal/compile
// doc.go, ContainerPortName), or of SHA-256(id) for IDs that are not hex.
func containerPortName(id string) string {
	h := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	if len(h) < 12 || strings.Trim(h[:12], "0123456789abcdef") != "" {
		sum := sha256.Sum256([]byte(id))
		h = hex.EncodeToString(sum[:])
	}
	return "syc" + h[:12]
}

// remoteSeen completes s.seen with the other hosts: when each applied the
// program of s's revision (or a later one), from its agent's "applied"
// line (written once the flows are in; millisecond resolution). With IPAM
// blocks most changes bring them no flow, only the new name for their
// resolver; the first container of a block brings them the block's flow.
func (e *convEnv) remoteSeen(s *sample, logs map[string]map[int64]applyLog) {
	for _, h := range e.hosts {
		if h == s.host {
			continue
		}
		best := int64(-1)
		for rev := range logs[h] {
			if rev >= s.rev && (best < 0 || rev < best) {
				best = rev
			}
		}
		if best >= 0 {
			s.seen[h] = logs[h][best].at.Sub(s.t0)
		}
	}
}

// report turns the samples into metrics: overall convergence (slowest host),
// the container's own host and the others, the POST, when its port got an
// ofport, and, from the agents' "applied" log lines, when the local agent
// started applying (everything before is controller: notify, compile,
// long-poll answer, transfer, agent patch) and how long applies took.
func (e *convEnv) report(b *testing.B, ss []sample) {
	var all, local, remote, posted, ofport, wait, apply, rapply, ping []float64
	var links, ovsdb, openflow []float64
	var cpu, own cpuUse
	var span time.Duration
	logs := map[string]map[int64]applyLog{}
	for _, h := range e.hosts {
		logs[h] = parseApplied(e.c.Agents[h].Log())
	}
	for i := range ss {
		s := &ss[i]
		e.remoteSeen(s, logs)
		var worst, worstRemote time.Duration
		for h, d := range s.seen {
			worst = max(worst, d)
			if h != s.host {
				worstRemote = max(worstRemote, d)
				if l, ok := logs[h][s.rev]; ok {
					rapply = append(rapply, msOf(l.took))
				}
			}
		}
		all = append(all, msOf(worst))
		local = append(local, msOf(s.seen[s.host]))
		if len(s.seen) > 1 {
			remote = append(remote, msOf(worstRemote))
		}
		posted = append(posted, msOf(s.posted))
		ping = append(ping, msOf(s.ping))
		cpu = cpu.add(s.cpu)
		own = own.add(s.own)
		span += s.span
		if s.ofport > 0 {
			ofport = append(ofport, msOf(s.ofport))
		}
		if l, ok := logs[s.host][s.rev]; ok {
			wait = append(wait, msOf(l.at.Add(-l.took).Sub(s.t0)))
			apply = append(apply, msOf(l.took))
			links, ovsdb, openflow = append(links, msOf(l.links)), append(ovsdb, msOf(l.ovsdb)), append(openflow, msOf(l.openflow))
		}
	}
	e.logSlowest(b, ss, logs, 3)
	b.ReportMetric(pct(all, 50), "p50-ms")
	b.ReportMetric(pct(all, 99), "p99-ms")
	b.ReportMetric(pct(local, 50), "local-p50-ms")
	b.ReportMetric(pct(remote, 50), "remote-p50-ms")
	b.ReportMetric(pct(remote, 99), "remote-p99-ms")
	b.ReportMetric(pct(posted, 50), "post-p50-ms")
	b.ReportMetric(pct(ping, 50), "ping-p50-ms")
	b.ReportMetric(pct(ping, 99), "ping-p99-ms")
	b.ReportMetric(pct(wait, 50), "to-agent-p50-ms")
	b.ReportMetric(pct(apply, 50), "local-apply-p50-ms")
	b.ReportMetric(pct(links, 50), "local-links-p50-ms")
	b.ReportMetric(pct(ovsdb, 50), "local-ovsdb-p50-ms")
	b.ReportMetric(pct(openflow, 50), "local-openflow-p50-ms")
	b.ReportMetric(pct(rapply, 50), "remote-apply-p50-ms")
	b.ReportMetric(pct(ofport, 50), "ofport-p50-ms")
	per := func(d time.Duration) float64 { return msOf(d) / float64(len(ss)) }
	b.ReportMetric(per(cpu.agents), "agents-cpu-ms/op")
	b.ReportMetric(per(cpu.vswitchd), "vswitchd-cpu-ms/op")
	b.ReportMetric(per(cpu.controller), "controller-cpu-ms/op")
	// Split by host: the container's own host, and one other host on
	// average (each of them only adds the container's flows).
	b.ReportMetric(per(own.agents), "own-agent-cpu-ms/op")
	b.ReportMetric(per(own.vswitchd), "own-vswitchd-cpu-ms/op")
	if others := len(e.hosts) - 1; others > 0 {
		b.ReportMetric(per(cpu.agents-own.agents)/float64(others), "other-agent-cpu-ms/host/op")
		b.ReportMetric(per(cpu.vswitchd-own.vswitchd)/float64(others), "other-vswitchd-cpu-ms/host/op")
	}
	// The same without what they would have used at rest in that time
	// (userspace ovs-vswitchd polls every port even when idle).
	atRest := func(perSecond time.Duration) time.Duration { return perSecond * span / time.Second }
	b.ReportMetric(per(cpu.agents-atRest(e.idle.agents)), "agents-busy-cpu-ms/op")
	b.ReportMetric(per(cpu.vswitchd-atRest(e.idle.vswitchd)), "vswitchd-busy-cpu-ms/op")
	b.ReportMetric(float64(len(ss)), "samples")
	pctCore := func(d time.Duration) float64 { return float64(d) / float64(time.Second) * 100 }
	b.ReportMetric(pctCore(e.idle.agents), "agents-idle-cpu-%")
	b.ReportMetric(pctCore(e.idle.vswitchd), "vswitchd-idle-cpu-%")
	b.ReportMetric(e.fillDur.Seconds(), "fill-s")
	var agentRSS float64
	for _, h := range e.hosts {
		if v, err := rssMB(e.c.Agents[h].Pid()); err == nil {
			agentRSS = max(agentRSS, v)
		}
	}
	b.ReportMetric(agentRSS, "agent-max-RSS-MB")
	if v, err := rssMB(e.c.Controller.Pid()); err == nil {
		b.ReportMetric(v, "controller-RSS-MB")
	}
}

// logSlowest logs where the n slowest samples spent their time: for the
// last host to have the flow, when its agent started applying (everything
// before is the controller and the delivery), how long the apply took and
// its phases, and when the flow was seen on the switch.
func (e *convEnv) logSlowest(b *testing.B, ss []sample, logs map[string]map[int64]applyLog, n int) {
	type slow struct {
		s     sample
		host  string
		worst time.Duration
	}
	var all []slow
	for _, s := range ss {
		w := slow{s: s}
		for h, d := range s.seen {
			if d > w.worst {
				w.host, w.worst = h, d
			}
		}
		all = append(all, w)
	}
	slices.SortFunc(all, func(x, y slow) int { return cmp.Compare(y.worst, x.worst) })
	for _, w := range all[:min(n, len(all))] {
		where := "remote"
		if w.host == w.s.host {
			where = "own"
		}
		l, ok := logs[w.host][w.s.rev]
		if !ok {
			b.Logf("slow: rev %d %s on %s (%s host): no applied line", w.s.rev, w.worst.Round(time.Millisecond), w.host, where)
			continue
		}
		b.Logf("slow: rev %d %s on %s (%s host): agent started at %s, apply %s (links %s ovsdb %s ofports %s openflow %s), flow seen %s after the applied line",
			w.s.rev, w.worst.Round(time.Millisecond), w.host, where, l.at.Add(-l.took).Sub(w.s.t0).Round(time.Millisecond),
			l.took.Round(time.Millisecond), l.links, l.ovsdb, l.ofports, l.openflow, (w.worst - l.at.Sub(w.s.t0)).Round(time.Millisecond))
		// What that agent logged in the meantime.
		for _, line := range strings.Split(e.c.Agents[w.host].Log(), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
			if err != nil || at.Before(w.s.t0.Add(-time.Second)) || at.After(w.s.t0.Add(w.worst+10*time.Millisecond)) {
				continue
			}
			b.Logf("    %s: %.300s", w.host, line)
		}
	}
}
