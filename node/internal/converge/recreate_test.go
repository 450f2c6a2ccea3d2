package converge

import (
	"slices"
	"strings"
	"testing"
)

// TestRecreatedVethStaysUp deletes a container's veth behind the agent's
// back, again and again: every repair apply must leave the new veth up and
// the host free of drift. (ovs-vswitchd, closing its port on the vanished
// device, restored that device's cached flags by name and so put the new
// veth down, in about one repair in eight.) Adding a container, where
// nothing is recreated, must not wait for ovs-vswitchd: next_cfg stays.
func TestRecreatedVethStaysUp(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2, c3 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}, ctr{N: 3, Host: "h1"}
	apply(t, a, program("h1", 1, []ctr{c1, c2}, nil, "geneve"))

	nextCfg := func() string { return strings.TrimSpace(h.VSCtl(t, "get", "Open_vSwitch", ".", "next_cfg")) }
	before := nextCfg()
	p := program("h1", 2, []ctr{c1, c2, c3}, nil, "geneve")
	res := apply(t, a, p)
	if !slices.Contains(res.LinkChanges, "vc3: created veth vc3") || res.Degraded() {
		t.Fatalf("adding c3: links %v, ports %+v", res.LinkChanges, res.Ports)
	}
	if after := nextCfg(); after != before {
		t.Fatalf("adding a container waited for ovs-vswitchd: next_cfg %s -> %s", before, after)
	}

	for i := range 12 {
		h.MustRun(t, "ip", "link", "del", "vc3")
		if o := observe(t, a); !driftHas(o, "link vc3: veth vc3 missing") {
			t.Fatalf("round %d: deleted veth not seen: %v", i, o.Drift)
		}
		if res := apply(t, a, p); res.Degraded() {
			t.Fatalf("round %d: repair degraded: %+v", i, res.Ports)
		}
		if o := observe(t, a); o.Drifted() {
			t.Fatalf("round %d: drift after repair: %v", i, o.Drift)
		}
	}
	ping(t, sandbox(l, h, c1), c3)
	ping(t, sandbox(l, h, c3), c2)
}
