package converge

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/tests/lab"
)

func TestApplySingleHost(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	p := program("h1", 1, []ctr{c1, c2}, nil, "geneve")

	res := apply(t, a, p)
	if res.Degraded() || len(res.Warnings) > 0 {
		t.Fatalf("first apply degraded: %+v", res)
	}
	if res.OpenFlow != "full" || res.OVSDBOps == 0 {
		t.Fatalf("first apply: openflow %q, %d OVSDB ops", res.OpenFlow, res.OVSDBOps)
	}
	if got := ports(t, h); !slices.Equal(got, []string{"vc1", "vc2"}) {
		t.Fatalf("br-int ports %v", got)
	}
	of := ofports(res)
	dump := h.OFCtl(t, "--no-stats", "dump-flows", "br-int")
	for _, c := range []ctr{c1, c2} {
		if of[c.Port()] != h.OFPort(t, c.Port()) {
			t.Fatalf("result ofport of %s %d, OVS says %d", c.Port(), of[c.Port()], h.OFPort(t, c.Port()))
		}
		if !strings.Contains(dump, fmt.Sprintf("actions=output:%d", of[c.Port()])) ||
			!strings.Contains(dump, fmt.Sprintf("in_port=%d", of[c.Port()])) {
			t.Fatalf("ofport %d of %s not substituted in flows:\n%s", of[c.Port()], c.Port(), dump)
		}
	}
	if strings.Contains(dump, "${") {
		t.Fatalf("unresolved placeholder:\n%s", dump)
	}
	if n := len(flows(t, h)); n != len(p.Flows) {
		t.Fatalf("%d flows installed, program has %d", n, len(p.Flows))
	}
	ping(t, sandbox(l, h, c1), c2)
	ping(t, sandbox(l, h, c2), c1)
	t.Logf("first apply: %s", res.Summary())

	// Idempotence: the second apply changes nothing and runs no ovs-ofctl.
	before := flows(t, h)
	res2 := apply(t, a, p)
	if res2.OVSDBOps != 0 || res2.OpenFlow != "unchanged" || res2.OFCtlRuns != 0 || len(res2.LinkChanges) != 0 {
		t.Fatalf("second apply changed things: ops %d, openflow %s, ofctl runs %d, links %v",
			res2.OVSDBOps, res2.OpenFlow, res2.OFCtlRuns, res2.LinkChanges)
	}
	if !mapsEqual(ofports(res2), of) {
		t.Fatalf("ofports moved: %v -> %v", of, ofports(res2))
	}
	if after := flows(t, h); !slices.Equal(before, after) {
		t.Fatalf("flows changed by idempotent apply:\n%v\n%v", before, after)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift right after apply: %v", o.Drift)
	}
	// The bridge is configured as specified.
	for col, want := range map[string]string{
		"datapath_type": "netdev", "fail_mode": "secure",
		"other_config:disable-in-band": `"true"`, "external_ids:switchyard-owner": "switchyard",
	} {
		if got := strings.TrimSpace(h.VSCtl(t, "get", "Bridge", "br-int", col)); got != want {
			t.Errorf("br-int %s = %s, want %s", col, got, want)
		}
	}
	ids := h.VSCtl(t, "get", "Interface", "vc1", "external_ids")
	for _, kv := range []string{`switchyard-container=c1`, `switchyard-container-id=id-c1`, `switchyard-owner=switchyard`} {
		if !strings.Contains(ids, kv) {
			t.Errorf("vc1 external_ids %s lack %s", ids, kv)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// driftKinds reports which kinds of drift an Observe found.
func driftHas(o Observed, substr string) bool {
	for _, d := range o.Drift {
		if strings.Contains(d, substr) {
			return true
		}
	}
	return false
}

func TestConvergeFromDrift(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2, c3 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}, ctr{N: 3, Host: "h1"}
	p := program("h1", 1, []ctr{c1, c2, c3}, nil, "geneve")
	apply(t, a, p)
	wantFlows, wantPorts := flows(t, h), ports(t, h)

	// A foreign port (no switchyard external_ids) must survive everything.
	h.VSCtl(t, "add-port", "br-int", "foreign0", "--", "set", "Interface", "foreign0", "type=internal")
	// Behind the agent's back: an OVS port, a flow and a veth disappear.
	h.VSCtl(t, "del-port", "br-int", "vc1")
	h.OFCtl(t, "del-flows", "br-int", fmt.Sprintf("cookie=%#x/-1", ovs.Cookie(0xd002, a.sw.Generation())))
	h.MustRun(t, "ip", "link", "del", "vc3")

	o := observe(t, a)
	for _, want := range []string{"OVSDB: needs", "flow missing: table=1 cookie=0xd002", "link vc3: veth vc3 missing"} {
		if !driftHas(o, want) {
			t.Errorf("Observe drift lacks %q: %v", want, o.Drift)
		}
	}
	if driftHas(o, "foreign0") {
		t.Errorf("foreign port reported as drift: %v", o.Drift)
	}
	res := apply(t, a, p)
	if res.Degraded() {
		t.Fatalf("repair apply degraded: %+v", res.Ports)
	}
	if res.OpenFlow == "unchanged" {
		t.Fatalf("repair apply left flows unchanged")
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after repair: %v", o.Drift)
	}
	wantPorts = append(wantPorts, "foreign0")
	slices.Sort(wantPorts)
	if got := ports(t, h); !slices.Equal(got, wantPorts) {
		t.Fatalf("ports after repair %v, want %v", got, wantPorts)
	}
	// Flow text may differ only by ofports that moved; compare by port name.
	if got := flows(t, h); !slices.Equal(got, wantFlows) {
		t.Fatalf("flows after repair:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantFlows, "\n"))
	}
	ping(t, sandbox(l, h, c1), c3)
	ping(t, sandbox(l, h, c3), c2)

	// A hand-modified flow (same match, other actions) is drift too.
	h.OFCtl(t, "mod-flows", "br-int", "table=1,dl_dst="+c2.MAC()+",actions=drop")
	if o := observe(t, a); !driftHas(o, "flow changed: table=1") {
		t.Fatalf("modified flow not seen: %v", o.Drift)
	}
	apply(t, a, p)
	if got := flows(t, h); !slices.Equal(got, wantFlows) {
		t.Fatalf("flows after second repair differ")
	}
	ping(t, sandbox(l, h, c1), c2)
}

func TestTransitionEqualsFresh(t *testing.T) {
	l := newLab(t, 2, "geneve")
	h1, h2 := l.Hosts[0], l.Hosts[1]
	a1, a2 := newHost(t, l, h1), newHost(t, l, h2)
	// Program A and B are written for a host named "hx" so that both lab
	// hosts can run them; they share c2, c3 (c3 changes MAC/IP in B) and
	// differ in c1 (only A) and c4 (only B), plus one moved flow.
	c1, c2, c3, c4 := ctr{N: 1, Host: "hx"}, ctr{N: 2, Host: "hx"}, ctr{N: 3, Host: "hx"}, ctr{N: 4, Host: "hx"}
	pa := program("hx", 1, []ctr{c1, c2, c3}, map[string]string{"hy": "192.168.200.99"}, "geneve")
	c3b := c3
	c3b.N = 33 // new IP and MAC, same port name below
	pb := program("hx", 2, []ctr{c2, c3b, c4}, map[string]string{"hy": "192.168.200.98"}, "vxlan")
	for i := range pb.Containers {
		if pb.Containers[i].Container == "c33" {
			pb.Containers[i].Name, pb.Containers[i].Container, pb.Containers[i].Sandbox = "vc3", "c3", "c3"
		}
	}
	for i := range pb.Flows {
		pb.Flows[i].Match = strings.ReplaceAll(pb.Flows[i].Match, "${port:vc33}", "${port:vc3}")
		pb.Flows[i].Actions = strings.ReplaceAll(pb.Flows[i].Actions, "${port:vc33}", "${port:vc3}")
	}
	pb.Flows = append(pb.Flows, pb.Flows[0]) // an exact duplicate is dropped, not fatal
	pb.Flows[len(pb.Flows)-1].Cookie = 0xeeee

	apply(t, a1, pa)
	ra := apply(t, a1, pb)
	rb := apply(t, a2, pb)
	if len(ra.Dropped) != 1 || len(rb.Dropped) != 1 || ra.Degraded() != rb.Degraded() {
		t.Fatalf("dropped: transition %v, fresh %v", ra.Dropped, rb.Dropped)
	}
	if f1, f2 := flows(t, h1), flows(t, h2); !slices.Equal(f1, f2) {
		t.Fatalf("flows differ:\nA->B:\n%s\nB:\n%s", strings.Join(f1, "\n"), strings.Join(f2, "\n"))
	}
	if p1, p2 := ports(t, h1), ports(t, h2); !slices.Equal(p1, p2) {
		t.Fatalf("ports differ: A->B %v, B %v", p1, p2)
	}
	for _, col := range []string{"type", "options", "external_ids"} {
		for _, port := range []string{"tun-hy", "vc3"} {
			v1 := h1.VSCtl(t, "get", "Interface", port, col)
			v2 := h2.VSCtl(t, "get", "Interface", port, col)
			if v1 != v2 {
				t.Errorf("Interface %s %s: A->B %s, B %s", port, col, v1, v2)
			}
		}
	}
	for i, h := range []*lab.Host{h1, h2} {
		a := []*Host{a1, a2}[i]
		if d, err := a.links.Check(c1.ContainerPort()); err != nil || len(d) == 0 {
			t.Errorf("%s: link of removed c1 still checks fine (%v, %v)", h.Name, d, err)
		}
		if _, err := os.Stat("/run/netns/" + sandbox(l, h, c1)); !os.IsNotExist(err) {
			t.Errorf("%s: sandbox of removed c1 still exists (%v)", h.Name, err)
		}
	}
	if out := h1.MustRun(t, "ip", "netns", "exec", sandbox(l, h1, c3), "ip", "-o", "addr", "show", "eth0"); !strings.Contains(out, c3b.IP()+"/24") {
		t.Fatalf("c3 not readdressed: %s", out)
	}
	ping(t, sandbox(l, h1, c3), c2)
	ping(t, sandbox(l, h2, c4), c3b)
}
