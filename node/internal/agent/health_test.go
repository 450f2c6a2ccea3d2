package agent

import (
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// A health verdict that appears or flips is reported at once (the
// heartbeat is an hour here), with every probe's current verdict.
func TestHealthVerdictsReportedAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	c := newFakeController(t)
	startAgent(t, c, newFakeDatapath(), Config{})
	p := prog(1)
	// The backend's namespace is the test's own.
	p.Containers = []openapi.ContainerPort{{Name: "vc1", Netns: "/proc/self/ns/net"}}
	p.HealthChecks = []openapi.HealthProbe{{Service: "s1", Container: "c1", Port: "vc1", IP: "127.0.0.1",
		Check: openapi.HealthCheck{Protocol: "TCP", Port: port, IntervalSeconds: 1, TimeoutSeconds: 1, UnhealthyThreshold: 1, HealthyThreshold: 1}}}
	c.publish(p)
	wait := func(healthy bool) openapi.NodeStatus {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case st := <-c.reported:
				if len(st.Endpoints) == 1 && st.Endpoints[0].Healthy == healthy {
					return st
				}
			case <-deadline:
				t.Fatalf("no report with the endpoint healthy=%v", healthy)
			}
		}
	}
	st := wait(true)
	if e := st.Endpoints[0]; e.Service != "s1" || e.Container != "c1" || e.Host != "h1" {
		t.Fatalf("endpoint %+v", e)
	}
	l.Close()
	st = wait(false)
	if st.Endpoints[0].Reason == "" {
		t.Fatal("unhealthy without a reason")
	}
}
