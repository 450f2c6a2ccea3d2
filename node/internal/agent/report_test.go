package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Heartbeats that follow an accepted report leave the ports out
// (portsUnchanged); a new program that adds a container port makes the next
// report list that port only (portsDelta); any report that failed makes the
// next one carry every port again.
func TestReportsLeaveUnchangedPortsOut(t *testing.T) {
	c := newFakeController(t)
	dp := newFakeDatapath()
	p1 := prog(1)
	p1.Containers = []openapi.ContainerPort{{Name: "vc1", Container: "c1", ID: "id1"}}
	c.publish(p1)
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
	// next reads reports until one of rev and wants it to list names,
	// as a delta or not.
	next := func(rev int64, delta bool, names ...string) {
		t.Helper()
		for {
			st := <-c.reported
			if st.AppliedRevision != rev {
				continue
			}
			var got []string
			for _, p := range st.Ports {
				got = append(got, p.Name)
			}
			if st.PortsUnchanged || st.PortsDelta != delta || !slices.Equal(got, names) {
				t.Fatalf("report of revision %d: unchanged=%v delta=%v ports=%v, want delta=%v %v", rev, st.PortsUnchanged, st.PortsDelta, got, delta, names)
			}
			return
		}
	}
	next(1, false, "vc1")
	waitUnchanged(1)
	// A program that adds a container port: that port only.
	p2 := prog(2)
	p2.Containers = []openapi.ContainerPort{{Name: "vc1", Container: "c1", ID: "id1"}, {Name: "vc2", Container: "c2", ID: "id2"}}
	c.publish(p2)
	next(2, true, "vc2")
	waitUnchanged(2)
	// A report the controller refused: the next carries every port.
	c.mu.Lock()
	c.failStatus = 1
	c.mu.Unlock()
	for st := <-c.reported; !st.PortsUnchanged; st = <-c.reported {
	}
	// That unchanged report failed (503): the next one is full.
	next(2, false, "vc1", "vc2")
	waitUnchanged(2)
}

// A report lists what the controller does not have: every port when its
// view is unknown, old or after a whole program; else the ports that
// changed or that an apply added since, and the failed ones.
func TestPortsSentReport(t *testing.T) {
	now := time.Now()
	a := openapi.PortStatus{Name: "a", ContainerID: "ida", OFPort: 3, Up: true}
	b := openapi.PortStatus{Name: "b", ContainerID: "idb", OFPort: 4, Up: true}
	bad := openapi.PortStatus{Name: "x", ContainerID: "idx", Error: "no netns"}
	all := []openapi.PortStatus{a, b, bad}
	if r := (&portsSent{}).report(0, 0, nil, all, now); r.unchanged || r.delta || len(r.ports) != 3 {
		t.Fatalf("nothing sent yet: %+v, want every port", r)
	}
	var s portsSent
	s.accepted(portsReport{ports: all}, 4, all, now)
	names := func(ps []openapi.PortStatus) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	a2 := a
	a2.OFPort = 9
	bDown := b
	bDown.Up = false
	bad2 := bad
	bad2.Error = "link failed"
	c := openapi.PortStatus{Name: "c", ContainerID: "idc", OFPort: 5, Up: true}
	for name, tc := range map[string]struct {
		specs, wholeAt uint64
		touched        map[string]uint64
		all            []openapi.PortStatus
		at             time.Time
		want           []string
		unchanged      bool
		delta          bool
	}{
		"nothing moved":           {4, 0, nil, all, now.Add(time.Second), []string{"x"}, true, false},
		"a port removed":          {5, 0, nil, []openapi.PortStatus{a, bad}, now, []string{"x"}, true, false},
		"ofport moved":            {4, 0, nil, []openapi.PortStatus{a2, b, bad}, now, []string{"a", "x"}, false, true},
		"port went down":          {4, 0, nil, []openapi.PortStatus{a, bDown, bad}, now, []string{"b", "x"}, false, true},
		"another error":           {4, 0, nil, []openapi.PortStatus{a, b, bad2}, now, []string{"x"}, false, true},
		"a port more":             {5, 0, map[string]uint64{"c": 5}, append(all[:3:3], c), now, []string{"x", "c"}, false, true},
		"touched, same status":    {5, 0, map[string]uint64{"b": 5}, all, now, []string{"b", "x"}, false, true},
		"touched before the view": {5, 0, map[string]uint64{"b": 4}, all, now, []string{"x"}, true, false},
		"a whole program":         {5, 5, nil, all, now, []string{"a", "b", "x"}, false, false},
		"a minute later":          {4, 0, nil, all, now.Add(fullPortsEvery), []string{"a", "b", "x"}, false, false},
	} {
		r := s.report(tc.specs, tc.wholeAt, tc.touched, tc.all, tc.at)
		if got := names(r.ports); !slices.Equal(got, tc.want) || r.unchanged != tc.unchanged || r.delta != tc.delta {
			t.Errorf("%s: ports %v unchanged=%v delta=%v, want %v %v %v", name, got, r.unchanged, r.delta, tc.want, tc.unchanged, tc.delta)
		}
	}
	// A delta accepted: the view is the whole list, the last full report's
	// time stays.
	s2 := s
	s2.accepted(portsReport{ports: []openapi.PortStatus{a2}, delta: true}, 6, []openapi.PortStatus{a2, b, bad}, now.Add(time.Second))
	if !s2.full.Equal(now) || s2.specs != 6 {
		t.Errorf("after a delta: full %v specs %d", s2.full, s2.specs)
	}
	if r := s2.report(6, 0, nil, []openapi.PortStatus{a2, b, bad}, now.Add(2*time.Second)); !r.unchanged {
		t.Errorf("after the delta, the same ports: %+v, want unchanged", r)
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
