package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
)

// Row 5, at scale: ten hosts (real agents, each its own OVS) cut off from
// the controller at once, until every one is NotReady, then healed at
// once; then the controller itself down for 8 s and back. The controller's node-protocol request rate (its own /metrics,
// sampled every 250 ms) stays within what the agents' heartbeats and
// polls make: no thundering herd. The bound is on the number of requests,
// not on time: a retry loop without backoff would exceed it by orders of
// magnitude.
func TestFailMatrixHerd(t *testing.T) {
	const hosts = 10
	c := cluster.New(t, cluster.Options{Hosts: hosts})
	defer c.Lab.DumpOnFailure(t)
	relay := strings.TrimPrefix(c.AgentURL, "http://")
	names := make([]string, hosts)
	for i := range names {
		names[i] = "h" + cluster.Itoa(i+1)
	}

	m := &rateMeter{url: c.URL + "/metrics"}
	m.start(t)
	time.Sleep(3 * time.Second) // a steady-state sample, not a wait for readiness
	steady := m.rate(3 * time.Second)

	for _, h := range names {
		c.Lab.Host(h).Partition(t, relay)
	}
	cut := time.Now()
	for _, h := range names {
		c.WaitHost(t, h, openapi.HostNotReady, 60*time.Second)
	}
	notReady := time.Since(cut)
	heal := time.Now()
	atHeal := m.total()
	for _, h := range names {
		c.Lab.Host(h).Heal(t)
	}
	c.WaitReady(t, 60*time.Second)
	ready := time.Since(heal)
	// Observe a fixed window after healing, whatever it took.
	if rest := 15*time.Second - time.Since(heal); rest > 0 {
		time.Sleep(rest)
	}
	window := time.Since(heal)
	after := m.total() - atHeal
	peak := m.peak(heal)
	m.stop()
	bound := herdBound(hosts, window)
	t.Logf("partition: %d hosts NotReady %v after the cut; all Ready %v after healing; node-protocol requests: steady %.1f/s, %0.f in the %v after healing (%.1f/s), peak %.1f/s over 1 s (bound %0.f requests)",
		hosts, notReady.Round(time.Millisecond), ready.Round(time.Millisecond), steady, after, window.Round(time.Second),
		after/window.Seconds(), peak, bound)
	if after > bound {
		t.Errorf("%0.f node requests in %v after healing %d hosts: a thundering herd (bound %0.f)", after, window, hosts, bound)
	}

	// The controller down for 8 s: every agent's connection breaks at
	// once and its retries fail fast (the relay closes them), so they all
	// back off together; when it is back, the retries come spread by the
	// backoff's jitter.
	c.Controller.Kill()
	time.Sleep(8 * time.Second) // the outage, not a wait for readiness
	back := time.Now()
	m = &rateMeter{url: c.URL + "/metrics"}
	c.StartController(t)
	m.start(t)
	c.WaitReady(t, 60*time.Second)
	ready = time.Since(back)
	if rest := 15*time.Second - time.Since(back); rest > 0 {
		time.Sleep(rest)
	}
	window = time.Since(back)
	after = m.total() // the new process counts from 0
	peak = m.peak(back)
	m.stop()
	bound = herdBound(hosts, window)
	t.Logf("controller outage of 8 s: all Ready %v after it was back; node-protocol requests %0.f in its first %v (%.1f/s), peak %.1f/s over 1 s (bound %0.f requests)",
		ready.Round(time.Millisecond), after, window.Round(time.Second), after/window.Seconds(), peak, bound)
	if after > bound {
		t.Errorf("%0.f node requests in the %v after the controller came back: a thundering herd (bound %0.f)", after, window, bound)
	}
}

// herdBound is the most node-protocol requests hosts may make in window:
// per host and second one heartbeat report and a few polls, ten times
// over.
func herdBound(hosts int, window time.Duration) float64 {
	return float64(hosts) * window.Seconds() * 10
}

// rateMeter samples the controller's count of node-protocol requests.
type rateMeter struct {
	url     string
	mu      sync.Mutex
	samples []sample
	done    chan struct{}
	wg      sync.WaitGroup
}

type sample struct {
	at time.Time
	n  float64
}

func (m *rateMeter) start(t *testing.T) {
	m.done = make(chan struct{})
	m.wg.Add(1)
	t.Cleanup(m.stop)
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := nodeRequests(m.url); err == nil {
				m.mu.Lock()
				m.samples = append(m.samples, sample{time.Now(), n})
				m.mu.Unlock()
			}
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
		}
	}()
}

func (m *rateMeter) stop() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.wg.Wait()
}

// total is the newest count.
func (m *rateMeter) total() float64 {
	n, err := nodeRequests(m.url)
	if err != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.samples[len(m.samples)-1].n
	}
	return n
}

// rate is the requests per second over the last d.
func (m *rateMeter) rate(d time.Duration) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.samples[len(m.samples)-1]
	for _, s := range m.samples {
		if last.at.Sub(s.at) <= d {
			if dt := last.at.Sub(s.at).Seconds(); dt > 0 {
				return (last.n - s.n) / dt
			}
			break
		}
	}
	return 0
}

// peak is the largest count over any one-second span of samples since t0.
func (m *rateMeter) peak(t0 time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := 0.0
	for i, a := range m.samples {
		if a.at.Before(t0) {
			continue
		}
		for _, b := range m.samples[i+1:] {
			if b.at.Sub(a.at) >= time.Second {
				best = max(best, (b.n-a.n)/b.at.Sub(a.at).Seconds())
				break
			}
		}
	}
	return best
}

// nodeRequests sums switchyard_http_requests_total over the node
// protocol's routes.
func nodeRequests(url string) (float64, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("metrics: %s", res.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "switchyard_http_requests_total{") || !strings.Contains(line, `route="/api/v1/nodes/`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
}
