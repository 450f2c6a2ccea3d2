package converge

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// A drifted cookie that a delta touches makes the apply go full, and the
// switch ends holding exactly the program; a delta with a flow the switch
// refuses ends with the others in and the refused one reported.
func TestCheckedDeltaFallsBack(t *testing.T) {
	h, a := genHost(t)
	c1, c2, c3 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}, ctr{N: 3, Host: "h1"}
	p1 := seal(program("h1", 1, []ctr{c1, c2}, nil, "geneve"))
	apply(t, a, p1)
	// c1's ARP responder goes behind the agent's back; the next delta
	// removes c1, so its check counts c1's cookie.
	h.OFCtl(t, "del-flows", "br-int", "table=0,arp,arp_op=1,arp_tpa="+c1.IP())
	p2 := seal(program("h1", 2, []ctr{c2}, nil, "geneve"))
	if res := applyDelta(t, a, p2, progpkg.Diff(p1, p2)); res.OpenFlow != "full" {
		t.Fatalf("a delta over a drifted cookie: openflow %s, want full", res.OpenFlow)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the fallback: %v", o.Drift)
	}
	// The switch agrees again: the next change is a delta.
	p3 := seal(program("h1", 3, []ctr{c2, c3}, nil, "geneve"))
	if res := applyDelta(t, a, p3, progpkg.Diff(p2, p3)); res.OpenFlow != "delta" {
		t.Fatalf("the change after: openflow %s, want delta", res.OpenFlow)
	}

	// A flow the switch refuses, with c1's flows, in one delta.
	p4 := program("h1", 4, []ctr{c1, c2, c3}, nil, "geneve")
	p4.Flows = append(p4.Flows, openapi.Flow{Table: 9, Priority: 6, Cookie: 0xbad, Match: "reg5=1", Actions: "goto_table:3"})
	seal(p4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := a.ApplyDelta(ctx, p4, progpkg.Diff(p3, p4))
	if err != nil || res.OpenFlow != "full" || len(res.Dropped) != 1 || res.Dropped[0].Flow.Cookie != 0xbad {
		t.Fatalf("a refused flow in a delta: %v, openflow %s, dropped %v; want full, the bad flow dropped", err, res.OpenFlow, res.Dropped)
	}
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the refused flow: %v", o.Drift)
	}
}
