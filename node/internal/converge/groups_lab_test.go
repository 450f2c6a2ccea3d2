package converge

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// lbGroup is a select group as the compiler writes them: per bucket a
// learn (affinity) and a ct(commit,nat) to a backend; the last bucket also
// names a port, which the applier resolves.
func lbGroup(id uint32, w1, w2 int) openapi.Group {
	learn := "learn(table=6,idle_timeout=600,priority=100,cookie=0x5e1ea2ed,delete_learned,eth_type=0x800,nw_proto=6," +
		"NXM_NX_REG0[],NXM_OF_IP_SRC[],NXM_OF_IP_DST[],NXM_OF_TCP_DST[],load:0x0a3c0002->NXM_NX_REG3[],load:0x50->NXM_NX_REG4[0..15])"
	return openapi.Group{ID: id, Spec: fmt.Sprintf("type=select,"+
		"bucket=bucket_id:0,weight:%d,actions=%s,ct(commit,zone=NXM_NX_REG0[0..15],nat(dst=10.60.0.2:80),table=8),"+
		"bucket=bucket_id:1,weight:%d,actions=ct(commit,zone=NXM_NX_REG0[0..15],nat(dst=10.60.0.3:8080),table=8),output:${port:vc2}", w1, learn, w2)}
}

// groupDump reads br-int's groups with `ovs-ofctl dump-groups` (the
// switch reads them natively: package ovs, groups.go).
func groupDump(t *testing.T, h *lab.Host) map[uint32]string {
	t.Helper()
	g, err := parseGroupDump(h.OFCtl(t, "dump-groups", "br-int"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGroupsAndLearnedFlows, on a real OVS: select groups with ct/nat and
// learn buckets go in, change (weights) while a flow uses them, and go; a
// group changed by hand is drift and is repaired; a flow OVS learned is
// neither drift nor removed by a delta apply.
func TestGroupsAndLearnedFlows(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: h.Name}, ctr{N: 2, Host: h.Name}
	base := func(rev int64, groups ...openapi.Group) *openapi.Program {
		p := program(h.Name, rev, []ctr{c1, c2}, nil, "geneve")
		p.Groups = groups
		for _, g := range groups {
			p.Flows = append(p.Flows, openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf000 + uint64(g.ID),
				Match: fmt.Sprintf("ct_state=+new+trk,tcp,nw_dst=10.96.0.%d,tp_dst=80", g.ID), Actions: fmt.Sprintf("group:%d", g.ID)})
		}
		// The learning flow: UDP to port 7777 learns a flow in table 6.
		p.Flows = append(p.Flows, openapi.Flow{Table: 0, Priority: 150, Cookie: 0xf100, Match: "udp,tp_dst=7777",
			Actions: "learn(table=6,idle_timeout=600,priority=100,cookie=0x5e1ea2ed,eth_type=0x800,NXM_OF_IP_SRC[],load:1->NXM_NX_REG3[]),resubmit(,1)"})
		return p
	}
	r := apply(t, a, base(1, lbGroup(33, 100, 50), lbGroup(34, 10, 10)))
	if r.Degraded() {
		t.Fatalf("degraded: %+v", r.Dropped)
	}
	g := groupDump(t, h)
	vc2 := h.OFPort(t, "vc2")
	if len(g) != 2 || !strings.Contains(g[33], "weight:50") || !strings.Contains(g[33], fmt.Sprintf("output:%d", vc2)) ||
		!strings.Contains(g[33], "nat(dst=10.60.0.3:8080)") || !strings.Contains(g[33], "learn(") {
		t.Fatalf("groups after the first apply:\n%v", g)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift right after the apply: %v", o.Drift)
	}

	// Modify the buckets of a group a flow uses, through the delta path.
	r = apply(t, a, base(2, lbGroup(33, 70, 30), lbGroup(34, 10, 10)))
	if r.Degraded() || r.OpenFlow != "delta" {
		t.Fatalf("modify: %s %+v, want one delta bundle", r.OpenFlow, r.Dropped)
	}
	g = groupDump(t, h)
	if !strings.Contains(g[33], "weight:70") || !strings.Contains(g[33], "weight:30") {
		t.Fatalf("group 33 after the modify: %s", g[33])
	}
	if fl := strings.Join(flows(t, h), "\n"); !strings.Contains(fl, "actions=group:33") {
		t.Fatalf("the flow using group 33 is gone:\n%s", fl)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the modify: %v", o.Drift)
	}

	// A group changed by hand is drift, and the next apply repairs it.
	h.OFCtl(t, "mod-group", "br-int", "group_id=34,type=select,bucket=bucket_id:0,weight:1,actions=drop")
	o := observe(t, a)
	if !o.Drifted() || !strings.Contains(strings.Join(o.Drift, "\n"), "group 34 changed") {
		t.Fatalf("hand-changed group not seen: %v", o.Drift)
	}
	apply(t, a, base(2, lbGroup(33, 70, 30), lbGroup(34, 10, 10)))
	if g := groupDump(t, h); !strings.Contains(g[34], "nat(dst=10.60.0.2:80)") {
		t.Fatalf("group 34 not repaired: %s", g[34])
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the repair: %v", o.Drift)
	}

	// A learned flow: neither drift nor touched by a delta apply.
	// A real packet: UDP from c1 to c2's port 7777.
	err := link.InNetnsPath("/run/netns/"+sandbox(l, h, c1), func() error {
		u, err := net.Dial("udp", c2.IP()+":7777")
		if err != nil {
			return err
		}
		defer u.Close()
		_, err = u.Write([]byte("learn me"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	learned := func() bool {
		return strings.Contains(h.OFCtl(t, "dump-flows", "br-int", "table=6"), "cookie=0x5e1ea2ed")
	}
	waitUntil(t, "a flow learned from the packet", learned)
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("a learned flow counts as drift: %v", o.Drift)
	}
	p3 := base(3, lbGroup(33, 70, 30), lbGroup(34, 10, 10))
	p3.Flows = append(p3.Flows, openapi.Flow{Table: 1, Priority: 10, Cookie: 0xf200, Match: "ip", Actions: "drop"})
	if r := apply(t, a, p3); r.OpenFlow != "delta" {
		t.Fatalf("apply with a learned flow present: %s, want a delta", r.OpenFlow)
	}
	if !learned() {
		t.Fatal("the learned flow was removed by a delta apply")
	}

	// Removing a group (and the flow using it).
	r = apply(t, a, base(4, lbGroup(33, 70, 30)))
	if r.Degraded() || r.OpenFlow != "delta" {
		t.Fatalf("remove: %+v", r.Dropped)
	}
	if g := groupDump(t, h); len(g) != 1 || g[33] == "" {
		t.Fatalf("groups after removing 34: %v", g)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after removing a group: %v", o.Drift)
	}
	if !learned() {
		t.Fatal("the learned flow was removed")
	}
}

// parseGroupDump maps group id to its line in `ovs-ofctl dump-groups`
// output ("group_id=N,type=...,bucket=...").
func parseGroupDump(out string) (map[uint32]string, error) {
	g := map[uint32]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "group_id=") {
			continue
		}
		rest := strings.TrimPrefix(line, "group_id=")
		end := strings.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest)
		}
		id, err := strconv.ParseUint(rest[:end], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("unparsable group %q", line)
		}
		g[uint32(id)] = line
	}
	return g, nil
}
