package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// TestServices runs the service (load balancing, health checks) and DNS
// scenarios of issue 10 over Geneve and over VXLAN, one three-host cluster
// per encapsulation shared by every scenario (see svcLab). Every write
// waits until realized, and a scenario checks packets right after it: a
// probe that needs retries to see a realized change is a failure. Each
// probe is a new connection (or a datagram from a new socket) from inside
// a container, answered by the backend's name.
//
// One scenario: go test ./tests/e2e/ -run 'TestServices/vxlan/hairpin' -v
func TestServices(top *testing.T) {
	t := top
	for _, tunnel := range []string{openapi.TunnelGeneve, openapi.TunnelVXLAN} {
		t.Run(tunnel, func(t *testing.T) {
			e := newSvcLab(t, tunnel)
			defer e.Lab.DumpOnFailure(t)
			for _, sc := range serviceScenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(e, t) })
			}
			// Last: the controller is stopped; it is started again here,
			// for the top test: a process lives as long as the test that
			// started it, and this test's cleanups (which delete its
			// services) run before the top test's.
			t.Run("dns-controller-down", e.dnsControllerDown)
			if e.Controller.Exited() {
				e.StartController(top)
				e.WaitReady(t, 30*time.Second)
			}
		})
	}
}

// serviceScenarios run in this order on each lab.
var serviceScenarios = []struct {
	name string
	run  func(e *svcLab, t *testing.T)
}{
	{"vip-from-every-host", (*svcLab).vipFromEveryHost},
	{"same-host", (*svcLab).sameHost},
	{"hairpin", (*svcLab).hairpin},
	{"spread", (*svcLab).spread},
	{"weights", (*svcLab).weights},
	{"affinity", (*svcLab).affinity},
	{"ports-udp-target-port", (*svcLab).portsUDPTargetPort},
	{"health-check", (*svcLab).healthCheck},
	{"zero-backends", (*svcLab).zeroBackends},
	{"delete-and-move", (*svcLab).deleteAndMove},
	{"bad-input", (*svcLab).badInput},
	{"policy-through-vip", (*svcLab).policyThroughVIP},
	{"dns-records", (*svcLab).dnsRecords},
	{"dns-search-list", (*svcLab).dnsSearchList},
	{"dns-stale", (*svcLab).dnsStale},
	{"dns-forwarding", (*svcLab).dnsForwarding},
}

// vipFromEveryHost: the clients of h1, h2 and h3 reach web's VIP, every
// connection answered by one of its backends; the endpoints API lists the
// three with address, host, target port, a weight and "unchecked" health.
func (e *svcLab) vipFromEveryHost(t *testing.T) {
	e.reach(t, "tcp", addr(e.web, 0), 30, false, "w1", "w2", "w3")
	eps := e.endpoints(t, e.web)
	if len(eps) != 3 {
		t.Errorf("web's endpoints: %v, want w1, w2, w3", eps)
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		ep, c := eps[w], e.ct[w]
		ok := ep.ContainerID == c.ID && ep.Address == c.IP && ep.Host == c.Host && ep.Weight > 0 &&
			ep.Health == openapi.HealthUnchecked && len(ep.Ports) == 1 && ep.Ports[0].Port == 80 && ep.Ports[0].Protocol == "TCP"
		if !ok {
			t.Errorf("endpoint %s: %+v, want id %s address %s host %s, weight > 0, unchecked, port 80/TCP", w, ep, c.ID, c.IP, c.Host)
		}
	}
	if eps["w1"].Weight != eps["w2"].Weight || eps["w2"].Weight != eps["w3"].Weight {
		t.Errorf("without weights every backend weighs the same: %+v", eps)
	}
}

// sameHost: a service whose only backend is w1 (h1) is reached from c1 on
// the same host, and from the other hosts.
func (e *svcLab) sameHost(t *testing.T) {
	one := e.service(t, "one", map[string]any{"selector": "name=w1"})
	e.reach(t, "tcp", addr(one, 0), 10, true, "w1")
}

// hairpin: a backend connecting to its own service's VIP gets answers:
// w1 through the single-backend service reaches itself; w2 through web
// reaches each of the three backends, itself included.
func (e *svcLab) hairpin(t *testing.T) {
	one := e.service(t, "one", map[string]any{"selector": "name=w1"})
	e.judge(t, "w1 -> own VIP "+addr(one, 0), count(e.mustConns(t, "w1", "tcp", addr(one, 0), 10)), true, []string{"w1"})
	// (2/3)^60: w2 never picked for itself by chance is below 1e-10.
	e.judge(t, "w2 -> web's VIP", count(e.mustConns(t, "w2", "tcp", addr(e.web, 0), 60)), true, []string{"w1", "w2", "w3"})
	// The kept connection to itself through the VIP carries several
	// exchanges (replies keep being un-NATed on the way back).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.probes["w1"].Open(ctx, addr(one, 0), connTimeout)
	if err != nil {
		t.Fatalf("w1 -> own VIP, kept connection: %v", err)
	}
	defer c.Close(ctx)
	for i := range 3 {
		if r, err := c.Send(ctx, connTimeout); err != nil || !r.OK || r.Reply != "w1" {
			t.Errorf("exchange %d on w1's hairpin connection: %+v %v", i, r, err)
		}
	}
}

// spread: 100 connections from each host's client to web: every backend
// serves each client, and the 300 together pass a chi-square test of
// uniformity (p > 0.001). A connection stays on its backend: ten
// exchanges on one kept connection are answered by one backend.
func (e *svcLab) spread(t *testing.T) {
	got := e.reach(t, "tcp", addr(e.web, 0), 100, true, "w1", "w2", "w3")
	stat, p := chiSquare([]int{got.by["w1"], got.by["w2"], got.by["w3"]})
	t.Logf("300 connections: %s; chi-square %.2f, p %.4f", got, stat, p)
	if p <= 0.001 {
		t.Errorf("spread over web's backends is not uniform: %s, chi-square %.2f, p %.5f <= 0.001", got, stat, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := e.probes["c2"].Open(ctx, addr(e.web, 0), connTimeout)
	if err != nil {
		t.Fatalf("c2 -> web, kept connection: %v", err)
	}
	defer c.Close(ctx)
	seen := map[string]int{}
	for range 10 {
		r, err := c.Send(ctx, connTimeout)
		if err != nil || !r.OK {
			t.Fatalf("exchange on c2's kept connection to web: %+v %v", r, err)
		}
		seen[r.Reply]++
	}
	if len(seen) != 1 {
		t.Errorf("one connection to web was answered by several backends: %v", seen)
	}
}

// keptTo opens connections from client c to address until one is answered
// by backend want, and returns it (the others are closed).
func (e *svcLab) keptTo(t *testing.T, ctx context.Context, c, address, want string) *lab.ProbeConn {
	t.Helper()
	for range 50 {
		conn, err := e.probes[c].Open(ctx, address, connTimeout)
		if err != nil {
			t.Fatalf("%s -> %s: %v", c, address, err)
		}
		if r, err := conn.Send(ctx, connTimeout); err == nil && r.OK && r.Reply == want {
			return conn
		}
		_ = conn.Close(ctx)
	}
	t.Fatalf("50 connections from %s to %s: none answered by %s", c, address, want)
	return nil
}

// weights: 90 to v1 (w2, w3), 10 to v2 (w1, the canary): over 1,002
// connections from the three hosts, w1's share is 10 +/- 5 points; the
// endpoints API shows the bucket weights in that ratio.
func (e *svcLab) weights(t *testing.T) {
	s := e.service(t, "canary", map[string]any{"selector": "app=web",
		"weights": []map[string]any{{"selector": "version=v1", "weight": 90}, {"selector": "version=v2", "weight": 10}}})
	if len(s.Weights) != 2 || s.Weights[0].Weight != 90 {
		t.Errorf("weights as stored: %+v", s.Weights)
	}
	eps := e.endpoints(t, s)
	if w1, v1 := float64(eps["w1"].Weight), float64(eps["w2"].Weight+eps["w3"].Weight); w1 <= 0 || math.Abs(w1/(w1+v1)*100-10) > 1 {
		t.Errorf("bucket weights %d (w1), %d, %d: w1 should hold 10%%", eps["w1"].Weight, eps["w2"].Weight, eps["w3"].Weight)
	}
	got := e.reach(t, "tcp", addr(s, 0), 334, true, "w1", "w2", "w3")
	share := float64(got.by["w1"]) / float64(got.n) * 100
	t.Logf("%d connections: %s; canary share %.1f%%", got.n, got, share)
	if math.Abs(share-10) > 5 {
		t.Errorf("canary w1 got %.1f%% of new connections (%s), want 10 +/- 5", share, got)
	}
}

// affinity: with ClientIP affinity each client reaches one backend for 20
// connections in a row (another client may get another one); once that
// backend is deleted, its clients reach the other one.
func (e *svcLab) affinity(t *testing.T) {
	e.backend(t, "aff-a", "h2", map[string]string{"app": "aff"})
	e.backend(t, "aff-b", "h3", map[string]string{"app": "aff"})
	s := e.service(t, "sticky", map[string]any{"selector": "app=aff", "sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 600})
	if s.SessionAffinity != openapi.AffinityClientIP || s.SessionAffinityTimeoutSeconds != 600 {
		t.Errorf("stored affinity: %q %d", s.SessionAffinity, s.SessionAffinityTimeoutSeconds)
	}
	// The first connection alone: the ones after it must find what it
	// made OVS learn (concurrent first connections may each pick). Ready
	// when the learned flow (cookie openapi.LearnedCookie) for the client
	// is on its host's switch: connections started before that may still
	// pick a bucket (see docs/services.md, session affinity).
	sticky := func(c string) tally {
		first := e.mustConns(t, c, "tcp", addr(s, 0), 1)
		h := e.Lab.Host(e.ct[c].Host)
		e.Eventually(t, 10*time.Second, func() error {
			out := h.OFCtl(t, "dump-flows", "br-int", fmt.Sprintf("cookie=%#x/-1", openapi.LearnedCookie))
			if !strings.Contains(out, "nw_src="+e.ct[c].IP+",") {
				return fmt.Errorf("no learned affinity flow for %s on %s:\n%s", c, e.ct[c].Host, out)
			}
			return nil
		})
		return count(append(first, e.mustConns(t, c, "tcp", addr(s, 0), 19)...))
	}
	stuck := map[string]string{}
	for _, c := range e.clients {
		got := sticky(c)
		if len(got.by) != 1 || len(got.failed) > 0 {
			t.Errorf("%s: 20 connections with ClientIP affinity: %s, want all on one backend", c, got)
			continue
		}
		for k := range got.by {
			stuck[c] = k
		}
	}
	t.Logf("clients stuck to: %v", stuck)
	gone := stuck["c1"]
	if gone == "" {
		t.FailNow()
	}
	other := map[string]string{"aff-a": "aff-b", "aff-b": "aff-a"}[gone]
	e.probes[gone].Proc.Stop()
	e.remove(t, gone)
	for _, c := range e.clients {
		e.judge(t, c+" after "+gone+" was deleted", sticky(c), true, []string{other})
	}
}

// portsUDPTargetPort: one service with two ports on other numbers than the
// backends': TCP 8081 to 81, UDP 5300 to 80; both spread over web's
// backends from every host. The VIP on the target port itself answers
// nothing.
func (e *svcLab) portsUDPTargetPort(t *testing.T) {
	s := e.service(t, "multi", map[string]any{"selector": "app=web", "ports": []map[string]any{
		{"name": "alt", "port": 8081, "targetPort": 81, "protocol": "TCP"},
		{"name": "dns", "port": 5300, "targetPort": 80, "protocol": "UDP"}}})
	e.reach(t, "tcp", addr(s, 0), 30, true, "w1", "w2", "w3")
	e.reach(t, "udp", addr(s, 1), 30, true, "w1", "w2", "w3")
	for _, a := range []string{s.VIP + ":81", s.VIP + ":80"} {
		if got := count(e.tryConns(t, "c1", "tcp", a, 3)); len(got.by) > 0 {
			t.Errorf("c1 -> %s (not a port of the service): %s, want no answer", a, got)
		}
	}
	if eps := e.endpoints(t, s); len(eps["w1"].Ports) != 2 || eps["w1"].Ports[0].Port != 81 || eps["w1"].Ports[1].Port != 80 || eps["w1"].Ports[1].Protocol != "UDP" {
		t.Errorf("w1's endpoint ports: %+v, want 81/TCP (alt) and 80/UDP (dns)", eps["w1"].Ports)
	}
}

// endpointEvent waits for the "endpoint" event of container in service s
// with that health, after revision after, and returns it.
func (e *svcLab) endpointEvent(t *testing.T, ev *cluster.EventStream, after int64, s openapi.Service, container string, healthy bool) openapi.Event {
	t.Helper()
	id := s.ID + "/" + e.ct[container].ID
	return ev.Wait(t, 30*time.Second, fmt.Sprintf("endpoint %s healthy=%v", id, healthy), func(x openapi.Event) bool {
		var h openapi.EndpointHealth
		if x.Kind != "endpoint" || x.ID != id || x.Action == openapi.EventDeleted || x.Revision <= after || json.Unmarshal(x.Object, &h) != nil {
			return false
		}
		if x.Name != container || x.Network != svcNet || h.Service != s.ID || h.Container != e.ct[container].ID {
			t.Errorf("endpoint event %+v (object %+v): want name %s network %s", x, h, container, svcNet)
		}
		return h.Healthy == healthy
	})
}

// healthCheck: an HTTP check on port 8080 of hc-a (h2) and hc-b (h3).
// hc-a's HTTP server stops: the endpoints API shows it unhealthy with a
// reason and weight 0, an "endpoint" event says so, and once every host
// applied that revision no new connection reaches hc-a (its TCP 80 still
// serves, so one would be seen). hc-b stops too: no healthy backend, new
// connections are refused at once (TCP RST, ICMP unreachable for UDP).
// Both restart: healthy, events, and both serve again.
func (e *svcLab) healthCheck(t *testing.T) {
	e.backend(t, "hc-a", "h2", map[string]string{"app": "hc"})
	e.backend(t, "hc-b", "h3", map[string]string{"app": "hc"})
	s := e.service(t, "hc", map[string]any{"selector": "app=hc",
		"ports": []map[string]any{{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
			{"name": "u", "port": 5300, "targetPort": 80, "protocol": "UDP"}},
		"healthCheck": map[string]any{"protocol": "HTTP", "port": lab.ProbeHTTPPort, "path": "/healthz",
			"intervalSeconds": 1, "timeoutSeconds": 1, "unhealthyThreshold": 2, "healthyThreshold": 1}})
	if hc := s.HealthCheck; hc == nil || hc.Protocol != "HTTP" || hc.Port != lab.ProbeHTTPPort || hc.Path != "/healthz" || hc.UnhealthyThreshold != 2 {
		t.Errorf("stored health check: %+v", s.HealthCheck)
	}
	e.waitHealth(t, s, "hc-a", openapi.HealthHealthy)
	e.waitHealth(t, s, "hc-b", openapi.HealthHealthy)
	e.reach(t, "tcp", addr(s, 0), 20, true, "hc-a", "hc-b")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	since := e.Revision(t)
	ev := e.Events(t, since)
	if err := e.probes["hc-a"].Serve(ctx, "http", lab.ProbeHTTPPort, false); err != nil {
		t.Fatal(err)
	}
	down := e.endpointEvent(t, ev, since, s, "hc-a", false)
	if ep := e.waitHealth(t, s, "hc-a", openapi.HealthUnhealthy); ep.Reason == "" || ep.Weight != 0 || ep.Since == nil {
		t.Errorf("unhealthy endpoint hc-a: %+v, want a reason, weight 0, since", ep)
	}
	e.waitApplied(t, down.Revision)
	e.reach(t, "tcp", addr(s, 0), 20, true, "hc-b")

	if err := e.probes["hc-b"].Serve(ctx, "http", lab.ProbeHTTPPort, false); err != nil {
		t.Fatal(err)
	}
	down = e.endpointEvent(t, ev, since, s, "hc-b", false)
	e.waitApplied(t, down.Revision)
	for _, c := range e.clients {
		refusedFast(t, c+" -> "+addr(s, 0)+" without a healthy backend", e.tryConns(t, c, "tcp", addr(s, 0), 3))
		refusedFast(t, c+" -> udp "+addr(s, 1)+" without a healthy backend", e.tryConns(t, c, "udp", addr(s, 1), 3))
	}

	for _, b := range []string{"hc-a", "hc-b"} {
		if err := e.probes[b].Serve(ctx, "http", lab.ProbeHTTPPort, true); err != nil {
			t.Fatal(err)
		}
	}
	// After hc-b's down event: the first verdicts (healthy) may have come
	// after the stream opened.
	up := max(e.endpointEvent(t, ev, down.Revision, s, "hc-a", true).Revision, e.endpointEvent(t, ev, down.Revision, s, "hc-b", true).Revision)
	e.waitHealth(t, s, "hc-a", openapi.HealthHealthy)
	e.waitApplied(t, up)
	e.reach(t, "tcp", addr(s, 0), 20, true, "hc-a", "hc-b")
	e.reach(t, "udp", addr(s, 1), 20, true, "hc-a", "hc-b")
}

// zeroBackends: a service whose selector picks nothing refuses new
// connections at once from every host, TCP and UDP; the endpoints list is
// empty.
func (e *svcLab) zeroBackends(t *testing.T) {
	s := e.service(t, "empty", map[string]any{"selector": "app=nothing",
		"ports": []map[string]any{{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "u", "port": 5300, "targetPort": 80, "protocol": "UDP"}}})
	if eps := e.endpoints(t, s); len(eps) != 0 {
		t.Errorf("endpoints of a service selecting nothing: %+v", eps)
	}
	for _, c := range e.clients {
		refusedFast(t, c+" -> "+addr(s, 0)+" (no backend)", e.tryConns(t, c, "tcp", addr(s, 0), 3))
		refusedFast(t, c+" -> udp "+addr(s, 1)+" (no backend)", e.tryConns(t, c, "udp", addr(s, 1), 3))
	}
}

// deleteAndMove: of three backends (one per host), one is deleted: a
// connection open to it ends, and right after the realized delete no new
// connection from any host reaches it and none fails; another moves from h2 to h3: right after the realized move
// (its server started in the new sandbox) every connection succeeds and it
// serves again; the endpoints API shows it on h3.
func (e *svcLab) deleteAndMove(t *testing.T) {
	for i, h := range []string{"h1", "h2", "h3"} {
		e.backend(t, fmt.Sprintf("mv-%d", i+1), h, map[string]string{"app": "mv"})
	}
	s := e.service(t, "mv", map[string]any{"selector": "app=mv"})
	e.reach(t, "tcp", addr(s, 0), 30, true, "mv-1", "mv-2", "mv-3")

	// An open connection to the backend that goes ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kept := e.keptTo(t, ctx, "c1", addr(s, 0), "mv-3")
	defer kept.Close(ctx)
	mv3 := e.probes["mv-3"]
	e.remove(t, "mv-3")
	// Its server still runs (in the namespace its process keeps), but the
	// container is gone from the network.
	if r, err := kept.Send(ctx, connTimeout); err != nil || r.OK {
		t.Errorf("c1's open connection to deleted mv-3 still answers: %+v %v", r, err)
	}
	mv3.Proc.Stop()
	e.reach(t, "tcp", addr(s, 0), 30, true, "mv-1", "mv-2")
	if eps := e.endpoints(t, s); len(eps) != 2 {
		t.Errorf("endpoints after mv-3's delete: %+v", eps)
	}

	e.probes["mv-2"].Proc.Stop()
	var moved openapi.Container
	e.MustDo(t, 200, "POST", "/api/v1/containers/mv-2/move"+writeWait, map[string]any{"host": "h3"}, &moved)
	e.ct["mv-2"] = moved
	e.probes["mv-2"] = e.Lab.StartProbe(t, e.Bin.Probe, "mv-2", e.Sandbox("h3", "mv-2", svcNet))
	e.reach(t, "tcp", addr(s, 0), 30, true, "mv-1", "mv-2")
	if ep := e.endpoints(t, s)["mv-2"]; ep.Host != "h3" || ep.Address != moved.IP {
		t.Errorf("mv-2's endpoint after the move: %+v, want host h3 address %s", ep, moved.IP)
	}
}

// badInput: a few invalid services are refused with a problem naming the
// field, nothing stored (the API's own tests hold the full table).
func (e *svcLab) badInput(t *testing.T) {
	e.badService(t, "port", map[string]any{"ports": []map[string]any{{"port": 0}}})
	e.badService(t, "weight", map[string]any{"weights": []map[string]any{{"selector": "version=v1", "weight": 0}}})
	e.badService(t, "healthCheck.intervalSeconds", map[string]any{"healthCheck": map[string]any{"protocol": "TCP", "intervalSeconds": 1, "timeoutSeconds": 5}})
	e.badService(t, "selector", map[string]any{"selector": "app in (web"})
}
