package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
)

// tableIngressPolicy is br-int's IngressPolicy table (controller/internal/
// compile/tables.go): the probe policy's verdict flows land there, on the
// probe server's host.
const tableIngressPolicy = 13

// probePriority is the probe policy's priority; filler policies use 2000
// and up.
const probePriority = 100

// BenchmarkPolicyEnforce measures a policy change from the REST call to the
// data plane: a lab of hosts x containers (default 10 x 1,000;
// SWITCHYARD_BENCH_POLICY_LAB=HOSTSxN changes it), with 100 and then 1,000
// filler policies present (created in bulk, 16 at a time, each selecting
// the containers of one app label with one ingress rule), and a probe pair
// (client on the first host, server on the second, no filler policy
// selects them). Each op flips the pair's verdict with one REST call: the
// first creates a deny policy on the server's ingress from the client
// (ICMP), the next ones replace it with allow, deny, allow... A ping every
// 5 ms from the client measures when the new verdict shows: the send time
// of the first echo request that passes (to allow), or of the first of 10
// lost in a row (to deny), minus the time of the call. An OpenFlow flow
// monitor on the server's host times the new verdict flow's arrival
// (the only host where the probe policy has flows).
func BenchmarkPolicyEnforce(b *testing.B) {
	hosts, ctrs := 10, 1000
	if v := os.Getenv("SWITCHYARD_BENCH_POLICY_LAB"); v != "" {
		// The convergence benchmark's shape syntax, one shape of one size.
		sh, err := parseShapes(v)
		if err != nil || len(sh) != 1 || len(sh[0].containers) != 1 {
			b.Fatalf("SWITCHYARD_BENCH_POLICY_LAB=%q: want HOSTSxN, at least 2 hosts and a container per host (%v)", v, err)
		}
		hosts, ctrs = sh[0].hosts, sh[0].containers[0]
	}
	e := newConvEnv(b, hosts)
	e.fill(b, ctrs)
	pe := newPolicyEnv(b, e)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) { pe.run(b, n) })
	}
}

// policyEnv is the enforcement benchmark's cluster with its probe pair.
type policyEnv struct {
	e              *convEnv
	client, server endpoint
	filler         int
	fillDur        time.Duration
	probe          string // the probe policy's ID once created
	deny           bool   // its current verdict
	flows          *verdictWatch
}

func newPolicyEnv(b *testing.B, e *convEnv) *policyEnv {
	pe := &policyEnv{e: e}
	ep := func(name, host string) endpoint {
		ct := e.c.Container(b, name, "bench", host, map[string]any{"labels": map[string]string{"role": name}})
		return endpoint{e.c.Sandbox(host, name, "bench"), ct.IP}
	}
	pe.client, pe.server = ep("probe-client", e.hosts[0]), ep("probe-server", e.hosts[1])
	waitReachable(b, path{pe.client, pe.server})
	pe.flows = watchVerdicts(b, e.c.Lab.Host(e.hosts[1]).MgmtSocket("br-int"), e.c.Lab.Host(e.hosts[1]).Env())
	return pe
}

// fillPolicies creates filler policies until n exist and waits until
// every host applied them.
func (pe *policyEnv) fillPolicies(b *testing.B, n int) {
	if n <= pe.filler {
		return
	}
	start := time.Now()
	createFillerPolicies(b, pe.e.c, "bench", pe.filler, n)
	pe.fillDur = time.Since(start)
	b.Logf("created %d policies (%d in all) in %s", n-pe.filler, n, pe.fillDur.Round(time.Millisecond))
	pe.filler = n
}

// createFillerPolicies creates policies fill-<from>..fill-<to-1> in
// network, 16 at a time, each answered once realized on every host it
// changes. Policy
// i selects app=app<i%20> and admits app=app<(i+1)%20> on TCP port
// 1000+i%1000, at priority 2000+i%5000; one in five is a deny.
func createFillerPolicies(b *testing.B, c *cluster.Cluster, network string, from, to int) {
	b.Helper()
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || failed.Load() != nil {
					return
				}
				action := openapi.ActionAllow
				if i%5 == 4 {
					action = openapi.ActionDeny
				}
				body := map[string]any{"name": fmt.Sprintf("fill-%d", i), "network": network,
					"selector": fmt.Sprintf("app=app%d", i%20), "priority": 2000 + i%5000, "action": action,
					"ingress": []any{map[string]any{
						"peers": []any{map[string]any{"selector": fmt.Sprintf("app=app%d", (i+1)%20)}},
						"ports": []any{map[string]any{"protocol": "TCP", "port": 1000 + i%1000}},
					}}}
				if code, err := c.Do("POST", "/api/v1/policies?wait=realized&timeout=120s", body, nil); code != 201 {
					failed.Store(fmt.Errorf("create policy fill-%d: %d %v", i, code, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

// flip is one measured verdict change.
type flip struct {
	toDeny      bool
	posted      time.Duration // the call's answer: realized on every host
	dataplane   time.Duration // the first packet with the new verdict
	flow        time.Duration // the new verdict flow on the server's switch
	cpu         cpuUse
	span        time.Duration
	flowMissing bool
}

func (pe *policyEnv) run(b *testing.B, n int) {
	pe.fillPolicies(b, n)
	idle := pe.e.idleCPU()
	var fs []flip
	one := func(timed bool) {
		if timed {
			b.StartTimer()
		}
		f := pe.flipOnce(b)
		if timed {
			b.StopTimer()
		}
		fs = append(fs, f)
	}
	for b.Loop() {
		b.StopTimer()
		one(true)
		b.StartTimer()
	}
	for len(fs) < minSamples {
		one(false)
	}
	var all, toDeny, toAllow, flows, posted []float64
	var cpu cpuUse
	var span time.Duration
	for _, f := range fs {
		all = append(all, msOf(f.dataplane))
		if f.toDeny {
			toDeny = append(toDeny, msOf(f.dataplane))
		} else {
			toAllow = append(toAllow, msOf(f.dataplane))
		}
		if !f.flowMissing {
			flows = append(flows, msOf(f.flow))
		}
		posted = append(posted, msOf(f.posted))
		cpu, span = cpu.add(f.cpu), span+f.span
	}
	b.ReportMetric(pct(all, 50), "p50-ms")
	b.ReportMetric(pct(all, 99), "p99-ms")
	b.ReportMetric(pct(toDeny, 50), "to-deny-p50-ms")
	b.ReportMetric(pct(toAllow, 50), "to-allow-p50-ms")
	b.ReportMetric(pct(flows, 50), "flow-p50-ms")
	b.ReportMetric(pct(flows, 99), "flow-p99-ms")
	b.ReportMetric(pct(posted, 50), "realized-p50-ms")
	b.ReportMetric(pct(posted, 99), "realized-p99-ms")
	per := func(d time.Duration) float64 { return msOf(d) / float64(len(fs)) }
	atRest := func(perSecond time.Duration) time.Duration { return perSecond * span / time.Second }
	b.ReportMetric(per(cpu.controller), "controller-cpu-ms/op")
	b.ReportMetric(per(cpu.agents-atRest(idle.agents)), "agents-busy-cpu-ms/op")
	b.ReportMetric(per(cpu.vswitchd-atRest(idle.vswitchd)), "vswitchd-busy-cpu-ms/op")
	b.ReportMetric(float64(len(fs)), "samples")
	b.ReportMetric(pe.fillDur.Seconds(), "policy-fill-s")
	b.ReportMetric(float64(len(pe.e.hosts)), "hosts")
	b.ReportMetric(float64(pe.e.bulk+2), "containers")
	b.ReportMetric(pe.e.fillDur.Seconds(), "fill-s")
	b.ReportMetric(loadAverage(), "load1")
}

// flipOnce flips the probe pair's verdict with one REST call and waits
// until the data plane shows it and every host applied the change.
func (pe *policyEnv) flipOnce(b *testing.B) flip {
	f := flip{toDeny: !pe.deny}
	pr := startProber(b, pe.client, pe.server.ip)
	defer pr.stop()
	if err := pr.waitState(pe.deny, convergeTimeout); err != nil {
		b.Fatalf("before the change (deny=%v): %v", pe.deny, err)
	}
	action := openapi.ActionAllow
	if f.toDeny {
		action = openapi.ActionDeny
	}
	body := map[string]any{"name": "probe", "network": "bench", "selector": "role=probe-server",
		"priority": probePriority, "action": action,
		"ingress": []any{map[string]any{
			"peers": []any{map[string]any{"selector": "role=probe-client"}},
			"ports": []any{map[string]any{"protocol": "ICMP"}},
		}}}
	flowKey := pe.flows.next()
	cpu0 := pe.e.cpu()
	t0 := time.Now()
	var p openapi.Policy
	// The call answers once every host it changes applied it.
	method, url, want := "POST", "/api/v1/policies", 201
	if pe.probe != "" {
		method, url, want = "PUT", "/api/v1/policies/"+pe.probe, 200
	}
	url += "?wait=realized&timeout=60s"
	if code, err := pe.e.c.Do(method, url, body, &p); code != want {
		b.Fatalf("%s %s: %d %v", method, url, code, err)
	}
	f.posted = time.Since(t0)
	pe.probe, pe.deny = p.ID, f.toDeny
	at, err := pr.changed(t0, f.toDeny, convergeTimeout)
	if err != nil {
		b.Fatalf("after the change to deny=%v: %v", f.toDeny, err)
	}
	f.dataplane = max(0, at.Sub(t0))
	if at, err := pe.flows.w.first(flowKey, 5*time.Second); err == nil {
		f.flow = at.Sub(t0)
	} else {
		f.flowMissing = true
		b.Logf("verdict flow %s not seen: %v", flowKey, err)
	}
	f.cpu, f.span = pe.e.cpu().sub(cpu0), time.Since(t0)
	return f
}

// verdictWatch follows the +new verdict flows (conj_id=...,ct_state=+new)
// added to a switch's IngressPolicy table: the k-th addition is key "v#k".
// (The monitor prints no priority; a verdict change of the probe policy
// replaces its verdict flows by ones at the other priority band, with the
// same cookie and match: one addition per flip. Nothing else changes the
// table while flips are measured.)
type verdictWatch struct {
	w  *watch
	mu sync.Mutex
	n  int
}

func watchVerdicts(b *testing.B, socket string, env []string) *verdictWatch {
	b.Helper()
	vw := &verdictWatch{}
	parse := func(line string) []string {
		if !strings.Contains(line, "event=ADDED") || !strings.Contains(line, "conj_id=") || !strings.Contains(line, "ct_state=+new") {
			return nil
		}
		vw.mu.Lock()
		defer vw.mu.Unlock()
		vw.n++
		return []string{fmt.Sprintf("v#%d", vw.n-1)}
	}
	vw.w = startWatch(b, "verdicts", env, parse, "ovs-ofctl", "-O", "OpenFlow15", "monitor", socket,
		fmt.Sprintf("watch:table=%d,!actions", tableIngressPolicy))
	vw.w.waitLines(b, 1, 10*time.Second) // the table's flows (INITIAL): subscribed
	return vw
}

// next is the key the next addition of a verdict flow will have.
func (vw *verdictWatch) next() string {
	vw.mu.Lock()
	defer vw.mu.Unlock()
	return fmt.Sprintf("v#%d", vw.n)
}

// loadAverage is the 1-minute load average of the machine.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
