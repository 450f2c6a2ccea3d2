package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// policyLab is the cluster the policy scenarios share: one network, the
// nine pods of the truth table as containers spread over three hosts (pod
// i of namespace j on host (i+j)%3+1, so every host holds one pod of each
// namespace and of each name, and the table has same-host and cross-host
// pairs), each running a probe server (lab.StartProbe).
type policyLab struct {
	*cluster.Cluster
	// kept is set when a scenario failed with SWITCHYARD_KEEP_LAB=1: its
	// policies stay for inspection and no further scenario runs.
	kept   bool
	ct     [numPods]openapi.Container
	probes [numPods]*lab.Probe
}

const (
	policyNet  = "np"
	policyCIDR = "10.30.0.0/24"
	// writeWait makes every write wait until every host applied it.
	writeWait = "?wait=realized&timeout=30s"
)

// probeTimeouts are the per-probe timeouts of the rounds expect runs: a
// blocked probe can only be seen by its timeout, so the first round is
// short and later ones (run only when the table is not yet as expected,
// for a slow machine) are longer.
var probeTimeouts = []time.Duration{time.Second, 2 * time.Second, 2 * time.Second}

// containerName is the container of pod i: "x-a".
func containerName(i int) string { return strings.ReplaceAll(podName(i), "/", "-") }

// podLabels are pod i's labels.
func podLabels(i int) map[string]string {
	return map[string]string{"ns": podNS[i/3], "pod": podNames[i%3]}
}

func newPolicyLab(t *testing.T, tunnel string) *policyLab {
	t.Helper()
	e := &policyLab{Cluster: cluster.New(t, cluster.Options{Hosts: 3, Tunnel: tunnel})}
	e.Network(t, policyNet, policyCIDR)
	for i := 0; i < numPods; i++ {
		host := "h" + strconv.Itoa((i%3+i/3)%3+1)
		e.ct[i] = e.Container(t, containerName(i), policyNet, host, map[string]any{"labels": podLabels(i)})
		e.probes[i] = e.Lab.StartProbe(t, e.Bin.Probe, podName(i), e.Sandbox(host, containerName(i), policyNet))
	}
	return e
}

// ip is the address of the pod a pattern names (exactly one).
func (e *policyLab) ip(pod string) string {
	p := pods(pod)
	if len(p) != 1 {
		panic(pod + " is not one pod")
	}
	return e.ct[p[0]].IP
}

// probe runs one round: every pod probes every pod on every kind of the
// table, all at once, and returns the observed table. A reply from the
// wrong pod is reported as an error (and counts as not reached).
func (e *policyLab) probe(t *testing.T, kinds []kind, timeout time.Duration) *truth {
	t.Helper()
	got := everything(kinds...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for f := 0; f < numPods; f++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reqs []lab.ProbeRequest
			for _, k := range kinds {
				for to := 0; to < numPods; to++ {
					addr := e.ct[to].IP
					if k.port != 0 {
						addr += ":" + strconv.Itoa(k.port)
					}
					reqs = append(reqs, lab.ProbeRequest{Proto: k.proto, Addr: addr, TimeoutMs: int(timeout.Milliseconds())})
				}
			}
			res, err := e.probes[f].Run(ctx, reqs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
			}
			for i, k := range kinds {
				for to := 0; to < numPods; to++ {
					ok := false
					if res != nil {
						r := res[i*numPods+to]
						ok = r.OK
						if ok && k.port != 0 && r.Reply != podName(to) {
							errs = append(errs, fmt.Sprintf("%s %s -> %s answered by %q", k, podName(f), podName(to), r.Reply))
							ok = false
						}
					}
					got.ok[k][f][to] = ok
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return got
}

// expect probes the whole table until it equals want (loopback added),
// up to len(probeTimeouts) rounds, and fails the test with the diff of
// the last round otherwise.
func (e *policyLab) expect(t *testing.T, want *truth) {
	t.Helper()
	want.loopback()
	var got *truth
	start := time.Now()
	for round, timeout := range probeTimeouts {
		got = e.probe(t, want.kinds, timeout)
		if diffCells(want, got) == 0 {
			t.Logf("table as expected after %d round(s), %s", round+1, time.Since(start).Round(time.Millisecond))
			e.traceTable(t, want)
			return
		}
		t.Logf("round %d (timeout %s): %d cells differ: %s", round+1, timeout, diffCells(want, got), cellList(want, got, 8))
		if leaked := cells(want, got, func(w bool) bool { return !w }); round == 0 && len(leaked) > 0 {
			// The write had answered "realized" before these probes, and
			// realized means in force (the agents purge ovs-vswitchd's
			// datapath cache after each change): a probe the new table
			// blocks cannot pass. (A probe it allows may still time out on
			// a loaded machine, hence the further rounds.)
			t.Errorf("ENFORCEMENT LAG: %d probes the table blocks passed after the write was realized: %s",
				len(leaked), strings.Join(leaked, "; "))
		}
	}
	t.Errorf("after %d rounds, %d cells differ:%s", len(probeTimeouts), diffCells(want, got), diff(want, got))
	e.explain(t, want, got)
}

// explain logs what the hosts of the first wrong cell's two ends hold while
// the scenario's policies are still there (the lab's dump comes after they
// are reset): the conntrack entries and datapath flows between the two
// addresses, and br-int's OpenFlow flows with their counters.
func (e *policyLab) explain(t *testing.T, want, got *truth) {
	t.Helper()
	for _, k := range want.kinds {
		for f := 0; f < numPods; f++ {
			for to := 0; to < numPods; to++ {
				if want.ok[k][f][to] != got.ok[k][f][to] {
					e.explainPair(t, k, f, to)
					return
				}
			}
		}
	}
}

func (e *policyLab) explainPair(t *testing.T, k kind, f, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := e.ct[f], e.ct[to]
	var out strings.Builder
	fmt.Fprintf(&out, "state for %s %s (%s on %s) -> %s (%s on %s):\n", k, podName(f), a.IP, a.Host, podName(to), b.IP, b.Host)
	hosts := []string{a.Host}
	if b.Host != a.Host {
		hosts = append(hosts, b.Host)
	}
	// Conntrack entries of connections from a to b ("orig=(src=A,dst=B,"),
	// and datapath flows from a or to b (megaflows often match one only).
	conns := regexp.MustCompile(`orig=\(src=` + regexp.QuoteMeta(a.IP) + `,dst=` + regexp.QuoteMeta(b.IP) + `,`)
	toB := regexp.MustCompile(`(src=` + regexp.QuoteMeta(a.IP) + `|dst=` + regexp.QuoteMeta(b.IP) + `)[,/)]`)
	matching := func(re *regexp.Regexp) func(string) string {
		return func(text string) string {
			var lines []string
			for _, l := range strings.Split(text, "\n") {
				if re.MatchString(l) {
					lines = append(lines, l)
				}
			}
			return strings.Join(lines, "\n")
		}
	}
	run := func(h *lab.Host, what string, filter func(string) string, args ...string) {
		text, err := h.Run(ctx, args[0], args[1:]...)
		if err != nil {
			text = err.Error()
		} else if filter != nil {
			text = filter(text)
		}
		fmt.Fprintf(&out, "----- %s %s:\n%s\n", h.Name, what, strings.TrimSpace(text))
	}
	// What OpenFlow says now about a new packet from a's port (a trace
	// that allows while probes are dropped points at stale datapath state).
	src := e.Lab.Host(a.Host)
	if ports := e.ContainerPorts(t, a.Host, a.ID); len(ports) == 1 {
		flow := fmt.Sprintf("in_port=%d,%s,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64", src.OFPort(t, ports[0]), k.proto, a.MAC, b.MAC, a.IP, b.IP)
		if k.port != 0 {
			flow += fmt.Sprintf(",%s_src=40000,%s_dst=%d", k.proto, k.proto, k.port) // tp_src is refused here
		} else {
			flow += ",icmp_type=8,icmp_code=0"
		}
		run(src, "trace "+flow, nil, "ovs-appctl", "-t", src.CtlSocket(), "ofproto/trace", "br-int", flow)
	}
	for _, name := range hosts {
		h := e.Lab.Host(name)
		run(h, "conntrack", matching(conns), "ovs-appctl", "-t", h.CtlSocket(), "dpctl/dump-conntrack")
		run(h, "datapath flows", matching(toB), "ovs-appctl", "-t", h.CtlSocket(), "dpctl/dump-flows")
		run(h, "br-int", nil, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int")
	}
	t.Log(out.String())
}

// write does an API write that waits until realized and fails the test
// unless it gets want.
func (e *policyLab) write(t *testing.T, want int, method, path string, body any) {
	t.Helper()
	sep := writeWait
	if strings.Contains(path, "?") {
		sep = "&" + strings.TrimPrefix(writeWait, "?")
	}
	e.MustDo(t, want, method, path+sep, body, nil)
}

// apply creates policies, each realized on every host before it returns.
func (e *policyLab) apply(t *testing.T, ps ...pol) {
	t.Helper()
	for _, p := range ps {
		e.write(t, 201, "POST", "/api/v1/policies", p)
	}
}

// replace replaces the policy of p's name with p.
func (e *policyLab) replace(t *testing.T, p pol) {
	t.Helper()
	e.write(t, 200, "PUT", "/api/v1/policies/"+url.PathEscape(p["name"].(string))+"?network="+policyNet, p)
}

// remove deletes a policy.
func (e *policyLab) remove(t *testing.T, name string) {
	t.Helper()
	e.write(t, 204, "DELETE", "/api/v1/policies/"+url.PathEscape(name)+"?network="+policyNet, nil)
}

// relabel replaces the labels of pod's container.
func (e *policyLab) relabel(t *testing.T, pod string, labels map[string]string) {
	t.Helper()
	e.write(t, 200, "PATCH", "/api/v1/containers/"+containerName(pods(pod)[0]), map[string]any{"labels": labels})
}

// reset deletes every policy of the network and gives every pod its
// labels back, so each scenario starts from the baseline. After a failure
// with SWITCHYARD_KEEP_LAB=1 it leaves everything as it is (see kept).
func (e *policyLab) reset(t *testing.T) {
	t.Helper()
	if t.Failed() && os.Getenv(lab.EnvKeep) == "1" {
		e.kept = true
		t.Logf("%s=1: keeping this scenario's policies in lab %s; no further scenario runs", lab.EnvKeep, e.Lab.ID)
		return
	}
	var l openapi.List[openapi.Policy]
	e.MustDo(t, 200, "GET", "/api/v1/policies?network="+policyNet, nil, &l)
	for _, p := range l.Items {
		e.remove(t, p.Name)
	}
	for i := 0; i < numPods; i++ {
		var c openapi.Container
		e.MustDo(t, 200, "GET", "/api/v1/containers/"+containerName(i), nil, &c)
		if fmt.Sprint(c.Labels) != fmt.Sprint(podLabels(i)) {
			e.relabel(t, podName(i), podLabels(i))
		}
	}
}

// Policy bodies are maps, not openapi.Policy, so a scenario says exactly
// which fields are present: `ingress` absent and `ingress: []` differ.
type (
	pol  map[string]any
	rule map[string]any
	peer map[string]any
	port map[string]any
)

// policy is an allow policy of the scenarios' network selecting selector,
// with neither direction present.
func policy(name, selector string) pol {
	return pol{"name": name, "network": policyNet, "selector": selector}
}

// ingress makes the ingress direction present with these rules (none:
// `ingress: []`, isolate and allow nothing).
func (p pol) ingress(rules ...rule) pol { p["ingress"] = append([]rule{}, rules...); return p }

// egress is ingress for the egress direction.
func (p pol) egress(rules ...rule) pol { p["egress"] = append([]rule{}, rules...); return p }

// deny makes p a deny policy.
func (p pol) deny() pol { p["action"] = openapi.ActionDeny; return p }

// prio sets p's priority (lower is evaluated first).
func (p pol) prio(n int) pol { p["priority"] = n; return p }

// peers is a rule matching these peers (none: any peer) on any port.
func peers(ps ...peer) rule { return rule{"peers": append([]peer{}, ps...)} }

// on restricts r to these ports.
func (r rule) on(ps ...port) rule { r["ports"] = ps; return r }

// sel is a peer: the containers a label selector picks.
func sel(s string) peer { return peer{"selector": s} }

// cidr is a peer: the addresses of a block, but those of except.
func cidr(block string, except ...string) peer {
	p := peer{"cidr": block}
	if len(except) > 0 {
		p["except"] = except
	}
	return p
}

// proto is a port of a protocol: every port, one, or a range [from, to].
func proto(name string, ports ...int) port {
	p := port{"protocol": name}
	if len(ports) > 0 {
		p["port"] = ports[0]
	}
	if len(ports) > 1 {
		p["endPort"] = ports[1]
	}
	return p
}
