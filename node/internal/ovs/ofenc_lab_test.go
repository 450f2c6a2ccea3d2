package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
	"github.com/switchyard/switchyard/tests/lab"
)

// addTestBridge adds an empty bridge (userspace, fail_mode secure) to h.
func addTestBridge(t *testing.T, h *lab.Host, name string) {
	t.Helper()
	h.VSCtl(t, "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev", "fail_mode=secure")
}

// ofctlBundle sends lines ("flow add ...", "flow delete_strict ...") with
// `ovs-ofctl bundle` to bridge.
func ofctlBundle(t *testing.T, h *lab.Host, bridge string, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bundle.txt")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.OFCtl(t, "--no-names", "bundle", bridge, f)
}

func nativeBundle(t *testing.T, q *modConn, mods bundleMods) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return q.bundle(ctx, mods)
}

// TestNativeFlowModsLikeOFCtl installs every golden flow (the compiler's
// programs, ports resolved to numbers) natively on one bridge and through
// `ovs-ofctl bundle` on another: the switch must hold the same flows. Then
// it deletes every other flow both ways (delete_strict by table, priority
// and match, as the delta path does): the same again. A bundle with a flow
// the switch refuses changes nothing and fails with the switch's error,
// and the connection serves the next bundle.
func TestNativeFlowModsLikeOFCtl(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	addTestBridge(t, h, "br-nat")
	addTestBridge(t, h, "br-ctl")
	q := &modConn{socket: h.Path("br-nat.mgmt")}
	defer q.close()

	fs, ports := goldenFlows(t)
	keys, lines := renderAll(t, fs, ports)
	// The services' flows send to groups: stand-ins on both bridges.
	ids := groupTable{}
	for _, f := range fs {
		maps.Copy(ids, groupsNamed(f.Actions))
	}
	for _, id := range sortedIDs(ids) {
		for _, br := range []string{"br-nat", "br-ctl"} {
			h.OFCtl(t, "add-group", br, fmt.Sprintf("group_id=%d,type=select,bucket=bucket_id:0,weight:1,actions=output:1", id))
		}
	}
	mods, err := encodeChange(nil, keys, lines)
	if err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); err != nil {
		t.Fatalf("native bundle of %d flows: %v", len(mods), err)
	}
	var text []string
	for _, k := range keys {
		text = append(text, "flow add "+lines[k])
	}
	ofctlBundle(t, h, "br-ctl", text)
	same := func(stage string, want int) {
		t.Helper()
		nat, ctl := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl")
		if !slices.Equal(nat, ctl) {
			t.Fatalf("%s: native\n%s\novs-ofctl\n%s", stage, lines2(nat), lines2(ctl))
		}
		if len(nat) != want {
			t.Fatalf("%s: %d flows, want %d", stage, len(nat), want)
		}
	}
	same("add", len(keys))

	var dels []string
	text = nil
	for i, k := range keys {
		if i%2 == 0 {
			dels = append(dels, k)
			text = append(text, "flow delete_strict "+k)
		}
	}
	if mods, err = encodeChange(dels, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); err != nil {
		t.Fatalf("native deletes: %v", err)
	}
	ofctlBundle(t, h, "br-ctl", text)
	left := len(keys) - len(dels)
	same("delete_strict", left)

	// Atomic: a good flow and one the switch refuses (goto_table back).
	good := openapi.Flow{Table: 9, Priority: 7, Cookie: 0x99, Match: "reg5=1", Actions: "drop"}
	bad := openapi.Flow{Table: 9, Priority: 8, Cookie: 0x99, Match: "reg5=2", Actions: "goto_table:3"}
	keys, lines = renderAll(t, []openapi.Flow{good, bad}, nil)
	if mods, err = encodeChange(nil, keys, lines); err != nil {
		t.Fatal(err)
	}
	var se *ofSwitchError
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("a flow the switch refuses: got %v, want the switch's error", err)
	}
	same("refused bundle", left)
	if err := nativeBundle(t, q, mods[:1]); err != nil {
		t.Fatalf("after a refused bundle: %v", err)
	}
	ofctlBundle(t, h, "br-ctl", []string{"flow add " + lines[keys[0]]})
	same("after a refused bundle", left+1)

	// Thousands of refused flows: the switch's errors are read while the
	// bundle is still being written (OVS stops reading a connection whose
	// replies pile up), so the refusal comes back, not a timeout.
	var many []openapi.Flow
	for i := 0; i < 5000; i++ {
		many = append(many, openapi.Flow{Table: 9, Priority: 100 + i, Cookie: 0x98, Match: "reg5=3", Actions: "goto_table:3"})
	}
	keys, lines = renderAll(t, many, nil)
	if mods, err = encodeChange(nil, keys, lines); err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("5,000 refused flows: got %v, want the switch's error", err)
	}
	same("5,000 refused flows", left+1)
}

func lines2(ls []string) string { return strings.Join(ls, "\n") }

// A change with a flow the encoder does not know goes through ovs-ofctl;
// one with a flow the switch refuses fails on the delta path and the full
// sync drops that flow, as when ovs-ofctl sent it. Neither leaves drift.
func TestNativeFallbacks(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newApplier(t, l, h)
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
	a := newApplier(t, l, h)
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
	for deadline := time.Now().Add(30 * time.Second); !a.watching(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the applier is not watching br-int")
		}
	}
	h.RestartOVS(t)
	select {
	case <-a.Restarts():
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
