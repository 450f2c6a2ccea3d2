package converge

import (
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/health"
	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// TestHealthProbeInManagedSandbox: the agent's health probes find a
// managed sandbox through the applier (NetnsPath) and probe the backend
// from inside it: healthy while it listens, unhealthy once it stops.
func TestHealthProbeInManagedSandbox(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1 := ctr{N: 1, Host: h.Name}
	p := program(h.Name, 1, []ctr{c1}, nil, "geneve")
	p.HealthChecks = []openapi.HealthProbe{{Service: "s1", Container: c1.Name(), Port: c1.Port(), IP: c1.IP(),
		Check: openapi.HealthCheck{Protocol: "TCP", Port: 7070, IntervalSeconds: 1, TimeoutSeconds: 1, UnhealthyThreshold: 2, HealthyThreshold: 1}}}
	if r := apply(t, a, p); r.Degraded() {
		t.Fatalf("degraded: %+v", r)
	}
	var ln net.Listener
	if err := link.InNetnsPath(a.NetnsPath(c1.ContainerPort()), func() error {
		var err error
		ln, err = net.Listen("tcp", c1.IP()+":7070")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	changed := make(chan struct{}, 10)
	m := health.New(health.Options{Host: h.Name, NetnsPath: a.NetnsPath, OnChange: func() { changed <- struct{}{} },
		Interval: func(openapi.HealthProbe) time.Duration { return 50 * time.Millisecond }})
	defer m.Stop()
	m.Set(p)
	wait := func(healthy bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			if e := m.Endpoints(); len(e) == 1 && e[0].Healthy == healthy {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("never healthy=%v: %+v", healthy, m.Endpoints())
			}
		}
	}
	wait(true)
	ln.Close()
	wait(false)
}
