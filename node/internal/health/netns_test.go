package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// containerNetns makes a container-like namespace: a veth whose inside end
// eth0 has ip/24, lo up. It is deleted when the test ends.
func containerNetns(t *testing.T, ip string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	name := fmt.Sprintf("syhc%d", os.Getpid()%100000)
	host := "vh" + name
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", name).Run()
	})
	run("link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name)
	run("-n", name, "addr", "add", ip+"/24", "dev", "eth0")
	run("-n", name, "link", "set", "lo", "up")
	run("-n", name, "link", "set", "eth0", "up")
	run("link", "set", host, "up")
	return "/run/netns/" + name
}

// listenIn listens on addr inside the namespace at ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := link.InNetnsPath(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	return l
}

// TestProbeInNetns runs TCP and HTTP checks against servers that exist only
// inside a container's namespace (a stopped server answers "refused" there,
// which no probe from the host's namespace would see): healthy, servers stopped -> unhealthy after the threshold,
// restarted -> healthy.
func TestProbeInNetns(t *testing.T) {
	ip := "10.99.77.2"
	ns := containerNetns(t, ip)
	var status atomic.Int32
	status.Store(200)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(status.Load()))
	})
	start := func() (net.Listener, *http.Server) {
		tl := listenIn(t, ns, ip+":7001")
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		srv := &http.Server{Handler: handler}
		go srv.Serve(listenIn(t, ns, ip+":7080"))
		return tl, srv
	}
	tl, srv := start()

	check := openapi.HealthCheck{IntervalSeconds: 1, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 2}
	tcp := openapi.HealthProbe{Service: "svc", Container: "tcp", Port: "vc1", IP: ip, Check: check}
	tcp.Check.Protocol, tcp.Check.Port = "TCP", 7001
	web := openapi.HealthProbe{Service: "svc", Container: "web", Port: "vc1", IP: ip, Check: check}
	web.Check.Protocol, web.Check.Port, web.Check.Path = "HTTP", 7080, "/healthz"

	var attempts atomic.Int64
	changes := make(chan struct{}, 100)
	m := New(Options{Host: "h1", OnChange: func() { changes <- struct{}{} },
		Probe: func(ctx context.Context, nsPath string, p openapi.HealthProbe) error {
			attempts.Add(1)
			return Probe(ctx, nsPath, p)
		},
		Interval: func(openapi.HealthProbe) time.Duration { return 20 * time.Millisecond }})
	defer m.Stop()
	m.Set(&openapi.Program{Containers: []openapi.ContainerPort{{Name: "vc1", Netns: ns}},
		HealthChecks: []openapi.HealthProbe{tcp, web}})
	healthy := func(e []openapi.EndpointHealth) bool { return len(e) == 2 && e[0].Healthy && e[1].Healthy }
	waitFor(t, m, changes, "both healthy", healthy)

	// HTTP 503 is a failure; then stop both servers.
	status.Store(503)
	eps := waitFor(t, m, changes, "web unhealthy", func(e []openapi.EndpointHealth) bool { return len(e) == 2 && !e[1].Healthy })
	if !strings.Contains(eps[1].Reason, "503") {
		t.Fatalf("reason %q, want the HTTP status", eps[1].Reason)
	}
	tl.Close()
	srv.Close()
	eps = waitFor(t, m, changes, "both unhealthy", func(e []openapi.EndpointHealth) bool { return len(e) == 2 && !e[0].Healthy && !e[1].Healthy })
	if !strings.Contains(eps[0].Reason, "refused") {
		t.Fatalf("tcp reason %q, want connection refused", eps[0].Reason)
	}
	status.Store(200)
	tl, srv = start()
	defer tl.Close()
	defer srv.Close()
	waitFor(t, m, changes, "both healthy again", healthy)
	if attempts.Load() < 2*(3+2) {
		t.Fatalf("only %d attempts", attempts.Load())
	}
}
