package program

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestCompose: for random chains of programs p0..pk, patching p0 with the
// composition of the chain's deltas gives what patching with each delta in
// turn gives (content and digest, plain and tracked); one delta composes
// to itself; a broken chain is refused.
func TestCompose(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for run := 0; run < 300; run++ {
		progs := []*openapi.Program{randomProgram(r)}
		var ds []*openapi.ProgramDelta
		for k := 1 + r.IntN(8); k > 0; k-- {
			next := randomProgram(r)
			ds = append(ds, Diff(progs[len(progs)-1], next))
			progs = append(progs, next)
		}
		want := progs[0]
		for _, d := range ds {
			var err error
			if want, err = Patch(want, d); err != nil {
				t.Fatalf("run %d: step: %v", run, err)
			}
		}
		c, err := Compose(ds...)
		if err != nil {
			t.Fatalf("run %d: compose: %v", run, err)
		}
		got, err := Patch(progs[0], c)
		if err != nil {
			t.Fatalf("run %d: patch with the composition: %v", run, err)
		}
		if got.Digest != progs[len(progs)-1].Digest || !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d: composed %+v, stepwise %+v", run, got, want)
		}
		if tr, err := Track(progs[0]).Patch(c); err != nil || tr.P.Digest != want.Digest {
			t.Fatalf("run %d: tracked patch: %v", run, err)
		}
	}
	a, b, c := randomProgram(r), randomProgram(r), randomProgram(r)
	d := Diff(a, b)
	if one, err := Compose(d); err != nil || !reflect.DeepEqual(normalizedDelta(one), normalizedDelta(d)) {
		t.Fatalf("one delta: %v %+v %+v", err, one, d)
	}
	if _, err := Compose(d, Diff(c, a)); err == nil && c.Digest != b.Digest {
		t.Fatal("a broken chain was composed")
	}
	if _, err := Compose(); err == nil {
		t.Fatal("no deltas were composed")
	}
}

// TestComposeCancels: a port added then removed, and flows added then
// removed, leave nothing; a port changed twice is removed once and added
// with its last content.
func TestComposeCancels(t *testing.T) {
	f := openapi.Flow{Table: 1, Priority: 10, Match: "reg0=1", Actions: "drop"}
	p1 := openapi.ContainerPort{Name: "syc1", ID: "a", MTU: 1400}
	d1 := &openapi.ProgramDelta{FromDigest: "A", Digest: "B", AddFlows: []openapi.Flow{f, f}, AddContainers: []openapi.ContainerPort{p1},
		RemoveTunnels: []string{"syt1"}, AddTunnels: []openapi.TunnelPort{{Name: "syt1", RemoteIP: "1"}}}
	d2 := &openapi.ProgramDelta{FromDigest: "B", Digest: "C", RemoveFlows: []openapi.Flow{f}, RemoveContainers: []string{"syc1"},
		RemoveTunnels: []string{"syt1"}, AddTunnels: []openapi.TunnelPort{{Name: "syt1", RemoteIP: "2"}}}
	c, err := Compose(d1, d2)
	if err != nil {
		t.Fatal(err)
	}
	want := &openapi.ProgramDelta{FromDigest: "A", Digest: "C", AddFlows: []openapi.Flow{f},
		RemoveTunnels: []string{"syt1"}, AddTunnels: []openapi.TunnelPort{{Name: "syt1", RemoteIP: "2"}}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("composed %+v, want %+v", c, want)
	}
	if Size(c) <= 0 || Size(c) >= Size(d1)+Size(d2) {
		t.Fatalf("size %d of the composition, %d and %d of its parts", Size(c), Size(d1), Size(d2))
	}
}

// normalizedDelta maps empty lists to nil.
func normalizedDelta(d *openapi.ProgramDelta) openapi.ProgramDelta {
	x := *d
	if len(x.AddFlows) == 0 {
		x.AddFlows = nil
	}
	if len(x.RemoveFlows) == 0 {
		x.RemoveFlows = nil
	}
	if len(x.AddTunnels) == 0 {
		x.AddTunnels = nil
	}
	if len(x.RemoveTunnels) == 0 {
		x.RemoveTunnels = nil
	}
	if len(x.AddContainers) == 0 {
		x.AddContainers = nil
	}
	if len(x.RemoveContainers) == 0 {
		x.RemoveContainers = nil
	}
	if len(x.AddGroups) == 0 {
		x.AddGroups = nil
	}
	if len(x.RemoveGroups) == 0 {
		x.RemoveGroups = nil
	}
	if len(x.AddDNS) == 0 {
		x.AddDNS = nil
	}
	if len(x.RemoveDNS) == 0 {
		x.RemoveDNS = nil
	}
	if len(x.AddHealthChecks) == 0 {
		x.AddHealthChecks = nil
	}
	if len(x.RemoveHealthChecks) == 0 {
		x.RemoveHealthChecks = nil
	}
	return x
}
