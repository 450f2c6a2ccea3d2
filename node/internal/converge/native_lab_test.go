package converge

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// A change with a flow the encoder does not know goes through ovs-ofctl;
// one with a flow the switch refuses fails on the delta path and the full
// sync drops that flow, as when ovs-ofctl sent it. Neither leaves drift.
func TestNativeFallbacks(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	p1 := placed(1, placement{1: "h1", 2: "h2"})
	apply(t, a, p1)
	step := func(p2 *openapi.Program, extra openapi.Flow) ApplyResult {
		t.Helper()
		p3 := *p2
		p3.Flows = append(slices.Clone(p2.Flows), extra)
		p3.Revision++
		seal(&p3)
		res, err := a.ApplyDelta(context.Background(), &p3, progpkg.Diff(p2, &p3))
		if err != nil {
			t.Fatal(err)
		}
		if o := observe(t, a); o.Drifted() {
			t.Fatalf("drift %v", o.Drift)
		}
		*p2 = p3
		return res
	}
	unknown := openapi.Flow{Table: 1, Priority: 50, Cookie: 0xe001, Match: "ip,nw_ttl=1", Actions: "drop"}
	if res := step(p1, unknown); res.OpenFlow != "delta" || res.OFCtlRuns != 1 || res.FlowsAdded != 1 {
		t.Fatalf("unknown syntax: openflow %s +%d, %d ovs-ofctl runs; want delta +1 through ovs-ofctl", res.OpenFlow, res.FlowsAdded, res.OFCtlRuns)
	}
	if !slices.ContainsFunc(flows(t, h), func(s string) bool { return strings.Contains(s, "nw_ttl=1") }) {
		t.Fatal("the flow ovs-ofctl sent is not installed")
	}
	refused := openapi.Flow{Table: 1, Priority: 50, Cookie: 0xe002, Match: "reg5=2", Actions: "goto_table:0"}
	res := step(p1, refused)
	if res.OpenFlow != "full" || len(res.Dropped) != 1 || res.Dropped[0].Flow.Cookie != refused.Cookie {
		t.Fatalf("refused flow: openflow %s, dropped %v; want a full sync dropping it", res.OpenFlow, res.Dropped)
	}
	// A whole program without its delta (the agent fell behind): the
	// difference goes natively too.
	p1.Flows = slices.DeleteFunc(p1.Flows, func(f openapi.Flow) bool { return f.Cookie == refused.Cookie || f.Cookie == unknown.Cookie })
	p1.Revision++
	apply(t, a, p1)
	p4 := placed(p1.Revision+1, placement{1: "h1", 2: "h2", 3: "h2"})
	if res := apply(t, a, p4); res.OpenFlow != "delta" || res.OFCtlRuns != 0 || res.FlowsAdded == 0 {
		t.Fatalf("whole program: openflow %s +%d, %d ovs-ofctl runs; want a native delta", res.OpenFlow, res.FlowsAdded, res.OFCtlRuns)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift %v", o.Drift)
	}
}

// The applier's flow_mod connection breaks when ovs-vswitchd restarts; the
// first delta after the restart redials it and still goes natively, on the
// delta path (not through the full resolve a failed delta falls back to).
func TestNativeAfterOVSRestart(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	ps := []*openapi.Program{
		placed(1, placement{1: "h1", 2: "h2"}),
		placed(2, placement{1: "h1", 2: "h2", 3: "h2"}),
		placed(3, placement{1: "h1", 2: "h2", 3: "h2", 4: "h2"}),
	}
	apply(t, a, ps[0])
	delta := func(from, to *openapi.Program) {
		t.Helper()
		d := progpkg.Diff(from, to)
		res, err := a.ApplyDelta(context.Background(), to, d)
		if err != nil || res.OpenFlow != "delta" || res.OFCtlRuns != 0 || res.FlowsRendered != len(d.AddFlows)+len(d.RemoveFlows) {
			t.Fatalf("rev %d: %v, openflow %s, %d ovs-ofctl runs, %d flows rendered; want a native delta", to.Revision, err, res.OpenFlow, res.OFCtlRuns, res.FlowsRendered)
		}
	}
	delta(ps[0], ps[1])
	for deadline := time.Now().Add(30 * time.Second); !a.sw.Inspect().Watching; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the applier is not watching br-int")
		}
	}
	h.RestartOVS(t)
	select {
	case <-a.sw.Restarts():
	case <-time.After(60 * time.Second):
		t.Fatal("no restart reported within 60 s")
	}
	if res := apply(t, a, ps[1]); res.OpenFlow != "full" {
		t.Fatalf("apply after the restart: openflow %s", res.OpenFlow)
	}
	delta(ps[1], ps[2])
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift %v", o.Drift)
	}
}
