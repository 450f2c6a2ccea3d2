package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// A datapath whose every apply fails (ovs-vswitchd restarting, say) costs
// the controller a bounded number of requests: the agent fetches the
// program once, retries the apply with growing delays instead of polling
// the same update again at once, and reports the failure once, not on
// every attempt.
func TestFailingApplyBacksOff(t *testing.T) {
	c, dp := startFailing(t, errors.New("openflow connection to br-int: connection refused"))
	const attempts = 5
	for range attempts {
		next(t, dp.applied)
	}
	req, fulls, reports := c.snapshot()
	if fulls != 1 {
		t.Errorf("the program was downloaded %d times during %d failed applies, want once", fulls, attempts)
	}
	if len(reports) > 1 || req["status"] > 1 {
		t.Errorf("%d reports (%d status requests) for %d identical failures, want at most 1: %+v", len(reports), req["status"], attempts, reports)
	}
	if req["program"] > 2 {
		t.Errorf("%d program requests for one program", req["program"])
	}
	dp.mu.Lock()
	times := dp.applies
	dp.mu.Unlock()
	// The backoff starts at 200 ms, spread by up to a half either way:
	// no two attempts may be closer than 100 ms.
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 100*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous one, want at least 100ms", i+1, gap)
		}
	}

	// Once the datapath works again, the next attempt succeeds and is
	// reported.
	dp.setFail(nil)
	for {
		st := <-c.reported
		if st.Error == "" && st.AppliedRevision == 1 {
			break
		}
	}
}

// startFailing starts an agent on program 1 with a datapath whose applies
// fail with err.
func startFailing(t *testing.T, err error) (*fakeController, *fakeDatapath) {
	t.Helper()
	c := newFakeController(t)
	c.publish(prog(1))
	dp := newFakeDatapath()
	dp.fail = err
	startAgent(t, c, dp, Config{})
	return c, dp
}

// A failure that changes (another error) is reported again.
func TestFailureReportedWhenItChanges(t *testing.T) {
	c, dp := startFailing(t, errors.New("first"))
	if st := <-c.reported; st.Error != "first" {
		t.Fatalf("report %+v", st)
	}
	dp.setFail(errors.New("second"))
	if st := <-c.reported; st.Error != "second" {
		t.Fatalf("report %+v", st)
	}
}

// Reports never hold up applies: while the controller sits on a report,
// the agent keeps applying new programs, and when the controller answers,
// the next report carries the newest status (older ones are skipped).
func TestSlowReportsDoNotStallApplies(t *testing.T) {
	c := newFakeController(t)
	gate := make(chan struct{})
	c.statusGate = gate
	dp := newFakeDatapath()
	c.publish(prog(1))
	startAgent(t, c, dp, Config{})
	if r := next(t, dp.applied); r != 1 {
		t.Fatalf("applied %d", r)
	}
	publishEach(t, c, dp, 2, 4, nil)
	// Every apply happened while the first report was held, and the agent
	// did not give up on it to get on with applying (a synchronous report
	// times out after 10 s, and only then lets the next apply run).
	c.mu.Lock()
	abandoned := c.abandoned
	c.mu.Unlock()
	if _, _, reports := c.snapshot(); len(reports) != 0 || abandoned != 0 {
		t.Fatalf("while a report was held: %d reports went through, %d were abandoned", len(reports), abandoned)
	}
	close(gate)
	var last int64
	n := 0
	for last != 4 {
		st := <-c.reported
		n++
		last = st.AppliedRevision
	}
	if n > 2 {
		t.Errorf("%d reports to reach revision 4, want at most 2 (the held one, then the newest)", n)
	}
}

// A restart of Open vSwitch makes the agent rebuild the underlay and
// re-apply at once, not at the next resync (an hour here).
func TestOVSRestartReappliesAtOnce(t *testing.T) {
	c := newFakeController(t)
	c.publish(prog(1))
	dp := newFakeDatapath()
	startAgent(t, c, dp, Config{UnderlayIface: "ul0"})
	next(t, dp.applied)
	dp.restarts <- "ovs-vswitchd restarted"
	if r := next(t, dp.applied); r != 1 {
		t.Fatalf("re-applied revision %d", r)
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if dp.underlay != 2 { // at start, and after the restart
		t.Errorf("EnsureUnderlay called %d times, want 2", dp.underlay)
	}
}

// The metrics endpoint serves the agent's metrics.
func TestMetricsEndpoint(t *testing.T) {
	dp := newFakeDatapath()
	a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1"}, dp)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := a.serveMetrics(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := prog(1)
	p.Flows = make([]openapi.Flow, 7)
	a.apply(ctx, p, nil)
	dp.fail = errors.New("boom")
	a.apply(ctx, p, nil)
	a.m.repairs.Inc()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		"switchyard_agent_apply_duration_seconds_count 2",
		"switchyard_agent_apply_errors_total 1",
		"switchyard_agent_flows 7",
		`switchyard_agent_ports{state="up"} 1`,
		`switchyard_agent_ports{state="error"} 0`,
		"switchyard_agent_resync_repairs_total 1",
		"switchyard_agent_controller_connected 0",
		"switchyard_agent_ovs_restarts_total 0",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
	// The profiler shares the listener.
	pr, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if pr.StatusCode != 200 || !strings.Contains(string(pb), "goroutine profile:") {
		t.Errorf("pprof goroutine profile: %d %.200s", pr.StatusCode, pb)
	}
	if _, err := a.serveMetrics(ctx, addr.String()); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_AGENT_METRICS") {
		t.Errorf("second listener on %s: %v, want an error naming the setting", addr, err)
	}
}
