package agent

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Heartbeats that follow an accepted report leave the ports out
// (portsUnchanged); a new program whose container ports changed, and any
// report that failed, make the next report carry every port again.
func TestReportsLeaveUnchangedPortsOut(t *testing.T) {
	c := newFakeController(t)
	dp := newFakeDatapath()
	c.publish(prog(1))
	startAgent(t, c, dp, Config{Heartbeat: 10 * time.Millisecond})
	// until reports an unchanged report (ports out) of revision rev.
	waitUnchanged := func(rev int64) {
		t.Helper()
		for {
			st := <-c.reported
			if st.AppliedRevision == rev && st.PortsUnchanged {
				if len(st.Ports) != 0 {
					t.Fatalf("an unchanged report lists %v", st.Ports)
				}
				return
			}
		}
	}
	// full reads reports until one of rev and wants it to carry every port.
	full := func(rev int64) {
		t.Helper()
		for {
			st := <-c.reported
			if st.AppliedRevision != rev {
				continue
			}
			if st.PortsUnchanged || len(st.Ports) != 1 || st.Ports[0].Name != "vc1" || !st.Ports[0].Up {
				t.Fatalf("report of revision %d: unchanged=%v ports=%v, want every port", rev, st.PortsUnchanged, st.Ports)
			}
			return
		}
	}
	full(1)
	waitUnchanged(1)
	// A program whose container ports changed: every port again.
	p2 := prog(2)
	p2.Containers = []openapi.ContainerPort{{Name: "vc1", Container: "c1", ID: "id1"}}
	c.publish(p2)
	full(2)
	waitUnchanged(2)
	// A report the controller refused: the next carries every port.
	c.mu.Lock()
	c.failStatus = 1
	c.mu.Unlock()
	for st := <-c.reported; !st.PortsUnchanged; st = <-c.reported {
	}
	// That unchanged report failed (503): the next one is full.
	full(2)
	waitUnchanged(2)
}

// unchanged needs the same specs, the same ports and a recent full report.
func TestPortsSentUnchanged(t *testing.T) {
	now := time.Now()
	ports := []openapi.PortStatus{{Name: "a", OFPort: 3, Up: true}}
	s := portsSent{valid: true, specs: 4, ports: ports, at: now}
	if !s.unchanged(4, []openapi.PortStatus{{Name: "a", OFPort: 3, Up: true}}, now.Add(time.Second)) {
		t.Error("same specs and ports: want unchanged")
	}
	for name, tc := range map[string]struct {
		specs uint64
		ports []openapi.PortStatus
		at    time.Time
	}{
		"specs moved":    {5, ports, now},
		"ofport moved":   {4, []openapi.PortStatus{{Name: "a", OFPort: 4, Up: true}}, now},
		"port went down": {4, []openapi.PortStatus{{Name: "a", OFPort: 3}}, now},
		"a port more":    {4, append(ports[:1:1], openapi.PortStatus{Name: "b"}), now},
		"a minute later": {4, ports, now.Add(fullPortsEvery)},
	} {
		if s.unchanged(tc.specs, tc.ports, tc.at) {
			t.Errorf("%s: want every port sent", name)
		}
	}
	if (&portsSent{}).unchanged(0, nil, now) {
		t.Error("nothing sent yet: want every port")
	}
	if got := failedOnly([]openapi.PortStatus{{Name: "a"}, {Name: "b", Error: "x"}}); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("failedOnly: %v", got)
	}
}

// Counters are reported when they move: all of them first, after a failed
// report and once a minute, else only those that changed.
func TestCountersSentChanged(t *testing.T) {
	now := time.Now()
	a := openapi.RuleStat{Cookie: "0x1", Packets: 1, Bytes: 60}
	b := openapi.RuleStat{Cookie: "0x2", Packets: 5, Bytes: 300}
	var c countersSent
	got, all := c.changed([]openapi.RuleStat{a, b}, now)
	if !all || len(got) != 2 {
		t.Fatalf("first report: %v all=%v", got, all)
	}
	c.accepted(got, all, now)
	if got, all := c.changed([]openapi.RuleStat{a, b}, now.Add(time.Second)); all || len(got) != 0 {
		t.Fatalf("nothing moved: %v all=%v", got, all)
	}
	b2 := b
	b2.Packets++
	got, all = c.changed([]openapi.RuleStat{a, b2}, now.Add(time.Second))
	if all || len(got) != 1 || got[0] != b2 {
		t.Fatalf("one moved: %v all=%v", got, all)
	}
	c.accepted(got, all, now.Add(time.Second))
	if got, _ := c.changed([]openapi.RuleStat{a, b2}, now.Add(2*time.Second)); len(got) != 0 {
		t.Fatalf("after it was accepted: %v", got)
	}
	if got, all := c.changed([]openapi.RuleStat{a, b2}, now.Add(fullPortsEvery)); !all || len(got) != 2 {
		t.Fatalf("a minute after the full report: %v all=%v", got, all)
	}
}
