package converge

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// TestServiceGroupDeltasNative, through the applier on a real OVS: a
// service's select group (the compiler's form) and the flow sending to it
// come, change and go on the O(change) delta path (only the delta's flows
// rendered) without any ovs-ofctl process (one native bundle each), the drift check sees no drift after each, and
// a group changed by hand is drift, repaired by the next apply.
func TestServiceGroupDeltasNative(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: h.Name}, ctr{N: 2, Host: h.Name}
	spec := func(w0, w1 int) string {
		b := func(id, w int, ip string) string {
			return fmt.Sprintf(",bucket=bucket_id:%d,weight:%d,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst=%s:8080))", id, w, ip)
		}
		return "type=select,selection_method=dp_hash" + b(0, w0, c1.IP()) + b(1, w1, c2.IP())
	}
	prog := func(rev int64, groups ...openapi.Group) *openapi.Program {
		p := program(h.Name, rev, []ctr{c1, c2}, nil, "geneve")
		p.Groups = groups
		for _, g := range groups {
			p.Flows = append(p.Flows, openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf000 + uint64(g.ID),
				Match: fmt.Sprintf("ct_state=+new+trk,tcp,nw_dst=10.96.0.%d,tp_dst=80", g.ID), Actions: fmt.Sprintf("group:%d", g.ID)})
		}
		return p
	}
	prev := seal(prog(1))
	apply(t, a, prev)
	for _, s := range []struct {
		name   string
		p      *openapi.Program
		groups int
	}{
		{"add", prog(2, openapi.Group{ID: 40, Spec: spec(100, 50)}, openapi.Group{ID: 41, Spec: spec(1, 1)}), 2},
		{"modify", prog(3, openapi.Group{ID: 40, Spec: spec(70, 30)}, openapi.Group{ID: 41, Spec: spec(1, 1)}), 2},
		{"delete", prog(4, openapi.Group{ID: 40, Spec: spec(70, 30)}), 1},
	} {
		p := seal(s.p)
		d := progpkg.Diff(prev, p)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := a.ApplyDelta(ctx, p, d)
		cancel()
		if err != nil || r.Degraded() || r.OpenFlow != "delta" || r.OFCtlRuns != 0 || r.FlowsRendered != len(d.AddFlows)+len(d.RemoveFlows) {
			t.Fatalf("%s: %v, openflow %s, %d ovs-ofctl runs, %d flows rendered (delta %d), dropped %v; want the delta path, natively",
				s.name, err, r.OpenFlow, r.OFCtlRuns, r.FlowsRendered, len(d.AddFlows)+len(d.RemoveFlows), r.Dropped)
		}
		prev = p
		if g := groupsOn(t, h, "br-int"); len(g) != s.groups || !strings.Contains(g[0], "group_id=40,") ||
			s.name != "add" && !strings.Contains(g[0], "weight:70") {
			t.Fatalf("%s: groups\n%s", s.name, lines(g))
		}
		if o := observe(t, a); o.Drifted() {
			t.Fatalf("%s: drift: %v", s.name, o.Drift)
		}
	}
	delta := func(p *openapi.Program) (ApplyResult, *openapi.ProgramDelta) {
		t.Helper()
		p = seal(p)
		d := progpkg.Diff(prev, p)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, err := a.ApplyDelta(ctx, p, d)
		if err != nil {
			t.Fatal(err)
		}
		prev = p
		return r, d
	}
	// The same change through ovs-ofctl (OFCtlDeltas): one bundle with
	// the groups and flows, in the same order.
	a.sw.Tune(ovs.Tuning{OFCtlDeltas: true})
	r, d := delta(prog(5, openapi.Group{ID: 40, Spec: spec(60, 40)}, openapi.Group{ID: 42, Spec: spec(1, 2)}))
	a.sw.Tune(ovs.Tuning{})
	if r.Degraded() || r.OpenFlow != "delta" || r.OFCtlRuns != 1 || r.FlowsRendered != len(d.AddFlows)+len(d.RemoveFlows) {
		t.Fatalf("through ovs-ofctl: openflow %s, %d runs, %d flows rendered, dropped %v", r.OpenFlow, r.OFCtlRuns, r.FlowsRendered, r.Dropped)
	}
	if g := groupsOn(t, h, "br-int"); len(g) != 2 || !strings.Contains(g[0], "weight:60") || !strings.Contains(g[1], "group_id=42,") {
		t.Fatalf("through ovs-ofctl: groups\n%s", lines(g))
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("through ovs-ofctl: drift: %v", o.Drift)
	}
	// A group removed while a flow still sends to it: not for the delta
	// path; the full path drops the flow and says why.
	p6 := prog(6, openapi.Group{ID: 40, Spec: spec(60, 40)}, openapi.Group{ID: 42, Spec: spec(1, 2)})
	p6.Groups = p6.Groups[:1]
	r, d = delta(p6)
	if r.FlowsRendered == len(d.AddFlows)+len(d.RemoveFlows) || len(r.Dropped) != 1 || !strings.Contains(r.Dropped[0].Reason, "group 42 is not installed") {
		t.Fatalf("group removed under a flow: %d flows rendered, dropped %v", r.FlowsRendered, r.Dropped)
	}
	if g := groupsOn(t, h, "br-int"); len(g) != 1 {
		t.Fatalf("group removed under a flow: groups\n%s", lines(g))
	}
	apply(t, a, prog(4, openapi.Group{ID: 40, Spec: spec(70, 30)}))
	h.OFCtl(t, "mod-group", "br-int", "group_id=40,type=select,selection_method=dp_hash,"+
		"bucket=bucket_id:0,weight:70,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst="+c1.IP()+":8080)),"+
		"bucket=bucket_id:1,weight:31,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst="+c2.IP()+":8080))")
	if o := observe(t, a); !driftHas(o, "group 40 changed") {
		t.Fatalf("a weight changed by hand is not drift: %v", o.Drift)
	}
	if r := apply(t, a, prog(4, openapi.Group{ID: 40, Spec: spec(70, 30)})); r.OpenFlow != "full" {
		t.Fatalf("repair: openflow %s, want full", r.OpenFlow)
	}
	if g := groupsOn(t, h, "br-int"); len(g) != 1 || !strings.Contains(g[0], "weight:30") {
		t.Fatalf("not repaired:\n%s", lines(g))
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the repair: %v", o.Drift)
	}
}

// TestGroupDeltaTransitions applies random sequences of service changes
// (select groups coming, going and changing buckets, weights and backends,
// with the flows sending to them) as deltas on one host, natively, and the
// program whole on a second host every 10 steps: both must hold the same
// groups and flows, every step must take the O(change) path without
// ovs-ofctl, and the delta host must see no drift.
func TestGroupDeltaTransitions(t *testing.T) {
	l := newLab(t, 2, "geneve")
	hd, hf := l.Hosts[0], l.Hosts[1]
	ad, af := newHost(t, l, hd), newHost(t, l, hf)
	for _, a := range []*Host{ad, af} {
		if _, err := a.NewGeneration(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(10, 1))
	cur := placement{1: "h1", 2: "h1", 3: "h2", 4: "h3"}
	build := func(rev int64, groups map[uint32]string) *openapi.Program {
		p := placed(rev, cur)
		for _, id := range slices.Sorted(maps.Keys(groups)) {
			p.Groups = append(p.Groups, openapi.Group{ID: id, Spec: groups[id]})
			p.Flows = append(p.Flows, openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf000 + uint64(id),
				Match: fmt.Sprintf("ct_state=+new+trk,tcp,nw_dst=10.96.0.%d,tp_dst=80", id), Actions: fmt.Sprintf("group:%d", id)})
		}
		progpkg.SortFlows(p.Flows)
		return seal(p)
	}
	randSpec := func() string {
		spec := "type=select,selection_method=dp_hash"
		for b := 0; b <= r.IntN(3); b++ {
			spec += fmt.Sprintf(",bucket=bucket_id:%d,weight:%d,actions=ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst=10.60.0.%d:%d))",
				b, 1+r.IntN(200), 1+r.IntN(4), 8080+r.IntN(2))
		}
		return spec
	}
	groups := map[uint32]string{}
	prev := build(1, groups)
	apply(t, ad, prev)
	for step := 2; step <= 30; step++ {
		for k := 1 + r.IntN(3); k > 0; k-- {
			id := uint32(50 + r.IntN(6))
			if _, ok := groups[id]; ok && r.IntN(3) == 0 {
				delete(groups, id)
			} else {
				groups[id] = randSpec()
			}
		}
		p := build(int64(step), groups)
		d := progpkg.Diff(prev, p)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := ad.ApplyDelta(ctx, p, d)
		cancel()
		if err != nil || res.Degraded() || res.OFCtlRuns != 0 || res.FlowsRendered != len(d.AddFlows)+len(d.RemoveFlows) {
			t.Fatalf("step %d: %v, openflow %s, %d ovs-ofctl runs, %d flows rendered (delta %d), dropped %v",
				step, err, res.OpenFlow, res.OFCtlRuns, res.FlowsRendered, len(d.AddFlows)+len(d.RemoveFlows), res.Dropped)
		}
		prev = p
		if step%10 != 0 {
			continue
		}
		if o := observe(t, ad); o.Drifted() {
			t.Fatalf("step %d: the delta host drifted: %v", step, o.Drift)
		}
		apply(t, af, prev) // the whole program (resolve and diff)
		if got, want := groupsOn(t, hd, "br-int"), groupsOn(t, hf, "br-int"); !slices.Equal(got, want) || len(got) != len(groups) {
			t.Fatalf("step %d: after deltas the host holds the groups\n%s\nthe whole program gives\n%s", step, lines(got), lines(want))
		}
		if got, want := flows(t, hd), flows(t, hf); !slices.Equal(got, want) {
			t.Fatalf("step %d: after deltas the host holds\n%s\nthe whole program gives\n%s", step, lines(got), lines(want))
		}
		t.Logf("step %d: %d groups, the same on both hosts", step, len(groups))
	}
}
