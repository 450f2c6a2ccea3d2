package nodes

import (
	"context"
	"testing"
)

// A host's program that changes and comes back to what its agent has
// (A -> B -> A while the agent was away) gets an empty delta carrying the
// new revision when the agent polls with its older revision, so that it
// reports that revision and the host is realized again; with the current
// revision, or none (an agent that does not say), the poll waits. Found by
// the chaos soak (tests/soak): the host stayed realized=false.
func TestProgramBackToKnownDigest(t *testing.T) {
	f := twoHosts(t)
	up := f.poll("h1", "")
	d1, r1 := up.Program.Digest, up.Revision
	f.container("b", "blue", "h1")
	f.catchUp()
	back := f.deleteContainer("b")
	f.catchUp()
	if full := f.poll("h1", ""); full.Program.Digest != d1 {
		t.Skipf("the program did not come back to the same digest (%s, then %s): nothing to test", d1, full.Program.Digest)
	}
	poll := func(known int64) *struct{ rev int64 } {
		t.Helper()
		ctx, cancel := context.WithCancel(f.ctx)
		cancel()
		up, err := f.m.next(ctx, "h1", d1, known)
		if err != nil {
			t.Fatal(err)
		}
		if up == nil {
			return nil
		}
		if up.Full || up.Delta == nil || up.Delta.FromDigest != d1 || up.Delta.Digest != d1 ||
			len(up.Delta.AddFlows)+len(up.Delta.RemoveFlows)+len(up.Delta.AddContainers)+len(up.Delta.RemoveContainers) != 0 {
			t.Fatalf("poll at %d: %+v", known, up)
		}
		return &struct{ rev int64 }{up.Revision}
	}
	if got := poll(r1); got == nil || got.rev != back {
		t.Fatalf("an agent at revision %d with the current digest: %v, want an empty delta at %d", r1, got, back)
	}
	if got := poll(back); got != nil {
		t.Fatalf("an agent at the current revision: %+v, want to wait", got)
	}
	if got := poll(-1); got != nil {
		t.Fatalf("an agent that gives no revision: %+v, want to wait", got)
	}
}
