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
