package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/openapi"
)

func TestVerdictThresholds(t *testing.T) {
	c := openapi.HealthCheck{UnhealthyThreshold: 3, HealthyThreshold: 2}
	var v verdict
	bad := errors.New("refused")
	steps := []struct {
		err            error
		flip, known, h bool
	}{
		{bad, false, false, false}, // no verdict before the threshold
		{bad, false, false, false},
		{bad, true, true, false}, // third failure: unhealthy
		{bad, false, true, false},
		{nil, false, true, false}, // one success is not enough
		{bad, false, true, false}, // and the run starts over
		{nil, false, true, false},
		{nil, true, true, true}, // two in a row: healthy
		{bad, false, true, true},
		{bad, false, true, true},
		{nil, false, true, true}, // a success resets the failure run
		{bad, false, true, true},
		{bad, false, true, true},
		{bad, true, true, false},
	}
	for i, s := range steps {
		if got := v.observe(s.err, c); got != s.flip || v.known != s.known || v.healthy != s.h {
			t.Fatalf("step %d: flip %v known %v healthy %v, want %v %v %v", i, got, v.known, v.healthy, s.flip, s.known, s.h)
		}
	}
	if v.reason != "refused" {
		t.Fatalf("reason %q", v.reason)
	}
	// Healthy first: the first success gives a verdict with threshold 1.
	var w verdict
	if !w.observe(nil, openapi.HealthCheck{HealthyThreshold: 1, UnhealthyThreshold: 3}) || !w.healthy {
		t.Fatal("first success with threshold 1 must give a healthy verdict")
	}
}

// fakeProber answers from a per-probe switch and counts attempts.
type fakeProber struct {
	mu    sync.Mutex
	fail  map[string]error
	tries map[string]int
}

func (f *fakeProber) probe(_ context.Context, _ string, p openapi.HealthProbe) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries[p.Key()]++
	return f.fail[p.Key()]
}

func (f *fakeProber) set(key string, err error) {
	f.mu.Lock()
	f.fail[key] = err
	f.mu.Unlock()
}

func probeOf(svc, ctr string) openapi.HealthProbe {
	return openapi.HealthProbe{Service: svc, ServiceName: "s-" + svc, Container: ctr, Port: "v" + ctr, IP: "10.1.0.1",
		Check: openapi.HealthCheck{Protocol: "TCP", Port: 80, IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 2, HealthyThreshold: 1}}
}

// waitFor waits (for changes) until cond holds of the endpoints.
func waitFor(t *testing.T, m *Manager, changes <-chan struct{}, what string, cond func([]openapi.EndpointHealth) bool) []openapi.EndpointHealth {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		eps := m.Endpoints()
		if cond(eps) {
			return eps
		}
		select {
		case <-changes:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; endpoints %+v", what, eps)
		}
	}
}

func TestManagerSetAndFlip(t *testing.T) {
	f := &fakeProber{fail: map[string]error{}, tries: map[string]int{}}
	changes := make(chan struct{}, 100)
	reg := prometheus.NewRegistry()
	m := New(Options{Host: "h1", Probe: f.probe, OnChange: func() { changes <- struct{}{} }, Registerer: reg,
		NetnsPath: func(c openapi.ContainerPort) string {
			if c.Netns != "" {
				return c.Netns
			}
			return "/run/netns/pfx-" + c.Sandbox
		},
		Interval: func(openapi.HealthProbe) time.Duration { return 5 * time.Millisecond }})
	defer m.Stop()
	a, b := probeOf("s1", "c1"), probeOf("s1", "c2")
	f.set(b.Key(), errors.New("connection refused"))
	prog := &openapi.Program{Containers: []openapi.ContainerPort{{Name: "vc1", Sandbox: "sb1"}, {Name: "vc2", Netns: "/run/netns/x"}},
		HealthChecks: []openapi.HealthProbe{a, b}}
	m.Set(prog)
	eps := waitFor(t, m, changes, "two verdicts", func(e []openapi.EndpointHealth) bool { return len(e) == 2 })
	want := []openapi.EndpointHealth{
		{Service: "s1", Container: "c1", Healthy: true, Host: "h1"},
		{Service: "s1", Container: "c2", Healthy: false, Reason: "connection refused", Host: "h1"},
	}
	if eps[0] != want[0] || eps[1] != want[1] {
		t.Fatalf("endpoints %+v, want %+v", eps, want)
	}
	if n := testutil.ToFloat64(m.down); n != 1 {
		t.Fatalf("unhealthy gauge %v, want 1", n)
	}
	if ok, bad := testutil.ToFloat64(m.probes.WithLabelValues("success")), testutil.ToFloat64(m.probes.WithLabelValues("failure")); ok < 1 || bad < 2 {
		t.Fatalf("probes: %v successes, %v failures", ok, bad)
	}
	// The namespaces come from the program's ports.
	m.mu.Lock()
	if m.running[a.Key()].nsPath != "/run/netns/pfx-sb1" || m.running[b.Key()].nsPath != "/run/netns/x" {
		t.Fatalf("netns paths %q %q", m.running[a.Key()].nsPath, m.running[b.Key()].nsPath)
	}
	m.mu.Unlock()
	f.set(b.Key(), nil)
	waitFor(t, m, changes, "c2 healthy", func(e []openapi.EndpointHealth) bool { return len(e) == 2 && e[1].Healthy && e[1].Reason == "" })
	if n := testutil.ToFloat64(m.down); n != 0 {
		t.Fatalf("unhealthy gauge %v, want 0", n)
	}
	// A probe whose port is not in the program is not run.
	m.Set(&openapi.Program{Containers: prog.Containers, HealthChecks: []openapi.HealthProbe{a, b, probeOf("s2", "c9")}})
	m.mu.Lock()
	if len(m.running) != 2 {
		t.Fatalf("%d probes running, want 2", len(m.running))
	}
	m.mu.Unlock()

	// Removing a probe drops its verdict; a changed probe starts over.
	c := a
	c.Check.Port = 81
	f.set(c.Key(), errors.New("timeout"))
	m.Set(&openapi.Program{Containers: prog.Containers, HealthChecks: []openapi.HealthProbe{c}})
	waitFor(t, m, changes, "only c1, unhealthy", func(e []openapi.EndpointHealth) bool {
		return len(e) == 1 && e[0].Container == "c1" && !e[0].Healthy
	})
	m.Set(&openapi.Program{})
	if eps := m.Endpoints(); len(eps) != 0 {
		t.Fatalf("endpoints after removing every probe: %+v", eps)
	}
}

func TestHTTPProbeStatus(t *testing.T) {
	code := 302
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Location", "/elsewhere") // not followed
		w.WriteHeader(code)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().(*net.TCPAddr)
	p := openapi.HealthProbe{IP: addr.IP.String(), Check: openapi.HealthCheck{Protocol: "HTTP", Port: addr.Port, Path: "/ready"}}
	for _, c := range []struct {
		code int
		ok   bool
	}{{302, true}, {200, true}, {204, true}, {404, false}, {500, false}} {
		code = c.code
		err := Probe(t.Context(), "", p)
		if (err == nil) != c.ok {
			t.Fatalf("HTTP %d: %v", c.code, err)
		}
	}
	p.Check.Path = ""
	code = 200
	if err := Probe(t.Context(), "", p); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("default path /: %v, want the 404 of /", err)
	}
}
