package converge

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

func TestRemoveContainersAndFailedPort(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	// c1 and c2 are managed sandboxes, c3 lives in a user namespace made by
	// the test, c4 names a namespace path that does not exist.
	user := l.NewNetns(t, "user3")
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	c3 := ctr{N: 3, Host: "h1", Netns: "/run/netns/" + user}
	c4 := ctr{N: 4, Host: "h1", Netns: "/run/netns/" + l.Prefix() + "no-such-netns"}
	p := program("h1", 1, []ctr{c1, c2, c3, c4}, nil, "geneve")

	res := apply(t, a, p)
	errs := portErrors(res)
	if len(errs) != 1 || !strings.Contains(errs["vc4"], "no-such-netns") {
		t.Fatalf("port errors %v, want only vc4 failing with the missing path", errs)
	}
	var dropped []string
	for _, d := range res.Dropped {
		dropped = append(dropped, d.String())
		if !strings.Contains(d.Reason, "vc4") {
			t.Errorf("dropped for another reason: %s", d)
		}
	}
	if len(dropped) != 2 { // vc4's ingress and its forwarding flow
		t.Fatalf("dropped %v", dropped)
	}
	if _, err := os.Stat(c4.Netns); !os.IsNotExist(err) {
		t.Fatalf("the missing netns path was created: %v", err)
	}
	ping(t, sandbox(l, h, c1), c2)
	ping(t, user, c1)
	if o := observe(t, a); !driftHas(o, "port vc4 failed") {
		t.Fatalf("failed port is not reported for retry: %v", o.Drift)
	}

	// Remove every container.
	res = apply(t, a, program("h1", 2, nil, nil, "geneve"))
	if res.Degraded() {
		t.Fatalf("empty program degraded: %+v", res)
	}
	if got := ports(t, h); len(got) != 0 {
		t.Fatalf("ports left: %v", got)
	}
	for _, c := range []ctr{c1, c2} {
		if _, err := os.Stat("/run/netns/" + sandbox(l, h, c)); !os.IsNotExist(err) {
			t.Errorf("sandbox of %s left (%v)", c.Name(), err)
		}
	}
	if _, err := os.Stat("/run/netns/" + user); err != nil {
		t.Fatalf("user netns deleted: %v", err)
	}
	if out := h.MustRun(t, "ip", "-o", "link", "show"); strings.Contains(out, "vc") {
		t.Fatalf("veths left:\n%s", out)
	}
	if out, err := lab.RunIn(t.Context(), user, "ip", "-o", "link", "show"); err != nil || strings.Contains(out, "eth0") {
		t.Fatalf("eth0 left in user netns:\n%s", out)
	}
	if n := len(flows(t, h)); n != 0 {
		t.Fatalf("%d flows left", n)
	}
}

func TestNewGenerationNoLoss(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	p := program("h1", 1, []ctr{c1, c2}, nil, "geneve")
	apply(t, a, p)
	before := len(flows(t, h))
	old := a.sw.Generation()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type pingOut struct {
		r   lab.PingResult
		err error
	}
	done := make(chan pingOut, 1)
	go func() {
		r, err := lab.Ping(ctx, sandbox(l, h, c1), c2.IP(), 300, 10*time.Millisecond)
		done <- pingOut{r, err}
	}()
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 3; i++ { // three restarts in a row, as an agent crash loop would
		gen, err := a.NewGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res := apply(t, a, p)
		if res.OpenFlow != "full" || res.Generation != gen {
			t.Fatalf("apply after NewGeneration: mode %s, generation %d, want full and %d", res.OpenFlow, res.Generation, gen)
		}
		time.Sleep(300 * time.Millisecond)
	}
	out := <-done
	if out.err != nil || out.r.Loss != 0 {
		t.Fatalf("ping during generation change: loss %.1f%% (%d/%d), %v", out.r.Loss, out.r.Received, out.r.Sent, out.err)
	}
	t.Logf("ping: %d/%d, rtt avg %v max %v", out.r.Received, out.r.Sent, out.r.Avg, out.r.Max)
	after := flows(t, h)
	if len(after) != before {
		t.Fatalf("%d flows before, %d after", before, len(after))
	}
	gen := a.sw.Generation()
	if gen != old+3 {
		t.Fatalf("generation %d, want %d", gen, old+3)
	}
	if got := strings.TrimSpace(h.VSCtl(t, "get", "Bridge", "br-int", "external_ids:switchyard-generation")); got != fmt.Sprintf("%q", fmt.Sprint(gen)) {
		t.Fatalf("stored generation %s, want %d", got, gen)
	}
	for _, f := range after {
		m := cookieRE.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("no cookie in %s", f)
		}
		if c, _ := strconv.ParseUint(m[1], 16, 64); uint16(c>>48) != gen {
			t.Fatalf("flow of an old generation left: %s", f)
		}
	}
	// A fresh applier (agent restart) picks up the stored generation.
	if b := newHost(t, l, h); b.sw.Generation() != gen {
		t.Fatalf("new applier generation %d, want %d", b.sw.Generation(), gen)
	}
}

var cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)

func TestGroupsAndBadFlows(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2, c3 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}, ctr{N: 3, Host: "h1"}
	base := program("h1", 1, []ctr{c1, c2, c3}, nil, "geneve")
	// 10.60.0.100 is an "anycast" address answered through a select group
	// by c2 or c3 (both have it as a secondary address).
	withGroup := func(rev int64, buckets string, bad bool) *openapi.Program {
		p := *base
		p.Revision = rev
		p.Flows = append(slices.Clone(base.Flows),
			openapi.Flow{Table: 1, Priority: 200, Cookie: 0xf001, Match: "ip,nw_dst=10.60.0.100", Actions: "group:7"},
			arpResponder(ctr{N: 100}))
		p.Groups = []openapi.Group{{ID: 7, Spec: "type=select,selection_method=hash,fields(ip_src)," + buckets}}
		if bad {
			p.Flows = append(p.Flows, openapi.Flow{Table: 3, Priority: 1, Cookie: 0xbad, Actions: "frobnicate:1"})
		}
		return &p
	}
	p1 := withGroup(1, "bucket=mod_dl_dst:"+c2.MAC()+",output:${port:vc2}", true)
	res := apply(t, a, p1)
	if len(res.Dropped) != 1 || res.Dropped[0].Flow == nil || res.Dropped[0].Flow.Cookie != 0xbad ||
		!strings.Contains(res.Dropped[0].Reason, "frobnicate") {
		t.Fatalf("dropped %v, want the bad flow with ovs-ofctl's reason", res.Dropped)
	}
	if n := len(flows(t, h)); n != len(p1.Flows)-1 {
		t.Fatalf("%d flows installed, want %d", n, len(p1.Flows)-1)
	}
	// Apply keeps eth0 at exactly the program's address, so the anycast
	// address is added again after every apply.
	anycast := func() {
		for _, c := range []ctr{c2, c3} {
			h.MustRun(t, "ip", "netns", "exec", sandbox(l, h, c), "ip", "addr", "replace", "10.60.0.100/32", "dev", "eth0")
		}
	}
	anycast()
	ping(t, sandbox(l, h, c1), ctr{N: 100})
	g := h.OFCtl(t, "dump-groups", "br-int")
	if !strings.Contains(g, "group_id=7,type=select") || strings.Count(g, "bucket=") != 1 {
		t.Fatalf("groups:\n%s", g)
	}
	// Change the group (delta: group modify), then drop it (group deleted
	// after the flow that uses it). This group's form (hash on fields,
	// buckets without ids or weights) is one the native encoder declines:
	// one ovs-ofctl bundle. What the drift check compares with is read
	// over the applier's OpenFlow connection (groups.go), no second run
	// (it was dump-groups: 2 runs).
	p2 := withGroup(2, "bucket=mod_dl_dst:"+c2.MAC()+",output:${port:vc2},bucket=mod_dl_dst:"+c3.MAC()+",output:${port:vc3}", false)
	if res := apply(t, a, p2); res.OpenFlow != "delta" || res.OFCtlRuns != 1 || len(res.Dropped) != 0 {
		t.Fatalf("group change: mode %s, %d ovs-ofctl runs, dropped %v", res.OpenFlow, res.OFCtlRuns, res.Dropped)
	}
	if g := h.OFCtl(t, "dump-groups", "br-int"); strings.Count(g, "bucket=") != 2 {
		t.Fatalf("groups after modify:\n%s", g)
	}
	anycast()
	ping(t, sandbox(l, h, c1), ctr{N: 100})
	if o := observe(t, a); len(o.Drift) != 2 || !driftHas(o, "extra address 10.60.0.100/32") {
		t.Fatalf("drift: %v, want only the anycast addresses", o.Drift)
	}
	h.OFCtl(t, "del-groups", "br-int", "group_id=7")
	if o := observe(t, a); !driftHas(o, "group 7 missing") {
		t.Fatalf("deleted group not seen: %v", o.Drift)
	}
	res = apply(t, a, p2)
	if g := h.OFCtl(t, "dump-groups", "br-int"); strings.Count(g, "bucket=") != 2 || res.OpenFlow != "full" {
		t.Fatalf("group not repaired (%s):\n%s", res.OpenFlow, g)
	}
	res = apply(t, a, base)
	if g := h.OFCtl(t, "dump-groups", "br-int"); strings.Contains(g, "group_id=7") || res.OpenFlow != "delta" {
		t.Fatalf("group not removed (%s):\n%s", res.OpenFlow, g)
	}
	if n := len(flows(t, h)); n != len(base.Flows) {
		t.Fatalf("%d flows, want %d", n, len(base.Flows))
	}
}

func TestOVSRestart(t *testing.T) {
	l := newLab(t, 2, "geneve")
	h1, h2 := l.Hosts[0], l.Hosts[1]
	a1, a2 := newHost(t, l, h1), newHost(t, l, h2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h2"}
	all := []ctr{c1, c2}
	ps := []*openapi.Program{
		program("h1", 1, all, map[string]string{"h2": h2.UnderlayAddr.Addr().String()}, "geneve"),
		program("h2", 1, all, map[string]string{"h1": h1.UnderlayAddr.Addr().String()}, "geneve"),
	}
	for i, a := range []*Host{a1, a2} {
		h := l.Hosts[i]
		if err := a.EnsureUnderlay(ctx, h.UnderlayIface, h.UnderlayAddr); err != nil {
			t.Fatal(err)
		}
		apply(t, a, ps[i])
	}
	ping(t, sandbox(l, h1, c1), c2)
	want := flows(t, h1)

	// ovs-vswitchd restarts: flows and the br-phy tap (with the underlay
	// address) are gone, OVSDB survives.
	h1.RestartOVS(t)
	// (Seen either by the flow comparison or, once the applier's OpenFlow
	// connection to br-int noticed the restart, as unknown flows.)
	if o := observe(t, a1); !driftHas(o, "flow missing") && !driftHas(o, "flows: not known") {
		t.Fatalf("lost flows not seen as drift: %v", o.Drift)
	}
	if err := a1.EnsureUnderlay(ctx, h1.UnderlayIface, h1.UnderlayAddr); err != nil {
		t.Fatal(err)
	}
	if res := apply(t, a1, ps[0]); res.OpenFlow != "full" || res.Degraded() {
		t.Fatalf("apply after restart: %s, %+v", res.OpenFlow, res.Ports)
	}
	if got := flows(t, h1); !slices.Equal(got, want) {
		t.Fatalf("flows after restart:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ping(t, sandbox(l, h1, c1), c2)
	if o := observe(t, a1); o.Drifted() {
		t.Fatalf("drift after repair: %v", o.Drift)
	}
}
