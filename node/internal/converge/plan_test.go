package converge

import (
	"slices"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// names are the port names of cs.
func names(cs []openapi.ContainerPort) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestPlanLinks: which links an apply converges, and when, without a host:
// everything on a full pass; on a later one only what changed, with a new
// container's link left until its flows are in when the apply goes by
// delta; a removal (and only a removal, or a full pass) prunes.
func TestPlanLinks(t *testing.T) {
	c1, c2, c3 := ctr{N: 1, Host: "h1"}.ContainerPort(), ctr{N: 2, Host: "h1"}.ContainerPort(), ctr{N: 3, Host: "h1"}.ContainerPort()
	prog := func(cs ...openapi.ContainerPort) *openapi.Program { return &openapi.Program{Containers: cs} }
	var h Host
	p1 := prog(c1, c2)

	ls := h.planLinks(p1, nil, false, true, map[string]string{})
	if got := names(ls.now); !slices.Equal(got, []string{"vc1", "vc2"}) || len(ls.later) != 0 || !ls.prune {
		t.Fatalf("first, full: now %v later %v prune %v; want both now, prune", got, names(ls.later), ls.prune)
	}
	if !ls.keepSandboxes["c1"] || !ls.keepPorts["vc2"] {
		t.Fatalf("keep %v %v", ls.keepPorts, ls.keepSandboxes)
	}
	// As ensureLink records them, then the same program again.
	h.checkedLinks["vc1"], h.checkedLinks["vc2"] = c1, c2
	h.last = &lastApply{prog: p1}
	if ls := h.planLinks(p1, nil, false, false, map[string]string{}); len(ls.now)+len(ls.later) != 0 || ls.prune || len(ls.touched) != 0 {
		t.Fatalf("same program: now %v later %v prune %v; want nothing", names(ls.now), names(ls.later), ls.prune)
	}

	// c3 added by a delta: its link waits for its flows; c2 changed (a new
	// MAC): converged now.
	c2b := c2
	c2b.MAC = "02:00:00:00:00:22"
	p2 := prog(c1, c2b, c3)
	d := &openapi.ProgramDelta{AddContainers: []openapi.ContainerPort{c2b, c3}, RemoveContainers: []string{"vc2"}}
	ls = h.planLinks(p2, d, true, false, map[string]string{})
	if !slices.Equal(names(ls.now), []string{"vc2"}) || !slices.Equal(names(ls.later), []string{"vc3"}) || ls.prune {
		t.Fatalf("delta: now %v later %v prune %v; want vc2 now, vc3 later, no prune", names(ls.now), names(ls.later), ls.prune)
	}
	// Without the delta path, the new link is made first, like any other.
	ls = h.planLinks(p2, d, false, false, map[string]string{})
	if !slices.Equal(names(ls.now), []string{"vc2", "vc3"}) || len(ls.later) != 0 {
		t.Fatalf("whole program: now %v later %v; want vc2, vc3 now", names(ls.now), names(ls.later))
	}

	// A failed port is not converged, and is checked again next time.
	h.checkedLinks["vc2"], h.checkedLinks["vc3"] = c2b, c3
	h.last = &lastApply{prog: p2}
	ls = h.planLinks(p2, nil, false, false, map[string]string{"vc3": "invalid"})
	if len(ls.now)+len(ls.later) != 0 {
		t.Fatalf("failed port: now %v later %v", names(ls.now), names(ls.later))
	}
	if _, ok := h.checkedLinks["vc3"]; ok {
		t.Fatal("a failed port's link stays trusted")
	}

	// c1 removed: prune, and it is forgotten.
	h.last = &lastApply{prog: p2}
	ls = h.planLinks(prog(c2b, c3), nil, false, false, map[string]string{})
	if !ls.prune || ls.keepPorts["vc1"] {
		t.Fatalf("removal: prune %v keep %v", ls.prune, ls.keepPorts)
	}
	if _, ok := h.checkedLinks["vc1"]; ok {
		t.Fatal("a removed port's link stays trusted")
	}
	if !slices.Equal(names(ls.now), []string{"vc3"}) {
		t.Fatalf("removal: now %v; want vc3 (failed last time)", names(ls.now))
	}
}

// TestStatusesReuseKnownLinks: a port's report takes its ofport from the
// switch, its error from failed, and a container link's state from known
// without asking the kernel (a Host without links would panic if it did).
func TestStatusesReuseKnownLinks(t *testing.T) {
	var h Host
	p := &openapi.Program{
		Tunnels:    []openapi.TunnelPort{{Name: "tun-h2"}, {Name: "tun-h3"}},
		Containers: []openapi.ContainerPort{{Name: "vc1", Container: "c1"}, {Name: "vc2", Container: "c2"}},
	}
	of := map[string]int{"tun-h2": 5, "vc1": 7}
	got := h.statuses(p, func(n string) int { return of[n] }, map[string]string{"vc2": "OVS: no device"}, map[string]bool{"vc1": true, "vc2": true})
	want := []openapi.PortStatus{
		{Name: "tun-h2", OFPort: 5, Up: true},
		{Name: "tun-h3"},
		{Name: "vc1", Container: "c1", OFPort: 7, Up: true},
		{Name: "vc2", Container: "c2", Error: "OVS: no device"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("statuses\n%+v\nwant\n%+v", got, want)
	}
	h.last = &lastApply{ports: want}
	if k := h.linksUnchanged(false, map[string]bool{}); !k["vc1"] || k["vc2"] || k["tun-h3"] {
		t.Fatalf("linksUnchanged %v: want vc1 only (up, no error)", k)
	}
	if k := h.linksUnchanged(true, nil); k != nil {
		t.Fatalf("full pass: %v, want nil", k)
	}
}
