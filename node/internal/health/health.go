// Package health runs the health checks of a host's program (the
// openapi.HealthProbe list): one goroutine per probe, each probing its
// local backend from INSIDE the backend's network namespace (TCP connect,
// or HTTP GET answering 2xx/3xx) every Check.IntervalSeconds (jittered),
// each attempt bounded by Check.TimeoutSeconds. A backend becomes
// unhealthy after UnhealthyThreshold consecutive failures and healthy after
// HealthyThreshold consecutive successes; before its first verdict it has
// none. Whenever a verdict appears or flips, the package calls its
// OnChange hook so the agent reports at once.
//
// It only reads the program and opens client sockets in backend
// namespaces; it must not touch OVS, links or the controller.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/openapi"
)

// Prober runs one probe attempt against target from the namespace at
// nsPath; nil means success.
type Prober func(ctx context.Context, nsPath string, p openapi.HealthProbe) error

// Options configure a Manager.
type Options struct {
	// Host is this host's name (EndpointHealth.Host).
	Host string
	// NetnsPath is the namespace of a container port (the link manager's
	// NetnsPath: its netns, or its managed sandbox's path). Nil: the
	// port's Netns only (managed sandboxes are not probed).
	NetnsPath func(openapi.ContainerPort) string
	// OnChange is called (from a probe goroutine) when a verdict appears
	// or flips.
	OnChange func()
	// Registerer, when set, gets the metrics.
	Registerer prometheus.Registerer
	// Probe replaces the real prober (tests).
	Probe Prober
	// Interval, when set, replaces every check's interval (tests).
	Interval func(openapi.HealthProbe) time.Duration
}

// Manager runs the probes of the program last given to Set.
type Manager struct {
	opts    Options
	mu      sync.Mutex
	running map[string]*runner
	probes  *prometheus.CounterVec
	down    prometheus.Gauge
}

// New returns a manager running no probes.
func New(opts Options) *Manager {
	if opts.NetnsPath == nil {
		opts.NetnsPath = func(c openapi.ContainerPort) string { return c.Netns }
	}
	if opts.Probe == nil {
		opts.Probe = Probe
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	m := &Manager{opts: opts, running: map[string]*runner{},
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_health_probes_total", Help: "Health probe attempts by result (success, failure).",
		}, []string{"result"}),
		down: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_agent_health_unhealthy", Help: "Health-checked local backends whose current verdict is unhealthy.",
		})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.probes, m.down)
	}
	return m
}

// runner is one running probe.
type runner struct {
	probe  openapi.HealthProbe
	nsPath string
	cancel context.CancelFunc
	done   chan struct{}
	// Guarded by Manager.mu.
	st verdict
}

// Set makes the manager run exactly the probes of prog: new probes start,
// removed ones stop (their verdicts go), changed ones (probe or namespace)
// start over without a verdict. Unchanged probes keep running undisturbed.
// A probe whose port is not a container port of prog is not run (it has
// no namespace to probe from, and probing from the agent's own would
// judge the wrong thing).
func (m *Manager) Set(prog *openapi.Program) {
	ns := map[string]string{}
	for _, c := range prog.Containers {
		ns[c.Name] = m.opts.NetnsPath(c)
	}
	want := map[string]openapi.HealthProbe{}
	for _, p := range prog.HealthChecks {
		if ns[p.Port] != "" {
			want[p.Key()] = p
		}
	}
	var stop []*runner
	changed := false
	m.mu.Lock()
	for k, r := range m.running {
		if p, ok := want[k]; !ok || p != r.probe || ns[p.Port] != r.nsPath {
			stop = append(stop, r)
			changed = changed || r.st.known
			delete(m.running, k)
		}
	}
	for k, p := range want {
		if m.running[k] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &runner{probe: p, nsPath: ns[p.Port], cancel: cancel, done: make(chan struct{})}
		m.running[k] = r
		go m.run(ctx, r)
	}
	m.setDownLocked()
	m.mu.Unlock()
	for _, r := range stop {
		r.cancel()
	}
	if changed {
		m.opts.OnChange()
	}
}

// Stop stops every probe and waits for them.
func (m *Manager) Stop() {
	m.mu.Lock()
	rs := m.running
	m.running = map[string]*runner{}
	m.mu.Unlock()
	for _, r := range rs {
		r.cancel()
		<-r.done
	}
}

// Endpoints returns the current verdict of every probe that has one,
// sorted by service and container, at most openapi.MaxEndpoints.
func (m *Manager) Endpoints() []openapi.EndpointHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []openapi.EndpointHealth
	for _, r := range m.running {
		if r.st.known {
			out = append(out, openapi.EndpointHealth{Service: r.probe.Service, Container: r.probe.Container,
				Healthy: r.st.healthy, Reason: r.st.reason, Host: m.opts.Host})
		}
	}
	slices.SortFunc(out, func(a, b openapi.EndpointHealth) int {
		if a.Service != b.Service {
			return cmpStr(a.Service, b.Service)
		}
		return cmpStr(a.Container, b.Container)
	})
	if len(out) > openapi.MaxEndpoints {
		out = out[:openapi.MaxEndpoints]
	}
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *Manager) setDownLocked() {
	n := 0
	for _, r := range m.running {
		if r.st.known && !r.st.healthy {
			n++
		}
	}
	m.down.Set(float64(n))
}

// run probes r until ctx ends: the first attempt after a random part of
// the interval (probes started together spread out), then every interval,
// spread by up to a tenth either way.
func (m *Manager) run(ctx context.Context, r *runner) {
	defer close(r.done)
	iv := time.Duration(r.probe.Check.IntervalSeconds) * time.Second
	if m.opts.Interval != nil {
		iv = m.opts.Interval(r.probe)
	}
	if iv <= 0 {
		iv = 5 * time.Second
	}
	timeout := time.Duration(r.probe.Check.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	t := time.NewTimer(rand.N(iv/2 + 1))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := m.opts.Probe(pctx, r.nsPath, r.probe)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			m.probes.WithLabelValues("success").Inc()
		} else {
			m.probes.WithLabelValues("failure").Inc()
		}
		m.mu.Lock()
		flipped := m.running[r.probe.Key()] == r && r.st.observe(err, r.probe.Check)
		if flipped {
			m.setDownLocked()
		}
		m.mu.Unlock()
		if flipped {
			m.opts.OnChange()
		}
		t.Reset(iv - iv/10 + rand.N(iv/5+1))
	}
}

// verdict is the threshold state of one probe.
type verdict struct {
	known, healthy bool
	reason         string
	// okRun and failRun count the current run of successes or failures.
	okRun, failRun int
}

// observe records one attempt and reports whether the verdict appeared or
// flipped. The reason is that of the last failure and stays with an
// unhealthy verdict; a healthy verdict has none.
func (v *verdict) observe(err error, c openapi.HealthCheck) bool {
	if err == nil {
		v.okRun, v.failRun = v.okRun+1, 0
		if (!v.known || !v.healthy) && v.okRun >= max(1, c.HealthyThreshold) {
			v.known, v.healthy, v.reason = true, true, ""
			return true
		}
		return false
	}
	v.failRun, v.okRun = v.failRun+1, 0
	if (!v.known || v.healthy) && v.failRun >= max(1, c.UnhealthyThreshold) {
		v.known, v.healthy, v.reason = true, false, err.Error()
		return true
	}
	if v.known && !v.healthy {
		v.reason = err.Error()
	}
	return false
}

// Probe is the real prober: a TCP connect, or an HTTP GET of Check.Path
// that must answer 2xx or 3xx (redirects are not followed), to IP:Check.Port
// with the socket made in the namespace at nsPath.
func Probe(ctx context.Context, nsPath string, p openapi.HealthProbe) error {
	addr := net.JoinHostPort(p.IP, strconv.Itoa(p.Check.Port))
	if p.Check.Protocol != "HTTP" {
		c, err := dialIn(ctx, nsPath, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	path := p.Check.Path
	if path == "" {
		path = "/"
	}
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return dialIn(ctx, nsPath, network, a)
		}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "switchyard-health/1")
	resp, err := cl.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return ue.Unwrap()
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
