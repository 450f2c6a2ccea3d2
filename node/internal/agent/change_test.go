package agent

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// withFlows is a sealed program of host h1 with n flows.
func withFlows(rev int64, n int) *openapi.Program {
	p := &openapi.Program{Host: "h1", Revision: rev, Bridge: openapi.BridgeSpec{Name: "br-int"}}
	for i := 0; i < n; i++ {
		p.Flows = append(p.Flows, openapi.Flow{Table: 1, Priority: 100, Cookie: uint64(i), Match: fmt.Sprintf("reg0=%d", i), Actions: "drop"})
	}
	program.SortFlows(p.Flows)
	p.Digest = program.Digest(p)
	return p
}

// The datapath gets, with each program, the delta from the program it last
// applied: the delta received when the agent was up to date, the deltas
// received meanwhile composed when it fell behind (an apply failed), the
// difference from the applied program after a whole program, and none for
// the first program (the datapath then compares everything).
func TestApplyGetsTheChange(t *testing.T) {
	dp := newFakeDatapath()
	a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1"}, dp)
	r := newRetrier()
	defer r.stop()
	ctx := context.Background()
	p := []*openapi.Program{withFlows(1, 1), withFlows(2, 2), withFlows(3, 3), withFlows(4, 4)}
	step := func(up *openapi.ProgramUpdate) *openapi.ProgramDelta {
		t.Helper()
		a.receive(up)
		a.pending = true
		a.attempt(ctx, r)
		dp.mu.Lock()
		defer dp.mu.Unlock()
		return dp.changes[len(dp.changes)-1]
	}
	delta := func(i int) *openapi.ProgramUpdate {
		return &openapi.ProgramUpdate{Revision: p[i].Revision, Delta: program.Diff(p[i-1], p[i])}
	}
	if d := step(&openapi.ProgramUpdate{Full: true, Program: p[0], Revision: 1}); d != nil {
		t.Fatalf("a whole program came with a change %+v", d)
	}
	if d := step(delta(1)); d == nil || d.FromDigest != p[0].Digest || d.Digest != p[1].Digest {
		t.Fatalf("change %+v, want the delta from rev 1 to rev 2", d)
	}
	// The next apply fails: the one after gets both deltas in one.
	dp.fail = fmt.Errorf("boom")
	step(delta(2))
	dp.fail = nil
	d := step(delta(3))
	if d == nil || d.FromDigest != p[1].Digest || d.Digest != p[3].Digest {
		t.Fatalf("change %+v, want the delta from rev 2 to rev 4", d)
	}
	got, err := program.Patch(p[1], d)
	if err != nil || !reflect.DeepEqual(got.Flows, p[3].Flows) {
		t.Fatalf("the change does not lead from rev 2 to rev 4: %v", err)
	}
	// A whole program (the controller restarted) after rev 4 was applied.
	d = step(&openapi.ProgramUpdate{Full: true, Program: p[0], Revision: 5})
	if d == nil || d.FromDigest != p[3].Digest || d.Digest != p[0].Digest || len(d.RemoveFlows) != 3 || len(d.AddFlows) != 0 {
		t.Fatalf("change %+v, want the difference from rev 4 to the whole program", d)
	}
	// A fresh agent's first program has nothing to compare with.
	b := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1"}, dp)
	b.receive(&openapi.ProgramUpdate{Full: true, Program: p[2], Revision: 3})
	if b.change != nil {
		t.Fatalf("first program came with a change %+v", b.change)
	}
}
