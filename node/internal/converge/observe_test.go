package converge

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// The drift check keeps the canonical spelling of each installed flow from
// one resync to the next and sends only the flows installed since through
// ovs-ofctl parse-flows: a flow that came in a delta, then was changed
// behind the agent's back, is still seen.
func TestObserveAfterDeltas(t *testing.T) {
	h, a := genHost(t)
	c1, c2, c3 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}, ctr{N: 3, Host: "h1"}
	p1 := program("h1", 1, []ctr{c1, c2}, nil, "geneve")
	apply(t, a, p1)
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the first apply: %v", o.Drift)
	}
	known := a.sw.Inspect().CanonForms
	p2 := program("h1", 2, []ctr{c1, c2, c3}, nil, "geneve")
	seal(p2)
	if res := applyDelta(t, a, p2, progpkg.Diff(p1, p2)); res.OpenFlow != "delta" {
		t.Fatalf("adding %s: openflow %s, want delta", c3.Port(), res.OpenFlow)
	}
	runs := a.sw.Inspect().OFCtlRuns
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after a delta: %v", o.Drift)
	}
	if a.sw.Inspect().CanonForms <= known {
		t.Fatalf("canonical forms kept: %d, before the delta %d", a.sw.Inspect().CanonForms, known)
	}
	t.Logf("check after the delta: %d ovs-ofctl runs, %d canonical forms kept", a.sw.Inspect().OFCtlRuns-runs, a.sw.Inspect().CanonForms)
	h.OFCtl(t, "mod-flows", "br-int", "table=1,dl_dst="+c3.MAC()+",actions=drop")
	if o := observe(t, a); !driftHas(o, "flow changed: table=1") {
		t.Fatalf("a changed flow of the delta not seen: %v", o.Drift)
	}
	apply(t, a, p2)
	if o := observe(t, a); o.Drifted() {
		t.Fatalf("drift after the repair: %v", o.Drift)
	}
}

// A check cut short at any point (the agent cancels a resync when a
// program arrives) reports the cancellation, not drift, and forgets
// nothing: the next change still goes as a delta, and a whole check
// afterwards finds the host as it is.
func TestObserveCancelled(t *testing.T) {
	_, a := genHost(t)
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	base := program("h1", 1, []ctr{c1, c2}, nil, "geneve")
	apply(t, a, base)
	prev := base
	for k := int64(1); ; k++ {
		// Cancelled at the k-th time Observe asks whether to go on.
		ctx := &countdownCtx{left: k}
		ctx.Context, ctx.cancel = context.WithCancel(context.Background())
		o, err := a.Observe(ctx)
		ctx.cancel()
		if err == nil {
			if o.Drifted() {
				t.Fatalf("drift: %v", o.Drift)
			}
			t.Logf("a whole check asks %d times", k-1)
			break
		}
		if !errors.Is(err, context.Canceled) || o.Drifted() {
			t.Fatalf("cut short at %d: %v, drift %v; want context.Canceled and no drift", k, err, o.Drift)
		}
		if !a.sw.Inspect().TablesKnown {
			t.Fatalf("cut short at %d: the installed tables were forgotten", k)
		}
		// One remote container more or less: a delta.
		next := program("h1", prev.Revision+1, []ctr{c1, c2}, nil, "geneve")
		if k%2 == 1 {
			next = program("h1", prev.Revision+1, []ctr{c1, c2, {N: 9, Host: "h2"}}, map[string]string{"h2": "192.0.2.2"}, "geneve")
		}
		seal(next)
		if res := applyDelta(t, a, next, progpkg.Diff(prev, next)); res.OpenFlow != "delta" && res.OpenFlow != "unchanged" {
			t.Fatalf("cut short at %d: the next change went %s, want delta", k, res.OpenFlow)
		}
		prev = next
		if k > 1000 {
			t.Fatal("Observe never finished")
		}
	}
}

// countdownCtx ends (context.Canceled) when Err or Done has been called
// left times: a cancellation at a chosen point of a check (Done is what
// an ovs-ofctl run or an OpenFlow exchange watches).
type countdownCtx struct {
	context.Context
	cancel context.CancelFunc
	left   int64
	asked  atomic.Int64
}

func (c *countdownCtx) tick() {
	if c.asked.Add(1) >= c.left {
		c.cancel()
	}
}

func (c *countdownCtx) Err() error {
	c.tick()
	return c.Context.Err()
}

func (c *countdownCtx) Done() <-chan struct{} {
	c.tick()
	return c.Context.Done()
}

func applyDelta(t testing.TB, a *Host, p *openapi.Program, d *openapi.ProgramDelta) ApplyResult {
	t.Helper()
	// Generous: a delta on a table of 5,000 containers under load
	// (BenchmarkApplyOneChange) is still well within it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := a.ApplyDelta(ctx, p, d)
	if err != nil {
		t.Fatalf("ApplyDelta rev %d: %v", p.Revision, err)
	}
	if res.Degraded() {
		t.Fatalf("ApplyDelta rev %d degraded: %v %v", p.Revision, portErrors(res), res.Dropped)
	}
	return res
}
