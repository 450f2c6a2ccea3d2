package ovs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestApplySingleHost(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newApplier(t, l, h)
	c1, c2 := ctr{n: 1, host: "h1"}, ctr{n: 2, host: "h1"}
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
		if of[c.port()] != h.OFPort(t, c.port()) {
			t.Fatalf("result ofport of %s %d, OVS says %d", c.port(), of[c.port()], h.OFPort(t, c.port()))
		}
		if !strings.Contains(dump, fmt.Sprintf("actions=output:%d", of[c.port()])) ||
			!strings.Contains(dump, fmt.Sprintf("in_port=%d", of[c.port()])) {
			t.Fatalf("ofport %d of %s not substituted in flows:\n%s", of[c.port()], c.port(), dump)
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
