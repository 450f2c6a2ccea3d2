package converge

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// One port that failed before OVSDB (its netns path does not exist) does
// not turn off the fast path: later applies with the same ports skip
// OVSDB. Once the port is fixed, one apply plans it in OVSDB, and the
// fast path resumes.
func TestFastPathWithFailedPort(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	late := l.Prefix() + "late4"
	c1, c4 := ctr{N: 1, Host: "h1"}, ctr{N: 4, Host: "h1", Netns: "/run/netns/" + late}
	rev := int64(0)
	applyRev := func(extra int) ApplyResult {
		rev++
		p := program("h1", rev, []ctr{c1, c4}, nil, "geneve")
		for i := range extra {
			p.Flows = append(p.Flows, openapi.Flow{Table: 5, Priority: 10 + i, Cookie: 0xe000, Match: "ip", Actions: "drop"})
		}
		return apply(t, a, p)
	}
	res := applyRev(0)
	if !strings.Contains(portErrors(res)["vc4"], "late4") || !res.OVSDBRead {
		t.Fatalf("first apply: errors %v, OVSDB read %v", portErrors(res), res.OVSDBRead)
	}
	for i := 1; i <= 2; i++ {
		res = applyRev(i) // new flows, same ports
		if res.OVSDBRead || res.OpenFlow != "delta" {
			t.Fatalf("apply %d with vc4 still failing: OVSDB read %v (want the fast path), openflow %s", rev, res.OVSDBRead, res.OpenFlow)
		}
		if !strings.Contains(portErrors(res)["vc4"], "late4") || portErrors(res)["vc1"] != "" {
			t.Fatalf("apply %d: port errors %v", rev, portErrors(res))
		}
	}
	l.NewNetns(t, "late4")
	if res = applyRev(2); !res.OVSDBRead || len(portErrors(res)) != 0 {
		t.Fatalf("apply after the fix: OVSDB read %v, errors %v", res.OVSDBRead, portErrors(res))
	}
	if res = applyRev(3); res.OVSDBRead {
		t.Fatalf("the fast path did not resume after the fix")
	}
	ping(t, late, c1)
}

// When ovs-vswitchd restarts, the applier notices at once (its OpenFlow
// connection breaks), sets flow-restore-wait so that the new vswitchd does
// not forward with an empty table, reports the restart, and the next
// Apply installs every flow and clears flow-restore-wait.
func TestRestartWatch(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	p := program("h1", 1, []ctr{c1, c2}, nil, "geneve")
	apply(t, a, p)
	want := flows(t, h)
	// The applier watches br-int once it exists (the first apply made it).
	deadline := time.Now().Add(30 * time.Second)
	for !a.sw.Inspect().Watching {
		if time.Now().After(deadline) {
			t.Fatal("the applier is not watching br-int 30 s after making it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case why := <-a.sw.Restarts():
		t.Fatalf("restart reported before any: %s", why)
	default:
	}

	h.RestartOVS(t)
	select {
	case why := <-a.sw.Restarts():
		t.Logf("restart reported: %s", why)
	case <-time.After(60 * time.Second):
		t.Fatal("no restart reported within 60 s")
	}
	frw := func() bool {
		return strings.Contains(h.VSCtl(t, "get", "Open_vSwitch", ".", "other_config"), `flow-restore-wait="true"`)
	}
	if !frw() {
		t.Fatalf("flow-restore-wait not set after the restart")
	}
	res := apply(t, a, p)
	if res.OpenFlow != "full" || !res.OVSDBRead || res.Degraded() {
		t.Fatalf("apply after the restart: openflow %s, OVSDB read %v, ports %+v", res.OpenFlow, res.OVSDBRead, res.Ports)
	}
	if frw() {
		t.Fatalf("flow-restore-wait left set after the restore")
	}
	if got := flows(t, h); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("flows after the restore:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ping(t, sandbox(l, h, c1), c2)
}
