package converge

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// TestAffinityLearnAfterConntrack pins down, on a real OVS, where an
// affinity learn() can live. OVS (3.1, userspace datapath) installs a
// learn() inside a select group's bucket but does not execute it: a packet
// through that bucket learns nothing. A learn() in a flow of the table the
// bucket's ct(commit,nat,table=N) resumes in does learn, keyed on the
// address and port the client used (ct_nw_dst, ct_tp_dst: the VIP), with
// the backend the bucket put in reg3/reg4.
func TestAffinityLearnAfterConntrack(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: h.Name}, ctr{N: 2, Host: h.Name}
	learnIn := "learn(table=6,idle_timeout=600,priority=100,cookie=0x5e1ea2ed,delete_learned,eth_type=0x800,nw_proto=6," +
		"NXM_NX_REG0[],NXM_OF_IP_SRC[],NXM_OF_IP_DST[],NXM_OF_TCP_DST[],load:0x0a3c0002->NXM_NX_REG3[],load:0x50->NXM_NX_REG4[0..15])"
	learnAfter := "learn(table=6,idle_timeout=600,priority=100,cookie=0x5e1ea2ed,delete_learned,eth_type=0x800,nw_proto=6," +
		"NXM_NX_REG0[],NXM_OF_IP_SRC[],NXM_OF_IP_DST[]=NXM_NX_CT_NW_DST[],NXM_OF_TCP_DST[]=NXM_NX_CT_TP_DST[]," +
		"load:NXM_NX_REG3[]->NXM_NX_REG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15])"
	p := program(h.Name, 1, []ctr{c1, c2}, nil, "geneve")
	p.Groups = []openapi.Group{
		// VIP .133: learn in the bucket.
		{ID: 60, Spec: "type=select,bucket=bucket_id:0,weight:100,actions=" + learnIn + ",ct(commit,zone=1,nat(dst=10.60.0.2:80),table=8)"},
		// VIP .134: the bucket loads the backend, table 9 learns.
		{ID: 61, Spec: "type=select,bucket=bucket_id:0,weight:100,actions=load:0x0a3c0002->NXM_NX_REG3[],load:0x50->NXM_NX_REG4[0..15]," +
			"ct(commit,zone=1,nat(dst=10.60.0.2:80),table=9)"},
	}
	p.Flows = append(p.Flows, arpResponder(ctr{N: 133}), arpResponder(ctr{N: 134}),
		openapi.Flow{Table: 0, Priority: 300, Cookie: 0xf1, Match: "ct_state=-trk,tcp,nw_dst=10.60.0.128/29", Actions: "ct(table=5,zone=1,nat)"},
		openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf2, Match: "ct_state=+new+trk,tcp,nw_dst=10.60.0.133,tp_dst=80", Actions: "group:60"},
		openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf3, Match: "ct_state=+new+trk,tcp,nw_dst=10.60.0.134,tp_dst=80", Actions: "group:61"},
		openapi.Flow{Table: 9, Priority: 100, Cookie: 0xf4, Match: "ct_state=+new+trk,tcp,reg3=0x0a3c0002", Actions: learnAfter})
	if r := apply(t, a, p); r.Degraded() {
		t.Fatalf("degraded: %+v", r.Dropped)
	}
	for _, vip := range []string{"10.60.0.133", "10.60.0.134"} {
		err := link.InNetnsPath("/run/netns/"+sandbox(l, h, c1), func() error {
			// Nothing listens behind the VIP: the SYN is what matters.
			if c, err := net.DialTimeout("tcp", vip+":80", 200*time.Millisecond); err == nil {
				c.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	table6 := func() string { return h.OFCtl(t, "dump-flows", "br-int", "table=6") }
	waitUntil(t, "a flow learned after conntrack", func() bool { return strings.Contains(table6(), "nw_dst=10.60.0.134") })
	out := table6()
	if !strings.Contains(out, "cookie=0x5e1ea2ed") || !strings.Contains(out, "nw_src=10.60.0.1,nw_dst=10.60.0.134,tp_dst=80") ||
		!strings.Contains(out, "set_field:0xa3c0002->reg3") {
		t.Fatalf("learned flow:\n%s", out)
	}
	if strings.Contains(out, "nw_dst=10.60.0.133") {
		t.Logf("this OVS executes learn() in group buckets:\n%s", out)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("a learned flow counts as drift: %v", o.Drift)
	}
}
