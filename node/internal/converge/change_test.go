package converge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// placement says where each container is: "" (absent), "h1" (local) or
// "h2"/"h3" (remote).
type placement map[int]string

// placed builds h1's program for p: a tunnel to each peer that has a
// container, the containers' flows.
func placed(rev int64, p placement) *openapi.Program {
	var cs []ctr
	peers := map[string]string{}
	for n := 1; n <= 12; n++ {
		switch h := p[n]; h {
		case "":
		default:
			cs = append(cs, ctr{N: n, Host: h})
			if h != "h1" {
				peers[h] = "192.0.2." + h[1:]
			}
		}
	}
	return seal(program("h1", rev, cs, peers, "geneve"))
}

// TestDeltaTransitions applies random sequences of changes (containers
// added, removed and moved between the local host and two remote ones,
// tunnels coming and going with them) as deltas on one host, and the final
// program from scratch on a second, fresh host: both must hold the same
// flows and ports, and the delta host must see no drift. Changes that touch
// only remote containers must render only the delta's flows.
func TestDeltaTransitions(t *testing.T) {
	l := newLab(t, 2, "geneve")
	hd, hf := l.Hosts[0], l.Hosts[1]
	ad, af := newHost(t, l, hd), newHost(t, l, hf)
	for _, a := range []*Host{ad, af} {
		if _, err := a.NewGeneration(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for seed := uint64(1); seed <= 4; seed++ {
		transitions(t, seed, ad, af)
		if o := observe(t, ad); o.Drifted() {
			t.Fatalf("seed %d: the delta host drifted: %v", seed, o.Drift)
		}
		if got, want := flows(t, hd), flows(t, hf); !slices.Equal(got, want) {
			t.Fatalf("seed %d: after deltas the host holds\n%s\nthe full apply gives\n%s", seed, lines(got), lines(want))
		}
		if got, want := ports(t, hd), ports(t, hf); !slices.Equal(got, want) {
			t.Fatalf("seed %d: ports after deltas %v, after the full apply %v", seed, got, want)
		}
	}
}

// transitions applies 20 random changes as deltas with ad, then the last
// program whole with af.
func transitions(t *testing.T, seed uint64, ad, af *Host) {
	r := rand.New(rand.NewPCG(8, seed))
	hosts := []string{"", "h1", "h2", "h3"}
	cur := placement{}
	for n := 1; n <= 12; n++ {
		cur[n] = hosts[r.IntN(len(hosts))]
	}
	rev := int64(seed * 100)
	prev := placed(rev, cur)
	if res := apply(t, ad, prev); res.Degraded() {
		t.Fatalf("seed %d: first apply degraded: %+v", seed, res)
	}
	deltas, late := 0, 0
	for step := 1; step <= 20; step++ {
		next := placement{}
		for n, h := range cur {
			next[n] = h
		}
		localTouched := false
		for k := 1 + r.IntN(3); k > 0; k-- {
			n := 1 + r.IntN(12)
			h := hosts[r.IntN(len(hosts))]
			localTouched = localTouched || h == "h1" || next[n] == "h1"
			next[n] = h
		}
		p := placed(rev+int64(step), next)
		d := progpkg.Diff(prev, p)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := ad.ApplyDelta(ctx, p, d)
		cancel()
		if err != nil || res.Degraded() {
			t.Fatalf("seed %d step %d: %v %v %v", seed, step, err, portErrors(res), res.Dropped)
		}
		if res.PortsAfterFlows {
			late++
		}
		if res.FlowsRendered == len(d.AddFlows)+len(d.RemoveFlows) && res.OpenFlow != "full" {
			deltas++
			if res.OFCtlRuns != 0 {
				t.Errorf("seed %d step %d: the delta path ran ovs-ofctl %d times, want its flow_mods sent natively", seed, step, res.OFCtlRuns)
			}
		} else if !localTouched && len(d.AddTunnels)+len(d.RemoveTunnels) == 0 {
			t.Errorf("seed %d step %d: a change of remote containers only rendered %d flows (delta: %d), openflow %s",
				seed, step, res.FlowsRendered, len(d.AddFlows)+len(d.RemoveFlows), res.OpenFlow)
		}
		prev, cur = p, next
	}
	if deltas == 0 {
		t.Fatalf("seed %d: no step took the delta path", seed)
	}
	if res := apply(t, af, prev); res.Degraded() {
		t.Fatalf("seed %d: full apply degraded: %+v", seed, res)
	}
	t.Logf("seed %d: %d of 20 steps took the delta path, %d sent their ports after the flows", seed, deltas, late)
}

// A spare ovs-ofctl that died while waiting (killed, say) costs nothing
// but its start: the bundle goes through a fresh ovs-ofctl. (The delta
// path sends these flows natively unless told not to: OFCtlDeltas.)
func TestDeadSpare(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h, func(o *Options) { o.OFCtlDeltas = true })
	p1 := placed(1, placement{1: "h1", 2: "h2"})
	apply(t, a, p1)
	for _, kill := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for a.sw.Inspect().SparePID == 0 {
			if ctx.Err() != nil {
				t.Fatal("no spare ovs-ofctl within 30 s")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		if kill {
			pid := a.sw.Inspect().SparePID
			syscall.Kill(pid, syscall.SIGKILL)
			// Gone for good (reaped) before the apply.
			for syscall.Kill(pid, 0) == nil {
				time.Sleep(time.Millisecond)
			}
		}
		p2 := placed(2, placement{1: "h1", 2: "h2", 3: "h2"})
		if !kill {
			p1, p2 = p2, p1
		}
		runs := a.sw.Inspect().OFCtlRuns
		res, err := a.ApplyDelta(context.Background(), p2, progpkg.Diff(p1, p2))
		if err != nil || res.OpenFlow != "delta" || res.FlowsAdded+res.FlowsRemoved != 2 || a.sw.Inspect().OFCtlRuns != runs+1 {
			t.Fatalf("kill %v: %v, openflow %s +%d -%d, %d ovs-ofctl runs", kill, err, res.OpenFlow, res.FlowsAdded, res.FlowsRemoved, a.sw.Inspect().OFCtlRuns-runs)
		}
		if o := observe(t, a); o.Drifted() {
			t.Fatalf("kill %v: drift %v", kill, o.Drift)
		}
	}
}

// A container added to a running bridge gets the ofport the applier
// requested (its flows went in with it, before the port was even added to
// OVSDB), and its port works: a ping crosses it. Its removal too deletes
// the port after the flows. Removed and added again, it gets a new
// number: a number is not reused right after its port went away.
func TestRequestedOFPort(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	one := placed(1, placement{1: "h1", 5: "h2"})
	two := placed(2, placement{1: "h1", 2: "h1", 5: "h2"})
	apply(t, a, one)
	var seen []int
	for round := 0; round < 2; round++ {
		res, err := a.ApplyDelta(context.Background(), two, progpkg.Diff(one, two))
		if err != nil || res.Degraded() || !res.PortsAfterFlows {
			t.Fatalf("round %d: %v %v, ports after the flows %v", round, err, portErrors(res), res.PortsAfterFlows)
		}
		c2 := ctr{N: 2}
		req := h.VSCtl(t, "get", "Interface", c2.Port(), "ofport_request")
		if got := h.OFPort(t, c2.Port()); fmt.Sprint(got) != strings.TrimSpace(req) || ofports(res)[c2.Port()] != got {
			t.Fatalf("round %d: ofport %d, requested %s, reported %d", round, got, req, ofports(res)[c2.Port()])
		}
		seen = append(seen, h.OFPort(t, c2.Port()))
		ping(t, sandbox(l, h, ctr{N: 2}), ctr{N: 1})
		if o := observe(t, a); o.Drifted() {
			t.Fatalf("round %d: drift %v", round, o.Drift)
		}
		if res, err := a.ApplyDelta(context.Background(), one, progpkg.Diff(two, one)); err != nil || !res.PortsAfterFlows {
			t.Fatalf("removal: %v, ports after the flows %v", err, res.PortsAfterFlows)
		}
	}
	if seen[0] == seen[1] {
		t.Fatalf("ofport %d reused at once", seen[0])
	}
}

// A container added by delta gets its flows before its link is made
// (ensureLinks). When the link then cannot be made (its netns path does
// not exist yet), the apply still succeeds and reports that port failed,
// its port is left out of OVSDB, the installed tables are forgotten (its
// flows are in), and once the path exists the next apply makes the link and the
// port, the table equals a fresh host's, and the container answers pings.
func TestNewLinkAfterItsFlows(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1 := ctr{N: 1, Host: "h1"}
	late := ctr{N: 2, Host: "h1", Netns: "/run/netns/" + l.Prefix() + "late2"}
	c3 := ctr{N: 3, Host: "h1"} // added with it, and fine
	one := seal(program("h1", 1, []ctr{c1}, nil, "geneve"))
	two := seal(program("h1", 2, []ctr{c1, late, c3}, nil, "geneve"))
	apply(t, a, one)
	res, err := a.ApplyDelta(context.Background(), two, progpkg.Diff(one, two))
	if err != nil {
		t.Fatalf("apply with a link that cannot be made: %v", err)
	}
	if !strings.Contains(portErrors(res)[late.Port()], "late2") || len(portErrors(res)) != 1 {
		t.Fatalf("port errors %v", portErrors(res))
	}
	// The other new port, planned again without the failed one, keeps the
	// ofport its flows name, and works.
	if req := strings.TrimSpace(h.VSCtl(t, "get", "Interface", c3.Port(), "ofport_request")); fmt.Sprint(h.OFPort(t, c3.Port())) != req || ofports(res)[c3.Port()] != h.OFPort(t, c3.Port()) {
		t.Fatalf("%s: ofport %d, requested %s, reported %d", c3.Port(), h.OFPort(t, c3.Port()), req, ofports(res)[c3.Port()])
	}
	ping(t, sandbox(l, h, c3), c1)
	// Its flows went in before its link failed; its port did not go to
	// OVSDB with a device that does not exist.
	if !strings.Contains(strings.Join(flows(t, h), "\n"), late.IP()) {
		t.Fatalf("no flow names %s: its flows did not go in first", late.IP())
	}
	if slices.Contains(ports(t, h), late.Port()) {
		t.Fatalf("OVS has a port %s whose link failed", late.Port())
	}
	if a.sw.Inspect().TablesKnown {
		t.Fatal("installed tables kept with flows for a port OVS cannot open")
	}
	l.NewNetns(t, "late2")
	three := seal(program("h1", 3, []ctr{c1, late, c3}, nil, "geneve"))
	if res = apply(t, a, three); len(portErrors(res)) != 0 {
		t.Fatalf("apply once the netns exists: port errors %v", portErrors(res))
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift %v", o.Drift)
	}
	ping(t, l.Prefix()+"late2", c1)
}
