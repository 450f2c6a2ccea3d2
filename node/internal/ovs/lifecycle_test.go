package ovs

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

func TestRemoveContainersAndFailedPort(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newApplier(t, l, h)
	// c1 and c2 are managed sandboxes, c3 lives in a user namespace made by
	// the test, c4 names a namespace path that does not exist.
	user := l.NewNetns(t, "user3")
	c1, c2 := ctr{n: 1, host: "h1"}, ctr{n: 2, host: "h1"}
	c3 := ctr{n: 3, host: "h1", netns: "/run/netns/" + user}
	c4 := ctr{n: 4, host: "h1", netns: "/run/netns/" + l.Prefix() + "no-such-netns"}
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
	if _, err := os.Stat(c4.netns); !os.IsNotExist(err) {
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
			t.Errorf("sandbox of %s left (%v)", c.name(), err)
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
	a := newApplier(t, l, h)
	c1, c2 := ctr{n: 1, host: "h1"}, ctr{n: 2, host: "h1"}
	p := program("h1", 1, []ctr{c1, c2}, nil, "geneve")
	apply(t, a, p)
	before := len(flows(t, h))
	old := a.Generation()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type pingOut struct {
		r   lab.PingResult
		err error
	}
	done := make(chan pingOut, 1)
	go func() {
		r, err := lab.Ping(ctx, sandbox(l, h, c1), c2.ip(), 300, 10*time.Millisecond)
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
	gen := a.Generation()
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
	if b := newApplier(t, l, h); b.Generation() != gen {
		t.Fatalf("new applier generation %d, want %d", b.Generation(), gen)
	}
}

var cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)
