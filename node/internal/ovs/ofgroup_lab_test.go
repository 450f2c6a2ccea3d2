package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
	"github.com/switchyard/switchyard/tests/lab"
)

// groupsOn lists a bridge's groups (dump-groups), sorted.
func groupsOn(t *testing.T, h *lab.Host, bridge string) []string {
	t.Helper()
	var ls []string
	for _, l := range strings.Split(h.OFCtl(t, "dump-groups", bridge), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "group_id=") {
			ls = append(ls, l)
		}
	}
	slices.Sort(ls)
	return ls
}

// TestNativeGroupModsLikeOFCtl: deltas with group adds, modifies and
// deletes and flows sending to the groups, sent as one native bundle
// (encodeDiff) to one bridge and as `ovs-ofctl bundle` of the same
// lines to another, leave both bridges with the same groups and flows:
// every golden group, then half of them modified and others deleted with
// their flows, then none. A bundle the switch refuses (a flow sending to
// a group that does not exist) changes nothing, groups included.
func TestNativeGroupModsLikeOFCtl(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	addTestBridge(t, h, "br-nat")
	addTestBridge(t, h, "br-ctl")
	q := &modConn{socket: h.Path("br-nat.mgmt")}
	defer q.close()

	gs := goldenGroups(t)
	version := func(groups []openapi.Group) (flowTable, groupTable) {
		var fs []openapi.Flow
		for i, g := range groups {
			fs = append(fs, openapi.Flow{Table: 5, Priority: 100 + i, Cookie: 0x42,
				Match: fmt.Sprintf("ct_state=+new+trk,tcp,reg0=%d,nw_dst=10.96.0.1,tp_dst=80", g.ID), Actions: fmt.Sprintf("group:%d", g.ID)})
		}
		ft, gt, dropped := resolve(fs, groups, resolver{}, 3)
		if len(dropped) > 0 {
			t.Fatalf("dropped %v", dropped)
		}
		return ft, gt
	}
	var oldF flowTable
	var oldG groupTable
	step := func(stage string, groups []openapi.Group) {
		t.Helper()
		newF, newG := version(groups)
		d := diff(oldF, newF, oldG, newG)
		mods, err := encodeDiff(d, newF, newG)
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if err := nativeBundle(t, q, mods); err != nil {
			t.Fatalf("%s: native bundle of %d messages: %v", stage, len(mods), err)
		}
		ofctlBundle(t, h, "br-ctl", d.lines)
		natG, ctlG := groupsOn(t, h, "br-nat"), groupsOn(t, h, "br-ctl")
		if !slices.Equal(natG, ctlG) || len(natG) != len(groups) {
			t.Fatalf("%s: groups, native\n%s\novs-ofctl (want %d)\n%s", stage, lines2(natG), len(groups), lines2(ctlG))
		}
		natF, ctlF := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl")
		if !slices.Equal(natF, ctlF) || len(natF) != len(groups) {
			t.Fatalf("%s: flows, native\n%s\novs-ofctl\n%s", stage, lines2(natF), lines2(ctlF))
		}
		t.Logf("%s: %d group sets (%d modifies), %d group deletes, %d flow adds, %d flow deletes in one bundle",
			stage, len(d.setIDs), len(d.modified), len(d.delIDs), len(d.addKeys), len(d.delKeys))
		oldF, oldG = newF, newG
	}
	step("add", gs)
	var next []openapi.Group
	for i, g := range gs {
		switch i % 3 {
		case 0: // modified: another action in the first bucket
			next = append(next, openapi.Group{ID: g.ID, Spec: strings.Replace(g.Spec, ",actions=", ",actions=set_field:1->reg5,", 1)})
		case 1: // kept
			next = append(next, g)
		} // 2: deleted, with the flow using it
	}
	next = append(next, openapi.Group{ID: 9000, Spec: gs[0].Spec}) // added
	step("modify and delete", next)

	// Refused: a group and a flow sending to a group that is not there.
	_, newG := version(append(slices.Clone(next), openapi.Group{ID: 9001, Spec: gs[1].Spec}))
	bad := openapi.Flow{Table: 5, Priority: 7, Cookie: 0x43, Match: "reg0=7", Actions: "group:9999"}
	line, key, err := renderFlow(&bad, resolver{}, 3, groupTable{9999: "type=select"})
	if err != nil {
		t.Fatal(err)
	}
	newF := flowTable{lines: map[string]string{key: line}, keys: []string{key}}
	for k, v := range oldF.lines {
		newF.lines[k] = v
	}
	newF.keys = append(newF.keys, oldF.orderedKeys()...)
	d := diff(oldF, newF, oldG, newG)
	mods, err := encodeDiff(d, newF, newG)
	if err != nil || len(d.setIDs) != 1 || len(d.addKeys) != 1 {
		t.Fatalf("refused bundle: %v, %d group sets, %d flow adds", err, len(d.setIDs), len(d.addKeys))
	}
	var se *ofSwitchError
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("a flow sending to a missing group: got %v, want the switch's error", err)
	}
	if natG, ctlG := groupsOn(t, h, "br-nat"), groupsOn(t, h, "br-ctl"); !slices.Equal(natG, ctlG) {
		t.Fatalf("a refused bundle changed the groups:\n%s\nwant\n%s", lines2(natG), lines2(ctlG))
	}
	if natF, ctlF := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl"); !slices.Equal(natF, ctlF) {
		t.Fatalf("a refused bundle changed the flows:\n%s\nwant\n%s", lines2(natF), lines2(ctlF))
	}
	step("delete all", nil)
}

// TestServiceGroupDeltasNative, through the applier on a real OVS: a
// service's select group (the compiler's form) and the flow sending to it
// come, change and go on the O(change) delta path (only the delta's flows
// rendered) without any ovs-ofctl process (one native bundle each), the drift check sees no drift after each, and
// a group changed by hand is drift, repaired by the next apply.
func TestServiceGroupDeltasNative(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newApplier(t, l, h)
	c1, c2 := ctr{n: 1, host: h.Name}, ctr{n: 2, host: h.Name}
	spec := func(w0, w1 int) string {
		b := func(id, w int, ip string) string {
			return fmt.Sprintf(",bucket=bucket_id:%d,weight:%d,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst=%s:8080))", id, w, ip)
		}
		return "type=select,selection_method=dp_hash" + b(0, w0, c1.ip()) + b(1, w1, c2.ip())
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
			t.Fatalf("%s: groups\n%s", s.name, lines2(g))
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
	a.opts.OFCtlDeltas = true
	r, d := delta(prog(5, openapi.Group{ID: 40, Spec: spec(60, 40)}, openapi.Group{ID: 42, Spec: spec(1, 2)}))
	a.opts.OFCtlDeltas = false
	if r.Degraded() || r.OpenFlow != "delta" || r.OFCtlRuns != 1 || r.FlowsRendered != len(d.AddFlows)+len(d.RemoveFlows) {
		t.Fatalf("through ovs-ofctl: openflow %s, %d runs, %d flows rendered, dropped %v", r.OpenFlow, r.OFCtlRuns, r.FlowsRendered, r.Dropped)
	}
	if g := groupsOn(t, h, "br-int"); len(g) != 2 || !strings.Contains(g[0], "weight:60") || !strings.Contains(g[1], "group_id=42,") {
		t.Fatalf("through ovs-ofctl: groups\n%s", lines2(g))
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
		t.Fatalf("group removed under a flow: groups\n%s", lines2(g))
	}
	apply(t, a, prog(4, openapi.Group{ID: 40, Spec: spec(70, 30)}))
	h.OFCtl(t, "mod-group", "br-int", "group_id=40,type=select,selection_method=dp_hash,"+
		"bucket=bucket_id:0,weight:70,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst="+c1.ip()+":8080)),"+
		"bucket=bucket_id:1,weight:31,actions=set_field:0x1->reg3,ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst="+c2.ip()+":8080))")
	if o := observe(t, a); !driftHas(o, "group 40 changed") {
		t.Fatalf("a weight changed by hand is not drift: %v", o.Drift)
	}
	if r := apply(t, a, prog(4, openapi.Group{ID: 40, Spec: spec(70, 30)})); r.OpenFlow != "full" {
		t.Fatalf("repair: openflow %s, want full", r.OpenFlow)
	}
	if g := groupsOn(t, h, "br-int"); len(g) != 1 || !strings.Contains(g[0], "weight:30") {
		t.Fatalf("not repaired:\n%s", lines2(g))
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
	ad, af := newApplier(t, l, hd), newApplier(t, l, hf)
	for _, a := range []*Applier{ad, af} {
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
			t.Fatalf("step %d: after deltas the host holds the groups\n%s\nthe whole program gives\n%s", step, lines2(got), lines2(want))
		}
		if got, want := flows(t, hd), flows(t, hf); !slices.Equal(got, want) {
			t.Fatalf("step %d: after deltas the host holds\n%s\nthe whole program gives\n%s", step, lines(got), lines(want))
		}
		t.Logf("step %d: %d groups, the same on both hosts", step, len(groups))
	}
}
