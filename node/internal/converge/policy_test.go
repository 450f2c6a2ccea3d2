package converge

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// TestPolicyDatapath applies programs compiled by controller/internal/compile
// (testdata/policy-*.json, kept current by its TestLabPrograms) to two real
// OVS hosts joined by Geneve, then VXLAN: web and client on h1, remote on
// h2, in three policy phases, and probes real ICMP and TCP between them. It checks that
// policies drop and pass what they should, on one host and across the
// tunnel, and that replies of allowed connections pass into an
// ingress-isolated container (conntrack on both hosts), and that the
// logged rules' new connections, an allow and a deny, reach the agent's
// log listener through the log meter.
func TestPolicyDatapath(t *testing.T) {
	for _, tunnel := range []string{"geneve", "vxlan"} {
		t.Run(tunnel, func(t *testing.T) { testPolicyDatapath(t, tunnel) })
	}
}

func testPolicyDatapath(t *testing.T, tunnel string) {
	l := newLab(t, 2, tunnel)
	hosts := map[string]*lab.Host{}
	appliers := map[string]*Host{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, h := range l.Hosts {
		hosts[h.Name] = h
		appliers[h.Name] = newHost(t, l, h)
		if err := appliers[h.Name].EnsureUnderlay(ctx, h.UnderlayIface, h.UnderlayAddr); err != nil {
			t.Fatalf("%s EnsureUnderlay: %v", h.Name, err)
		}
	}
	netns := map[string]string{} // container -> sandbox
	ips := map[string]string{}
	rev := int64(0)
	applyPhase := func(phase string) {
		rev++
		for name, h := range hosts {
			p := loadProgram(t, phase, name, l)
			for i := range p.Tunnels {
				p.Tunnels[i].Type = tunnel
			}
			p.Revision = rev
			r := apply(t, appliers[name], p)
			if r.Degraded() {
				t.Fatalf("%s %s: degraded: %+v", phase, name, r)
			}
			// A policy change (conjunctions, ct, controller) goes as
			// native flow_mods, without an ovs-ofctl process (h1 holds
			// every policy flow; h2's program may not change).
			changed := r.OpenFlow != "unchanged" || name == "h1"
			if phase != "open" && changed && (r.OpenFlow != "delta" || r.OFCtlRuns != 0) {
				t.Errorf("%s %s: openflow %s, %d ovs-ofctl runs; want a native delta", phase, name, r.OpenFlow, r.OFCtlRuns)
			}
			if o := observe(t, appliers[name]); o.Drifted() {
				t.Fatalf("%s %s: drift after apply: %v", phase, name, o.Drift)
			}
			for _, cp := range p.Containers {
				netns[cp.Container], ips[cp.Container] = sandboxPrefix(l, h)+cp.Sandbox, cp.IP
			}
		}
	}
	applyPhase("open")
	// The agent's log listener on h1 (where every logged rule applies).
	obs := appliers["h1"].sw.PolicyObserver()
	defer obs.Close()
	var sink logSink
	subscribed := make(chan struct{}, 10)
	lctx, stopListen := context.WithCancel(ctx)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		obs.ListenLog(lctx, sink.add, func() { subscribed <- struct{}{} })
	}()
	defer func() { stopListen(); <-listening }()
	<-subscribed
	for _, c := range []string{"web", "remote"} { // TCP listeners
		p := l.Start(t, lab.ProcSpec{Name: "iperf3-" + c, Netns: netns[c], Path: "iperf3", Args: []string{"-s"}})
		if err := lab.WaitListening(ctx, p, lab.IPerf3Port); err != nil {
			t.Fatal(err)
		}
	}
	type probe struct {
		from, to, proto string
		pass            bool
	}
	check := func(phase string, probes []probe) {
		for _, pr := range probes {
			var err error
			if pr.proto == "icmp" {
				_, err = lab.Ping(ctx, netns[pr.from], ips[pr.to], 1, 0)
			} else {
				_, err = lab.RunIn(ctx, netns[pr.from], "timeout", "2", "bash", "-c",
					fmt.Sprintf("echo > /dev/tcp/%s/%d", ips[pr.to], lab.IPerf3Port))
			}
			if got := err == nil; got != pr.pass {
				t.Errorf("%s: %s %s -> %s: passed=%v, want %v (%v)", phase, pr.proto, pr.from, pr.to, got, pr.pass, err)
			}
		}
	}
	check("open", []probe{
		{"client", "web", "tcp", true}, {"remote", "web", "tcp", true}, {"client", "web", "icmp", true},
		{"web", "remote", "icmp", true}, {"web", "remote", "tcp", true},
	})
	// web admits only TCP 5201 from client; its own connections still get
	// their replies (ICMP and TCP from remote, through Geneve).
	applyPhase("isolate")
	check("isolate", []probe{
		{"client", "web", "tcp", true}, {"remote", "web", "tcp", false}, {"client", "web", "icmp", false},
		{"web", "remote", "icmp", true}, {"web", "remote", "tcp", true},
	})
	// An established connection (client -> web, allowed) is judged again
	// on every packet: once the deny below is in, its next packets hit the
	// deny rule's verdict flow.
	h1 := hosts["h1"]
	stream := l.Start(t, lab.ProcSpec{Name: "iperf3-client", Netns: netns["client"], Path: "iperf3",
		Args: []string{"-c", ips["web"], "-t", "60"}})
	allowed := verdictCookie(t, loadProgram(t, "isolate", "h1", l), true)
	denied := verdictCookie(t, loadProgram(t, "deny", "h1", l), false)
	// The allowed probe's connection was logged by the agent's listener.
	waitLog(t, &sink, openapi.PolicyLogRecord{Cookie: fmt.Sprintf("%#x", allowed), Verdict: "allow", Direction: "ingress",
		Protocol: "TCP", SrcIP: ips["client"], DstIP: ips["web"], DstPort: lab.IPerf3Port})
	waitCount(ctx, t, h1, allowed, 100, "the client's stream passing the allow rule")
	// The rule's +new verdict flow counts connections: the probe's and the
	// stream's (iperf3 opens a control and a data connection).
	newFlows := 0
	for _, line := range strings.Split(h1.OFCtl(t, "dump-flows", "br-int",
		fmt.Sprintf("cookie=%#x/%#x", allowed, uint64(ruleMask))), "\n") {
		if strings.Contains(line, "ct_state=+new") {
			newFlows++
			if n := nPackets(line); n < 3 {
				t.Errorf("allow rule counted %d new connections, want >= 3: %s", n, line)
			}
		}
	}
	if newFlows != 1 {
		t.Errorf("allow rule has %d +new verdict flows, want 1", newFlows)
	}
	// A priority-10 deny on client's egress beats the allow at web; a
	// priority-5 allow admits remote.
	applyPhase("deny")
	waitCount(ctx, t, h1, denied, 1, "the established stream's packets dropped by the deny rule")
	stream.Stop()
	check("deny", []probe{
		{"client", "web", "tcp", false}, {"remote", "web", "tcp", true}, {"client", "web", "icmp", false},
		{"web", "remote", "icmp", true}, {"remote", "client", "icmp", true},
	})
	// The denied probe's attempt was logged, at client's egress.
	waitLog(t, &sink, openapi.PolicyLogRecord{Cookie: fmt.Sprintf("%#x", denied), Verdict: "deny", Direction: "egress",
		Protocol: "TCP", SrcIP: ips["client"], DstIP: ips["web"], DstPort: lab.IPerf3Port})
	// Only logged rules log: remote's allowed connection to web is not.
	for _, r := range sink.all() {
		if r.SrcIP == ips["remote"] {
			t.Errorf("a connection of an unlogged rule was logged: %+v", r)
		}
	}
}

// waitLog waits until the sink holds a record like want (time and source
// port aside).
func waitLog(t *testing.T, sink *logSink, want openapi.PolicyLogRecord) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("a log record %+v (have %+v)", want, sink.all()), func() bool {
		for _, r := range sink.all() {
			r.Time, r.SrcPort = want.Time, want.SrcPort
			if r == want {
				return true
			}
		}
		return false
	})
}

// ruleMask selects a rule's two verdict flows by cookie: its RuleCookie
// and ConnCookie differ only in ovs.CookieConn.
const ruleMask = ovs.CookieOwnerMask &^ ovs.CookieConn

// verdictCookie is the RuleCookie of the one rule of p whose verdict flows
// (conj_id=, one for new connections with ConnCookie, logged or not, one
// for the rest) pass (pass) or drop.
func verdictCookie(t *testing.T, p *openapi.Program, pass bool) uint64 {
	t.Helper()
	var cookies []uint64
	for _, f := range p.Flows {
		if strings.HasPrefix(f.Match, "conj_id=") && strings.Contains(f.Actions, "goto_table:") == pass &&
			!slices.Contains(cookies, f.Cookie&^ovs.CookieConn) {
			cookies = append(cookies, f.Cookie&^ovs.CookieConn)
		}
	}
	if len(cookies) != 1 {
		t.Fatalf("%s: %d verdict rules (pass %v), want 1", p.Host, len(cookies), pass)
	}
	return cookies[0]
}

// waitCount waits (up to 20 s) until the flows of rule cookie (both its
// verdict flows) on h have counted at least n packets.
func waitCount(ctx context.Context, t *testing.T, h *lab.Host, cookie uint64, n int, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out := h.OFCtl(t, "dump-flows", "br-int", fmt.Sprintf("cookie=%#x/%#x", cookie, uint64(ruleMask)))
		if nPackets(out) >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: flows of cookie %#x counted fewer than %d packets:\n%s", what, cookie, n, out)
		case <-tick.C:
		}
	}
}

// loadProgram reads a compiled program and points its tunnels at the lab's
// underlay addresses.
func loadProgram(t *testing.T, phase, host string, l *lab.Lab) *openapi.Program {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "policy-"+phase+"-"+host+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var p openapi.Program
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	for i := range p.Tunnels {
		p.Tunnels[i].RemoteIP = l.Host(p.Tunnels[i].PeerHost).UnderlayAddr.Addr().String()
	}
	return &p
}

// nPackets sums the n_packets of a dump-flows output.
func nPackets(out string) int {
	n := 0
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "n_packets="); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(v, ","))
			n += k
		}
	}
	return n
}
