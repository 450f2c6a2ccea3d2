package agent

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// A resync checks the underlay bridge too: an OVS restart wipes its flow.
func TestResyncEnsuresUnderlay(t *testing.T) {
	for _, iface := range []string{"", "ul0"} {
		dp := newFakeDatapath()
		a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1", UnderlayIface: iface,
			UnderlayPrefix: netip.MustParsePrefix("192.168.200.11/24")}, dp)
		a.resync(context.Background()) // nothing applied yet: nothing to check
		a.prog = &openapi.Program{Revision: 1}
		if drifted, gaveWay := a.resync(context.Background()); drifted || gaveWay {
			t.Errorf("resync: drifted %v, gave way %v; want neither", drifted, gaveWay)
		}
		want := 0
		if iface != "" {
			want = 1
		}
		if dp.underlay != want || dp.observe != 1 {
			t.Errorf("underlay iface %q: EnsureUnderlay called %d times (want %d), Observe %d (want 1)", iface, dp.underlay, want, dp.observe)
		}
	}
}

// A program that arrives while a resync checks the host is applied at
// once: the check gives way and runs again later.
func TestResyncGivesWayToProgram(t *testing.T) {
	c := newFakeController(t)
	dp := newFakeDatapath()
	c.publish(prog(1))
	started := make(chan struct{}, 1)
	dp.mu.Lock()
	dp.observing = started
	dp.mu.Unlock()
	startAgent(t, c, dp, Config{Resync: 20 * time.Millisecond})
	if r := next(t, dp.applied); r != 1 {
		t.Fatalf("applied %d, want 1", r)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no resync began")
	}
	c.publish(prog(2))
	// The check would hold the loop for a minute: next gives up at 30 s.
	if r := next(t, dp.applied); r != 2 {
		t.Fatalf("applied %d, want 2", r)
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if dp.cancelled != 1 {
		t.Errorf("%d checks cut short, want 1", dp.cancelled)
	}
}

// Resyncs give way for up to maxResyncDeferral; the first check after that
// runs to its end even when a program is waiting, and the count starts
// again.
func TestResyncGivesWayAtMost(t *testing.T) {
	dp := newFakeDatapath()
	a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1"}, dp)
	a.prog = &openapi.Program{Revision: 1}
	a.arrived.Store(true) // a program waits for the loop, as in the race resync closes
	for i := 1; i <= 20; i++ {
		if _, gaveWay := a.resync(context.Background()); !gaveWay || a.deferred != i {
			t.Fatalf("resync %d: gave way %v, %d in a row; want true, %d", i, gaveWay, a.deferred, i)
		}
	}
	a.deferredSince = time.Now().Add(-maxResyncDeferral) // 20 checks cut short over that long
	if _, gaveWay := a.resync(context.Background()); gaveWay || a.deferred != 0 {
		t.Fatalf("resync after %s of deferral: gave way %v, %d in a row; want a whole check", maxResyncDeferral, gaveWay, a.deferred)
	}
	if dp.observe != 21 || dp.cancelled != 20 {
		t.Errorf("Observe called %d times, %d cut short; want 21 and 20", dp.observe, dp.cancelled)
	}
	if _, gaveWay := a.resync(context.Background()); !gaveWay || a.deferred != 1 {
		t.Fatalf("the next resync: gave way %v, %d in a row; want true, 1", gaveWay, a.deferred)
	}
}

// A resync that gave way and tries again does not redo the underlay: once
// per round, the first attempt (and again after a whole check).
func TestResyncUnderlayOncePerRound(t *testing.T) {
	dp := newFakeDatapath()
	a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1", UnderlayIface: "ul0",
		UnderlayPrefix: netip.MustParsePrefix("192.168.200.11/24")}, dp)
	a.prog = &openapi.Program{Revision: 1}
	a.arrived.Store(true)
	for i := 0; i < 3; i++ {
		if _, gaveWay := a.resync(context.Background()); !gaveWay {
			t.Fatalf("resync %d did not give way", i)
		}
	}
	a.arrived.Store(false)
	if _, gaveWay := a.resync(context.Background()); gaveWay {
		t.Fatal("a resync with nothing arriving gave way")
	}
	a.resync(context.Background())
	if dp.underlay != 2 || dp.observe != 5 {
		t.Errorf("EnsureUnderlay called %d times (want 2: the round's first attempt, the next round), Observe %d (want 5)", dp.underlay, dp.observe)
	}
}

// A due resync waits for a lull in the programs (resyncLull): none begins
// while they keep arriving, up to maxResyncDeferral, past which it begins
// whatever arrives.
func TestResyncWaitsForLull(t *testing.T) {
	dp := newFakeDatapath()
	a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1"}, dp)
	now := time.Now()
	if d := a.untilLull(now); d != 0 {
		t.Fatalf("no program ever arrived: wait %s, want none", d)
	}
	a.lastArrival = now.Add(-10 * time.Millisecond)
	if d := a.untilLull(now); d != resyncLull-10*time.Millisecond || !a.deferredSince.Equal(now) {
		t.Fatalf("a program 10 ms ago: wait %s (put off since %v), want %s", d, a.deferredSince, resyncLull-10*time.Millisecond)
	}
	later := now.Add(time.Minute)
	a.lastArrival = later.Add(-time.Millisecond)
	if d := a.untilLull(later); d <= 0 || !a.deferredSince.Equal(now) {
		t.Fatalf("still arriving a minute later: wait %s, put off since %v (want %v)", d, a.deferredSince, now)
	}
	if d := a.untilLull(later.Add(resyncLull)); d != 0 {
		t.Fatalf("after a lull: wait %s, want none", d)
	}
	past := now.Add(maxResyncDeferral)
	a.lastArrival = past
	if d := a.untilLull(past); d != 0 {
		t.Fatalf("put off for %s: wait %s, want none", maxResyncDeferral, d)
	}
	// That check runs to its end even with a program waiting, and the
	// next round starts afresh.
	a.prog = &openapi.Program{Revision: 1}
	a.arrived.Store(true)
	a.deferredSince = time.Now().Add(-maxResyncDeferral) // on the real clock, which resync reads
	if _, gaveWay := a.resync(context.Background()); gaveWay || !a.deferredSince.IsZero() {
		t.Fatalf("the check past the deferral: gave way %v, put off since %v", gaveWay, a.deferredSince)
	}
}

// End to end: with programs arriving every 20 ms and resyncs due every
// 30 ms, no check begins (none is cut short); once they stop, one does.
// The lull is 2 s here, so that a slow machine's pause between two
// programs does not pass for one.
func TestResyncNotBegunDuringStream(t *testing.T) {
	c := newFakeController(t)
	dp := newFakeDatapath()
	c.publish(prog(1))
	startAgent(t, c, dp, Config{Resync: 30 * time.Millisecond, ResyncLull: 2 * time.Second})
	if r := next(t, dp.applied); r != 1 {
		t.Fatalf("applied %d, want 1", r)
	}
	// From the first apply on, keep programs coming faster than the lull.
	publishEach(t, c, dp, 2, 30, func() { time.Sleep(20 * time.Millisecond) })
	dp.mu.Lock()
	during, cut := dp.observe, dp.cancelled
	dp.mu.Unlock()
	if cut != 0 {
		t.Errorf("%d checks cut short during the stream, want none", cut)
	}
	eventually(t, "a resync after the stream stopped", func() bool {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		return dp.observe > during
	})
}
